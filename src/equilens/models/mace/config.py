"""The configuration of the ``mace`` task (:mod:`equilens.models.mace.task`):
a MACE model trained from scratch by mace-torch's own trainer
(``mace_run_train``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal, Optional

from ...data.io import ReadOptions
from ...data.splits import SplitConfig
from ...errors import ConfigError
from ...training.config import output_folder


@dataclass(frozen=True)
class MaceModelSection:
    """The MACE network (``mace_run_train``'s model options); the defaults
    are a small model that trains on two CPU cores (mace's own defaults are
    128 channels, ``max_L: 1``, ``max_ell: 3``, ``correlation: 3``).

    :param model: ``MACE`` or ``ScaleShiftMACE`` (atomic energies scaled and
        shifted by statistics of the training set)
    :param r_max: cutoff radius (Å)
    :param num_channels: channels of every hidden irrep
    :param max_L: highest rotation order of the messages (hidden features
        carry lambda = 0 .. max_L)
    :param max_ell: highest order of the edge spherical harmonics
    :param correlation: body order of the symmetric contraction minus one
    :param num_interactions: message-passing layers
    :param num_radial_basis: Bessel functions of the radial basis
    :param scaling: ``rms_forces_scaling``, ``std_scaling`` or ``no_scaling``
    """

    model: Literal["MACE", "ScaleShiftMACE"] = "ScaleShiftMACE"
    r_max: float = 5.0
    num_channels: int = 16
    max_L: int = 1
    max_ell: int = 2
    correlation: int = 2
    num_interactions: int = 2
    num_radial_basis: int = 8
    scaling: Literal["rms_forces_scaling", "std_scaling", "no_scaling"] = "rms_forces_scaling"

    def __post_init__(self):
        for name in ("num_channels", "correlation", "num_interactions", "num_radial_basis"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name}: expected >= 1, got {getattr(self, name)}")
        if self.max_L < 0 or self.max_ell < self.max_L:
            raise ConfigError(
                f"model.max_L: expected 0 <= max_L <= max_ell, got max_L {self.max_L}, "
                f"max_ell {self.max_ell}"
            )
        if not self.r_max > 0:
            raise ConfigError(f"model.r_max: expected a positive cutoff, got {self.r_max}")

    def arguments(self) -> List[str]:
        """The ``mace_run_train`` options of this network."""
        return [
            f"--model={self.model}",
            f"--r_max={self.r_max}",
            f"--num_channels={self.num_channels}",
            f"--max_L={self.max_L}",
            f"--max_ell={self.max_ell}",
            f"--correlation={self.correlation}",
            f"--num_interactions={self.num_interactions}",
            f"--num_radial_basis={self.num_radial_basis}",
            f"--scaling={self.scaling}",
        ]


@dataclass(frozen=True)
class MaceTraining:
    """What mace-torch's trainer is given (its defaults where not said).

    :param epochs: the most epochs (``max_num_epochs``)
    :param batch_size: frames per optimisation step
    :param learning_rate: initial learning rate (mace's ``lr``)
    :param energy_weight: weight of the energy term of the loss
    :param forces_weight: weight of the force term of the loss
    :param dtype: precision of training and of the saved model
    :param seed: mace's random seed
    :param threads: torch threads of the trainer (default: torch's)
    """

    epochs: int = 60
    batch_size: int = 4
    learning_rate: float = 0.01
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    dtype: Literal["float32", "float64"] = "float64"
    seed: int = 0
    threads: Optional[int] = None

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training.{name}: expected >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ConfigError(f"training.learning_rate: expected > 0, got {self.learning_rate}")

    def arguments(self, epochs: int) -> List[str]:
        """The ``mace_run_train`` options of this training, for ``epochs``."""
        return [
            f"--max_num_epochs={epochs}",
            f"--batch_size={self.batch_size}",
            f"--valid_batch_size={self.batch_size}",
            f"--lr={self.learning_rate}",
            f"--energy_weight={self.energy_weight}",
            f"--forces_weight={self.forces_weight}",
            f"--default_dtype={self.dtype}",
            f"--seed={self.seed}",
        ]


@dataclass(frozen=True)
class MaceConfig:
    """The ``mace`` task: train a MACE model from scratch with mace-torch's
    trainer (in the environment that has mace-torch: it pins e3nn 0.4);
    everything ``equilens train`` reads from its YAML file.

    :param data: the training frames and how validation and test are held out
    :param task: ``mace``
    :param name: the run's name (default output folder ``results/train/<name>``)
    :param read: how frames are read and validated (energies and forces required)
    :param model: the network
    :param training: what the trainer is given
    :param output_dir: output folder (default ``results/train/<name>``)
    """

    data: SplitConfig
    task: Literal["mace"] = "mace"
    name: str = "mace"
    read: ReadOptions = field(default_factory=lambda: ReadOptions(require_forces=True))
    model: MaceModelSection = field(default_factory=MaceModelSection)
    training: MaceTraining = field(default_factory=MaceTraining)
    output_dir: Optional[str] = None

    @property
    def output(self) -> Path:
        return output_folder(self)
