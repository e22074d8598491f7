"""The configuration of the BPNN family: documented dataclasses, the single
source of its defaults and their docs (``docs/configuration.md`` is
generated from them, ``equilens config show water`` prints them resolved).

A YAML file with ``task: potential`` is read into :class:`PotentialConfig`::

    task: potential
    name: water
    data: {train: reference:water/train, validation_fraction: 0.1}
    descriptor: {preset: default}
    compression: {n_components: 128}
    model: {hidden: [128, 128], activation: silu}
    training: {epochs: 300, batch_size: 8}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple

from ...data.io import ReadOptions
from ...data.splits import SplitConfig
from ...descriptors import DescriptorConfig
from ...errors import ConfigError
from ...training.config import output_folder
from ...training.loop import TrainConfig
from ..energy.config import LossConfig


@dataclass(frozen=True)
class BPNNConfig:
    """Architecture of the networks (the ``model:`` section).

    :param hidden: widths of the hidden layers, e.g. ``[128, 128]``
    :param activation: ``silu``, ``tanh``, ``gelu`` or ``softplus``
    :param layer_norm: apply a layer norm after each hidden activation
    :param bottleneck: width of an extra narrow hidden layer before the
        output (``null`` for none); a low-dimensional latent space to inspect
    :param network: ``per_species`` (one MLP per element, Behler-Parrinello),
        ``shared`` (one MLP for all elements, fed the atom's features and a
        learned embedding of its element: the hidden layers of all elements
        share coordinates, and elements with a few atoms learn from the
        others), or ``auto``: shared above ``shared_above`` elements
    :param shared_above: the number of elements above which ``auto`` shares
    :param embedding: width of the learned element embedding (shared only)
    """

    hidden: Tuple[int, ...] = (128, 128)
    activation: Literal["silu", "tanh", "gelu", "softplus"] = "silu"
    layer_norm: bool = False
    bottleneck: Optional[int] = None
    network: Literal["auto", "per_species", "shared"] = "auto"
    shared_above: int = 10
    embedding: int = 16

    def __post_init__(self):
        if any(w < 1 for w in self.hidden) or (self.bottleneck is not None and self.bottleneck < 1):
            raise ConfigError("layer widths must be >= 1")
        if self.network not in ("auto", "per_species", "shared"):
            raise ConfigError(f"network must be auto, per_species or shared, got {self.network!r}")
        if self.embedding < 1 or self.shared_above < 0:
            raise ConfigError("embedding must be >= 1 and shared_above >= 0")

    def is_shared(self, n_species: int) -> bool:
        """Whether the network for ``n_species`` elements is shared."""
        if self.network == "auto":
            return n_species > self.shared_above
        return self.network == "shared"

    def widths(self) -> List[int]:
        """Widths of the hidden layers, the bottleneck included."""
        return list(self.hidden) + ([self.bottleneck] if self.bottleneck is not None else [])

    def layer_names(self) -> List[str]:
        """Names of the hidden layers, in order."""
        names = [f"hidden_{i + 1}" for i in range(len(self.hidden))]
        if self.bottleneck is not None:
            names.append("bottleneck")
        return names


@dataclass(frozen=True)
class CompressionConfig:
    """Per-species PCA of SOAP in front of the networks (the ``compression:``
    section; :class:`~equilens.descriptors.compression.SpeciesPCA`).

    :param n_components: principal components kept per species
    :param whiten: divide each component by its standard deviation
    :param max_samples: the most atoms per species the PCA is fitted on
    :param gradient_weight: weight of the SOAP position gradients in the PCA
        (``0``: values only)
    :param gradient_frames: training frames whose gradients enter the PCA
        when ``gradient_weight > 0``
    :param gradient_storage: ``float16`` keeps the projected position
        gradients (the largest array of force training, ``n_pairs x 3 x
        n_components``) in half precision, cast back to the training dtype
        batch by batch
    :param seed: seeds the atoms and gradient frames the PCA is fitted on
        (not the training seed: models of other seeds then share the
        compression, the features and their cache, and a study's seeds
        differ by their training alone)
    """

    n_components: int = 128
    whiten: bool = True
    max_samples: int = 20000
    gradient_weight: float = 0.0
    gradient_frames: int = 16
    gradient_storage: Literal["float32", "float16"] = "float32"
    seed: int = 0


@dataclass(frozen=True)
class FinetuneConfig:
    """Start from a trained potential (the ``finetune:`` section; see
    :mod:`equilens.models.bpnn.finetune`).

    :param base_model: the equilens potential (``model.pt``) to start from
    :param mode: ``full`` (train every weight), ``frozen`` (keep the first
        ``frozen_layers`` hidden layers of each base network) or
        ``last_layer`` (train only the output layers)
    :param frozen_layers: hidden layers kept with ``mode: frozen``
    :param compression: ``keep`` the base projection (extended for new
        species) or ``refit`` it on the new frames
    :param refit_offsets: refit the per-species energies on the new data
        (two levels of theory differ by large constants)
    """

    base_model: str
    mode: Literal["full", "frozen", "last_layer"] = "full"
    frozen_layers: int = 1
    compression: Literal["keep", "refit"] = "keep"
    refit_offsets: bool = True

    def __post_init__(self):
        if self.frozen_layers < 1:
            raise ConfigError(
                f"finetune.frozen_layers: expected at least 1, got {self.frozen_layers}"
            )


@dataclass(frozen=True)
class PotentialConfig:
    """The ``potential`` task: a BPNN on energies and forces, everything
    ``equilens train`` reads from its YAML file.

    :param data: the training frames and how validation and test are held out
    :param task: ``potential``
    :param name: the run's name (default output folder ``results/train/<name>``)
    :param read: how frames are read and validated (energies and forces required)
    :param descriptor: SOAP preset, hypers and species (``kind: soap``)
    :param compression: per-species PCA of SOAP
    :param model: the networks
    :param loss: weights of the energy and force terms
    :param training: optimiser, schedule, early stopping, seed, dtype
    :param output_dir: output folder (default ``results/train/<name>``)
    :param cache_dir: where descriptors and projected features are cached
        (``null``: no cache)
    :param finetune: start from a trained potential instead of random weights
    """

    data: SplitConfig
    task: Literal["potential"] = "potential"
    name: str = "potential"
    read: ReadOptions = field(default_factory=lambda: ReadOptions(require_forces=True))
    descriptor: DescriptorConfig = field(default_factory=DescriptorConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    model: BPNNConfig = field(default_factory=BPNNConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    output_dir: Optional[str] = None
    cache_dir: Optional[str] = ".equilens_cache"
    finetune: Optional[FinetuneConfig] = None

    def __post_init__(self):
        if self.descriptor.kind != "soap":
            raise ConfigError("the BPNN potential needs descriptor.kind: soap")
        if self.descriptor.gradients:
            raise ConfigError("descriptor.gradients is set by the trainer itself; leave it false")

    @property
    def output(self) -> Path:
        return output_folder(self)


def describe_architecture(
    model: BPNNConfig, species: Sequence[int], hypers: Dict[str, Any]
) -> Dict[str, Any]:
    """What a configuration resolves to for a set of elements: ``n_species``,
    ``shared``, ``alchemical`` (the mixing, or None) and a one-line
    ``summary`` of the descriptor and the network.

    Above ``descriptor.alchemical_above`` elements the SOAP mixes the neighbor
    types onto pseudo-species, and above ``model.shared_above`` one network
    with an element embedding replaces the per-element networks. The run says
    which: one printed line, ``metrics.json`` (``architecture``) and the
    model's metadata all hold this answer.
    """
    shared = model.is_shared(len(species))
    alchemical = hypers.get("alchemical")
    descriptor = (
        f"SOAP with neighbor types mixed onto {alchemical['pseudo_species']} pseudo-species "
        f"({alchemical['embedding']} embedding)"
        if alchemical
        else f"SOAP over {len(species)} neighbor types"
    )
    network = (
        f"one shared network with a {model.embedding}-wide element embedding"
        if shared
        else "one network per element"
    )
    return {
        "n_species": len(species),
        "shared": shared,
        "alchemical": alchemical,
        "summary": f"{len(species)} elements: {descriptor}, {network}",
    }
