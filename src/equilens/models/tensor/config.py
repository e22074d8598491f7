"""The configuration of the tensor family: documented dataclasses, the single
source of its defaults and their docs.

A YAML file with ``task: tensor`` is read into :class:`TensorConfig`::

    task: tensor
    name: dipole
    target: {file: embedded:water_tensors/dipole.mts}
    model: {hidden: [32, 32], n_components: 64}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Tuple

from ...data.io import ReadOptions
from ...data.splits import SplitConfig
from ...descriptors import DescriptorConfig
from ...errors import ConfigError
from ...training.config import output_folder
from ...training.loop import TrainConfig

EMBEDDED_STRUCTURES = "embedded:water_tensors/structures.extxyz"


@dataclass(frozen=True)
class EquivariantConfig:
    """Architecture of the equivariant network on lambda-SOAP (the ``model:`` section).

    :param hidden: width of each hidden layer (the same for every block)
    :param activation: ``silu`` or ``tanh`` on the invariant blocks
    :param layer_norm: layer norm on the invariant blocks of each hidden layer
    :param invariant_gate: gate ``lambda > 0`` channels by the invariant
        hidden features of the same atom (on top of the norm gate)
    :param n_components: features kept per block by the equivariant PCA in
        front of the network (``0``: no projection)
    """

    hidden: Tuple[int, ...] = (32, 32)
    activation: Literal["silu", "tanh"] = "silu"
    layer_norm: bool = True
    invariant_gate: bool = True
    n_components: int = 64

    def __post_init__(self):
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden widths must be >= 1, got {self.hidden}")
        if self.activation not in ("silu", "tanh"):
            raise ConfigError(f"activation must be 'silu' or 'tanh', got {self.activation!r}")
        if self.n_components < 0:
            raise ConfigError("n_components must be >= 0")


@dataclass(frozen=True)
class TargetConfig:
    """The tensorial target of the structures in ``data.train`` (the ``target:`` section).

    :param file: metatensor ``.mts`` file (``embedded:``, ``reference:`` or a
        path): samples ``system`` (one row per structure, in file order) or
        ``(system, atom)``, keys starting with ``(o3_lambda, o3_sigma)``
    :param name: the target's name in predictions (default: the file name
        without extension, e.g. ``dipole``)
    :param overlap: auxiliary basis name (PySCF) of per-atom density
        coefficients: train and score in its overlap metric (needs pyscf)
    """

    file: str = "embedded:water_tensors/dipole.mts"
    name: Optional[str] = None
    overlap: Optional[str] = None


@dataclass(frozen=True)
class TensorConfig:
    """The ``tensor`` task: an equivariant model of a tensorial property,
    everything ``equilens train`` reads for it.

    The model always reads lambda-SOAP (the proper, ``o3_sigma = 1`` blocks up
    to the target's largest lambda); ``descriptor`` gives its preset, hyper-
    parameter overrides and species list (its ``kind`` is not used). The
    validation and test structures are held out of ``data.train`` by
    fractions.

    :param task: ``tensor``
    :param name: the run's name (default output folder ``results/train/<name>``)
    :param data: the structures (``train``) and the fractions held out for
        validation and test (stratified by size)
    :param read: how the structures are read and validated
    :param target: the tensorial target and its metric
    :param descriptor: lambda-SOAP preset, hypers and species
    :param model: the equivariant network
    :param training: optimiser, schedule, early stopping, seed (float64 only)
    :param baseline: also fit the per-block ridge baseline
    :param output_dir: output folder (default ``results/train/<name>``)
    :param cache_dir: where descriptors are cached (``null``: no cache)
    """

    task: Literal["tensor"] = "tensor"
    name: str = "tensor"
    data: SplitConfig = field(
        default_factory=lambda: SplitConfig(
            train=EMBEDDED_STRUCTURES, validation_fraction=0.1, test_fraction=0.2, stratify=True
        )
    )
    read: ReadOptions = field(default_factory=lambda: ReadOptions(require_energy=False))
    target: TargetConfig = field(default_factory=TargetConfig)
    descriptor: DescriptorConfig = field(
        default_factory=lambda: DescriptorConfig(kind="lambda_soap", preset="small")
    )
    model: EquivariantConfig = field(default_factory=EquivariantConfig)
    training: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=400,
            batch_size=8,
            learning_rate=3e-3,
            scheduler="plateau",
            early_stopping_patience=60,
            dtype="float64",
        )
    )
    baseline: bool = True
    output_dir: Optional[str] = None
    cache_dir: Optional[str] = ".equilens_cache"

    def __post_init__(self):
        if self.training.dtype != "float64":
            raise ConfigError("tensor models train in float64 (training.dtype: float64)")
        if self.data.validation is not None or self.data.test is not None:
            raise ConfigError(
                "the tensor task holds its validation and test structures out of data.train "
                "(data.validation_fraction, data.test_fraction); separate files are not read"
            )
        if self.data.validation_fraction <= 0 or self.data.test_fraction <= 0:
            raise ConfigError("data.validation_fraction and data.test_fraction must be > 0")
        if self.read.index != ":" or self.read.on_error != "raise":
            raise ConfigError(
                "the tensor task reads every structure of its file (read.index ':' and "
                "read.on_error 'raise'), since the target has one row per structure"
            )

    @property
    def output(self) -> Path:
        return output_folder(self)
