"""Configuration of ``equilens study``: the data, the sweep, the analysis.

:class:`StudyConfig` is the single source of the defaults (the embedded
GFN1-xTB iron/water set, four BPNN architectures, three seeds);
:func:`load_study_config` reads a YAML file or a built-in configuration name
and names any unknown or invalid key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from ..analysis.labels import LabelConfig
from ..config import from_mapping, load_yaml
from ..data.io import ReadOptions
from ..data.splits import SplitConfig
from ..descriptors import RADIAL_SCALING, DescriptorConfig
from ..errors import ConfigError, EquilensError
from ..models.bpnn.config import CompressionConfig
from ..training.loop import TrainConfig

EMBEDDED_DATA = "embedded:iron_water_xtb.extxyz"
#: the BPNNs' input: the PCA of SOAP, one for every BPNN of a seed
SOAP_DESCRIPTOR = "soap-pca/descriptor"
#: feature sets that are references, not layers of the trained models
REFERENCES = ("autoencoder/latent", "pcovr/latent", SOAP_DESCRIPTOR)
#: the name of a sweep entry's fixed input (its descriptor) ends so: a
#: reference, not a learned layer
DESCRIPTOR_SUFFIX = "/descriptor"


def is_reference(name: str) -> bool:
    """Whether the feature set ``name`` is a reference or a descriptor (the
    same for every seed, learned by no model) rather than a trained layer."""
    return name in REFERENCES or name.endswith(DESCRIPTOR_SUFFIX)


def layer_set_name(model: str, layer: str, task: Optional[str] = None) -> str:
    """The study's name of ``layer`` of ``model`` (a sweep entry, whose
    ``task`` is given, or an external model): ``<model>/<layer>``, except
    the input, a descriptor rather than a learned layer: the BPNNs' PCA of
    SOAP (``soap-pca/descriptor``, one for every BPNN of a seed) and
    ``<model>/descriptor`` for the others (e.g. the equivariant potential's
    projected lambda-SOAP)."""
    if layer != "input":
        return f"{model}/{layer}"
    if task == "potential":
        return SOAP_DESCRIPTOR
    return f"{model}{DESCRIPTOR_SUFFIX}"


class StudyError(EquilensError):
    """A stage of the study failed; the message names the stage and input."""


@dataclass(frozen=True)
class ArchitectureConfig:
    """One entry of the sweep: a name, a training task and its sections; it
    is trained with every seed on the study's data, descriptor and training
    settings.

    :param name: the entry's name in tables and plots
    :param task: a task that trains a potential (``potential``,
        ``equivariant_potential``, ...; see ``equilens config list``)
    :param model: the task's ``model:`` section
    :param training: overrides of the study's ``training`` section
    :param options: the task's other sections (e.g. ``features`` of an
        equivariant potential), as in its training configuration
    """

    name: str
    task: str = "potential"
    model: Dict[str, Any] = field(default_factory=dict)
    training: Dict[str, Any] = field(default_factory=dict)
    options: Dict[str, Any] = field(default_factory=dict)


def _default_sweep() -> Tuple[ArchitectureConfig, ...]:
    return (
        ArchitectureConfig("silu-2x32", model={"hidden": [32, 32], "activation": "silu"}),
        ArchitectureConfig("silu-2x64", model={"hidden": [64, 64], "activation": "silu"}),
        ArchitectureConfig("silu-3x64", model={"hidden": [64, 64, 64], "activation": "silu"}),
        ArchitectureConfig(
            "tanh-2x64-bottleneck8",
            model={"hidden": [64, 64], "activation": "tanh", "bottleneck": 8, "layer_norm": True},
        ),
        ArchitectureConfig(
            "equivariant-2x32",
            task="equivariant_potential",
            model={"hidden": [32, 32]},
            training={"learning_rate": 6e-3},
            # a richer invariant channel, cheaper covariant ones: validation
            # forces 0.154 eV/A against 0.170 with 32 per lambda (seeds 0-2,
            # the same time per epoch); docs/benchmarks.md, 2026-12-07
            options={"features": {"density_components": 8, "n_components": [96, 16, 8]}},
        ),
    )


@dataclass(frozen=True)
class StudyConfig:
    """The latent-space study: everything ``equilens study`` reads from its YAML file.

    ``models`` adds external models to the sweep: their layers are scored,
    compared and mapped like the trained ones'.

    :param name: the study's name (outputs in ``<output_dir>/<name>``)
    :param data: the labelled frames and how validation and test are held out
    :param read: how frames are read and validated (energies and forces required)
    :param descriptor: the SOAP of every trained model (default: the ``small``
        preset with the radial scaling
        :data:`~equilens.descriptors.config.RADIAL_SCALING`)
    :param compression: the per-species PCA of SOAP of every trained model
    :param training: the training settings shared by the sweep (default: 40
        epochs of 16 frames, cosine schedule from 2e-3; on the embedded set the
        same validation forces as 8 frames from 1e-3 in 0.6 of the time,
        ``docs/benchmarks.md``)
    :param sweep: the architectures trained, each with every seed
    :param models: models read, not trained, next to the sweep: specs of
        :func:`equilens.models.load` (``sevenn:7net-0``, a metatomic ``.pt``,
        an equilens ``model.pt``)
    :param seeds: the training seeds of every architecture
    :param labels: cutoffs of the physical labels the layers are scored against
    :param analysis_frames: training frames whose atoms are analysed (layers,
        scorecard, maps)
    :param autoencoder_width: width of the nonlinear reference space (an
        autoencoder of SOAP) the layers are compared with
    :param autoencoder_epochs: training epochs of that autoencoder
    :param max_samples: the most atoms per scorecard fit and comparison
        (seeded subsample)
    :param output_dir: where ``<name>/`` is written
    :param chemiscope_dir: where ``<name>.json.gz`` is written
    :param cache_dir: where descriptors and features are cached (``null``: no cache)
    """

    name: str = "default"
    data: SplitConfig = field(
        default_factory=lambda: SplitConfig(train=EMBEDDED_DATA, validation_fraction=0.15)
    )
    read: ReadOptions = field(default_factory=lambda: ReadOptions(require_forces=True))
    descriptor: DescriptorConfig = field(
        default_factory=lambda: DescriptorConfig(
            preset="small", species=(1, 8, 26), hypers={"radial_scaling": list(RADIAL_SCALING)}
        )
    )
    compression: CompressionConfig = field(default_factory=lambda: CompressionConfig(64))
    training: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=40, learning_rate=2e-3, scheduler="cosine", batch_size=16
        )
    )
    sweep: Tuple[ArchitectureConfig, ...] = field(default_factory=_default_sweep)
    models: Tuple[str, ...] = ()
    seeds: Tuple[int, ...] = (0, 1, 2)
    labels: LabelConfig = field(default_factory=LabelConfig)
    analysis_frames: int = 200
    autoencoder_width: int = 8
    autoencoder_epochs: int = 200
    max_samples: int = 4000
    output_dir: str = "results"
    chemiscope_dir: str = "chemiscope_out"
    cache_dir: Optional[str] = ".equilens_cache"

    def __post_init__(self):
        if len(self.seeds) < 1:
            raise ConfigError("the study needs at least one seed")
        for key in ("analysis_frames", "autoencoder_width", "autoencoder_epochs", "max_samples"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        names = [a.name for a in self.sweep]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"sweep architectures need unique names, got {names}")


def load_study_config(path: Optional[str]) -> StudyConfig:
    """The default configuration, or one read from YAML (unknown keys named)."""
    if path is None:
        return StudyConfig()
    return from_mapping(StudyConfig, load_yaml(path), where=str(path))
