"""The configuration of the equivariant potential: documented dataclasses,
the single source of its defaults and their docs.

A YAML file with ``task: equivariant_potential`` is read into
:class:`EquivariantPotentialConfig`::

    task: equivariant_potential
    name: iron_water_equivariant
    data: {train: reference:iron_water/train, validation_fraction: 0.1}
    descriptor: {preset: small}
    features: {lambda_max: 2, density_components: 12, n_components: 64}
    model: {hidden: [64, 64]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Tuple, Union

from ...data.io import ReadOptions
from ...data.splits import SplitConfig
from ...descriptors import DescriptorConfig
from ...descriptors.compression import components_per_lambda
from ...errors import ConfigError, EquilensError
from ...training.config import output_folder
from ...training.loop import TrainConfig
from ..energy.config import LossConfig


@dataclass(frozen=True)
class FeaturesConfig:
    """The lambda-SOAP of a compressed density the network reads (the
    ``features:`` section; :mod:`equilens.descriptors.equivariant`).

    :param lambda_max: the largest ``o3_lambda`` of the features and of the
        hidden layers
    :param density_components: channels of the density kept per angular
        channel and center type (equivariant PCA of the neighbor-type and
        radial channels)
    :param n_components: features kept per ``(o3_lambda, center_type)`` block
        of the product (equivariant PCA): one number for every ``o3_lambda``,
        or a list of one per ``o3_lambda = 0 .. lambda_max`` (e.g. ``[256,
        32, 32]``: a rich invariant channel, cheaper covariant ones; the
        stored gradients grow with ``sum (2 lambda + 1) n_lambda``)
    :param max_atoms: atoms the two projections are fitted on (a seeded
        subset of the training frames)
    :param seed: seeds that subset (not the training seed: models of other
        seeds then share the features and their cache)
    :param batch_size: frames per featomic call and Clebsch-Gordan product
        (``null``: as many as keep the density gradients within 256 MiB, at
        most 16; :func:`~equilens.descriptors.budget.density_gradient_frames`)
    :param gradient_storage: precision of the stored projected gradients
        (``float16`` halves the largest array of force training)
    """

    lambda_max: int = 2
    density_components: int = 12
    n_components: Union[int, Tuple[int, ...]] = 64
    max_atoms: int = 4000
    seed: int = 0
    batch_size: Optional[int] = None
    gradient_storage: Literal["float32", "float16"] = "float32"

    def __post_init__(self):
        if self.lambda_max < 0 or self.density_components < 1:
            raise ConfigError("features: lambda_max >= 0 and density_components >= 1")
        try:
            widths = self.components()
        except EquilensError as error:
            raise ConfigError(f"features.{error}") from None
        if min(widths) < 1:
            raise ConfigError(f"features.n_components must be >= 1, got {self.n_components}")
        if self.max_atoms < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise ConfigError("features: max_atoms and batch_size must be >= 1")

    def components(self) -> Tuple[int, ...]:
        """The features kept for each ``o3_lambda = 0 .. lambda_max``."""
        return components_per_lambda(self.n_components, self.lambda_max)


@dataclass(frozen=True)
class EquivariantNetworkConfig:
    """Architecture of the equivariant network (the ``model:`` section).

    :param hidden: width of each hidden layer (every block of a layer)
    :param activation: ``silu`` or ``tanh`` on the invariant blocks
    :param layer_norm: layer norm on the invariant blocks of each hidden layer
    :param invariant_gate: gate ``lambda > 0`` channels by the invariant
        hidden features of the same atom (on top of the norm gate)
    :param contraction: feed the squared norms of the covariant channels
        back into the invariant channel in every hidden layer
    :param smooth: the norm of the gates is ``sqrt(|x|^2 + smooth^2)``, so
        that forces and their training stay finite where a covariant
        channel vanishes
    """

    hidden: Tuple[int, ...] = (64, 64)
    activation: Literal["silu", "tanh"] = "silu"
    layer_norm: bool = False
    invariant_gate: bool = True
    contraction: bool = True
    smooth: float = 1e-3

    def __post_init__(self):
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"model.hidden: at least one width >= 1, got {self.hidden}")
        if self.smooth <= 0:
            raise ConfigError("model.smooth must be > 0 (forces need a smooth norm)")


@dataclass(frozen=True)
class EquivariantPotentialConfig:
    """The ``equivariant_potential`` task: an equivariant network on
    lambda-SOAP for energies and forces, everything ``equilens train`` reads
    from its YAML file.

    :param data: the training frames and how validation and test are held out
    :param task: ``equivariant_potential``
    :param name: the run's name (default output folder ``results/train/<name>``)
    :param read: how frames are read and validated (energies and forces required)
    :param descriptor: the spherical expansion's preset, hypers and species
        (its ``kind`` is not used)
    :param features: the density compression and the lambda-SOAP projection
    :param model: the network
    :param loss: weights of the energy and force terms
    :param training: optimiser, schedule, early stopping, seed, dtype
    :param output_dir: output folder (default ``results/train/<name>``)
    :param cache_dir: where features are cached (``null``: no cache)
    """

    data: SplitConfig
    task: Literal["equivariant_potential"] = "equivariant_potential"
    name: str = "equivariant_potential"
    read: ReadOptions = field(default_factory=lambda: ReadOptions(require_forces=True))
    descriptor: DescriptorConfig = field(default_factory=lambda: DescriptorConfig(preset="small"))
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: EquivariantNetworkConfig = field(default_factory=EquivariantNetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    output_dir: Optional[str] = None
    cache_dir: Optional[str] = ".equilens_cache"

    def __post_init__(self):
        if self.descriptor.gradients:
            raise ConfigError("descriptor.gradients is set by the trainer itself; leave it false")

    @property
    def output(self) -> Path:
        return output_folder(self)
