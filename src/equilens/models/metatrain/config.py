"""Configuration of the ``metatrain`` task (see
:mod:`~equilens.models.metatrain.task`): metatrain's trainer, started from a
checkpoint (fine-tuning) or from scratch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Literal, Optional

from ...data.io import ReadOptions
from ...data.splits import SplitConfig
from ...errors import ConfigError
from ...training.config import output_folder


@dataclass(frozen=True)
class MetatrainTraining:
    """What ``mtt train`` is given.

    :param epochs: the most epochs (metatrain's ``num_epochs``)
    :param batch_size: structures per optimisation step
    :param learning_rate: metatrain's learning rate
    :param method: metatrain's fine-tuning method: ``full`` (all weights),
        ``heads`` (the output heads only) or ``lora`` (low-rank adapters);
        not used from scratch
    :param force_weight: weight of the force term of the energy loss
    :param seed: metatrain's random seed
    :param checkpoint_every: a checkpoint every this many epochs (metatrain's
        ``checkpoint_interval``, the granularity of resuming)
    :param processes: data-parallel training processes: above 1, metatrain's
        own distributed training (NCCL, one CUDA GPU per process), which
        reads its ranks from SLURM: ``mtt train`` is started with ``srun
        --ntasks=N`` and equilens must run inside a SLURM allocation
    """

    epochs: int = 10
    batch_size: int = 4
    learning_rate: float = 1e-5
    method: Literal["full", "heads", "lora"] = "full"
    force_weight: float = 1.0
    seed: int = 0
    checkpoint_every: int = 5
    processes: int = 1

    def __post_init__(self):
        for name in ("epochs", "batch_size", "checkpoint_every", "processes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training.{name}: expected >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class MetatrainConfig:
    """The ``metatrain`` task: train a metatrain architecture with ``mtt
    train``, from scratch or fine-tuning a checkpoint; everything ``equilens
    train`` and ``equilens finetune`` read from its YAML file.

    :param data: the training frames and how validation and test are held out
    :param base_checkpoint: the metatrain checkpoint to fine-tune (passed to
        metatrain, never opened by equilens); ``null`` trains the
        architecture from scratch
    :param task: ``metatrain``
    :param name: the run's name (default output folder ``results/train/<name>``)
    :param architecture: metatrain's architecture name (``pet``,
        ``soap_bpnn``, ...): the checkpoint's when fine-tuning
    :param model: metatrain's ``architecture.model`` hypers of a model trained
        from scratch (e.g. ``{d_pet: 32, num_gnn_layers: 1}`` for PET; left
        out: metatrain's defaults); a fine-tuned model keeps its checkpoint's
    :param mtt: the ``mtt`` command (e.g. from metatrain's own environment:
        ``/path/to/venv/bin/mtt``)
    :param length_unit: the length unit declared to metatrain; it must be the
        base checkpoint's (some test checkpoints were trained without units:
        give ``""``)
    :param energy_unit: the energy unit declared to metatrain (the base
        checkpoint's)
    :param read: how frames are read and validated (energies and forces required)
    :param training: what ``mtt train`` is given
    :param output_dir: output folder (default ``results/train/<name>``)
    """

    data: SplitConfig
    base_checkpoint: Optional[str] = None
    task: Literal["metatrain"] = "metatrain"
    name: str = "metatrain"
    architecture: str = "pet"
    model: Dict[str, Any] = field(default_factory=dict)
    mtt: str = "mtt"
    length_unit: str = "angstrom"
    energy_unit: str = "eV"
    read: ReadOptions = field(default_factory=lambda: ReadOptions(require_forces=True))
    training: MetatrainTraining = field(default_factory=MetatrainTraining)
    output_dir: Optional[str] = None

    def __post_init__(self):
        if self.model and self.base_checkpoint is not None:
            raise ConfigError(
                "model: a fine-tuned metatrain model keeps the hypers of its checkpoint; "
                "set base_checkpoint: null to train the architecture from scratch"
            )

    @property
    def output(self) -> Path:
        return output_folder(self)
