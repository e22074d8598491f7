"""The configuration of the ``sevenn`` task (:mod:`equilens.models.sevenn.task`):
what sevenn's trainer is given, the network trained from scratch, and the
whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Literal, Optional, Tuple

from ...data.io import ReadOptions
from ...data.splits import SplitConfig
from ...errors import ConfigError
from ...training.config import output_folder


@dataclass(frozen=True)
class SevennTraining:
    """What sevenn's trainer is given (its fine-tuning preset's choices by default).

    :param epochs: the most epochs sevenn runs
    :param batch_size: frames per optimisation step
    :param learning_rate: initial learning rate
    :param scheduler_gamma: the learning rate is multiplied by this every epoch
        (sevenn's exponential scheduler)
    :param loss: ``huber`` (sevenn's fine-tuning preset) or ``mse``
    :param huber_delta: the Huber loss's delta (eV/Å for forces)
    :param force_weight: weight of the force term
    :param stress_weight: weight of the stress term, used only when every
        frame is periodic and has a reference stress
    :param checkpoint_every: sevenn writes a checkpoint every this many epochs
        (the granularity of resuming)
    :param seed: sevenn's random seed
    :param threads: torch threads of the trainer (default: torch's)
    :param processes: data-parallel training processes: above 1, sevenn's
        own distributed training (``torchrun ... sevenn -d``, NCCL), one CUDA
        GPU per process, ``batch_size`` frames per process
    """

    epochs: int = 20
    batch_size: int = 2
    learning_rate: float = 0.002
    scheduler_gamma: float = 0.99
    loss: Literal["huber", "mse"] = "huber"
    huber_delta: float = 0.01
    force_weight: float = 1.0
    stress_weight: float = 0.01
    checkpoint_every: int = 5
    seed: int = 1
    threads: Optional[int] = None
    processes: int = 1

    def __post_init__(self):
        for name in ("epochs", "batch_size", "checkpoint_every", "processes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training.{name}: expected >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ConfigError(f"training.learning_rate: expected > 0, got {self.learning_rate}")


@dataclass(frozen=True)
class SevennModel:
    """The network sevenn builds when training from scratch (``base_model:
    null``): sevenn's ``base`` preset (NequIP-type, 32 channels, lmax 2, 3
    layers) scaled to two CPU cores by default; see ``docs/benchmarks.md``
    for the cost of each size.

    :param cutoff: neighbour cutoff (Å)
    :param channel: multiplicity of every irrep of the node features
    :param lmax: the largest angular order of the node features
    :param num_convolution_layer: message-passing layers
    :param is_parity: E(3) (true: features of both parities) rather than SE(3)
    :param self_connection_type: ``nequip`` (species-dependent) or ``linear``
    :param weight_nn_hidden_neurons: hidden widths of the radial networks
    :param bessel_basis_num: radial Bessel functions
    :param poly_cut_p_value: power of the polynomial cutoff envelope
    :param shift: per-atom energy shift of the output: per-species energies
        fitted on the training frames (``elemwise_reference_energies``) or
        the mean energy per atom
    :param scale: scale of the output: the force RMS or the per-atom energy
        standard deviation of the training frames
    """

    cutoff: float = 5.0
    channel: int = 16
    lmax: int = 1
    num_convolution_layer: int = 2
    is_parity: bool = False
    self_connection_type: Literal["nequip", "linear"] = "nequip"
    weight_nn_hidden_neurons: Tuple[int, ...] = (64, 64)
    bessel_basis_num: int = 8
    poly_cut_p_value: int = 6
    shift: Literal["elemwise_reference_energies", "per_atom_energy_mean"] = (
        "elemwise_reference_energies"
    )
    scale: Literal["force_rms", "per_atom_energy_std"] = "force_rms"

    def __post_init__(self):
        if self.cutoff <= 0:
            raise ConfigError(f"model.cutoff: expected > 0, got {self.cutoff}")
        for name in ("channel", "num_convolution_layer", "bessel_basis_num", "poly_cut_p_value"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name}: expected >= 1, got {getattr(self, name)}")
        if self.lmax < 0:
            raise ConfigError(f"model.lmax: expected >= 0, got {self.lmax}")
        if any(width < 1 for width in self.weight_nn_hidden_neurons):
            raise ConfigError(
                f"model.weight_nn_hidden_neurons: widths must be >= 1, got "
                f"{list(self.weight_nn_hidden_neurons)}"
            )

    def sections(self) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """The keys of sevenn's ``model`` and ``data`` sections."""
        model = {
            "cutoff": self.cutoff,
            "channel": self.channel,
            "lmax": self.lmax,
            "num_convolution_layer": self.num_convolution_layer,
            "is_parity": self.is_parity,
            "self_connection_type": self.self_connection_type,
            "weight_nn_hidden_neurons": list(self.weight_nn_hidden_neurons),
            "radial_basis": {
                "radial_basis_name": "bessel",
                "bessel_basis_num": self.bessel_basis_num,
            },
            "cutoff_function": {
                "cutoff_function_name": "poly_cut",
                "poly_cut_p_value": self.poly_cut_p_value,
            },
            "act_gate": {"e": "silu", "o": "tanh"},
            "act_scalar": {"e": "silu", "o": "tanh"},
            "conv_denominator": "avg_num_neigh",
            "train_denominator": False,
            "train_shift_scale": False,
        }
        return model, {"shift": self.shift, "scale": self.scale}


@dataclass(frozen=True)
class SevennConfig:
    """The ``sevenn`` task: train a SevenNet model with sevenn's own trainer,
    from a base model or from scratch; everything ``equilens train`` (or
    ``finetune``) reads from its YAML file.

    :param data: the training frames and how validation and test are held out
    :param task: ``sevenn``
    :param name: the run's name (default output folder ``results/train/<name>``)
    :param read: how frames are read and validated (energies and forces required)
    :param base_model: the starting model: a checkpoint shipped in the sevenn
        wheel (``7net-0``) or a checkpoint path; ``null`` trains ``model``
        from scratch
    :param model: the network trained from scratch (only with ``base_model:
        null``, where it defaults to :class:`SevennModel`'s sizes)
    :param refit_offsets: refit the per-species energy offsets on the training
        frames and move the base model's energy shifts by them (fine-tuning)
    :param training: what sevenn's trainer is given
    :param output_dir: output folder (default ``results/train/<name>``)
    """

    data: SplitConfig
    task: Literal["sevenn"] = "sevenn"
    name: str = "sevenn"
    read: ReadOptions = field(default_factory=lambda: ReadOptions(require_forces=True))
    base_model: Optional[str] = "7net-0"
    model: Optional[SevennModel] = None
    refit_offsets: bool = True
    training: SevennTraining = field(default_factory=SevennTraining)
    output_dir: Optional[str] = None

    def __post_init__(self):
        if self.base_model is not None and self.model is not None:
            raise ConfigError(
                f"model: a network section trains from scratch; set base_model: null "
                f"(fine-tuning keeps the architecture of {self.base_model})"
            )
        if self.base_model is None and self.model is None:
            object.__setattr__(self, "model", SevennModel())

    @property
    def output(self) -> Path:
        return output_folder(self)

    @property
    def base_spec(self) -> Optional[str]:
        return None if self.base_model is None else self.base_model.removeprefix("sevenn:")
