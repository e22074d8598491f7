"""The ``potential`` task: a BPNN on energies and forces, end to end.

``train_potential(config)`` reads the data, computes SOAP, fits the per-species
compression on the training frames, precomputes the projected features and
their gradients (cached on disk), fits the composition baseline, trains with
:func:`equilens.training.loop.fit` and writes into the output folder (the
files of every task, see :mod:`equilens.training`):

- ``model.pt``: the :class:`~equilens.models.bpnn.model.Potential`;
- ``metrics.json``: errors on every split (meV/atom, eV/Å, per species), and
  of the composition-only baseline;
- ``log.csv``, ``checkpoint.pt``, ``run.json``, ``parity_<split>.png``,
  ``learning_curve.png``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from ...config import to_mapping
from ...data.io import Dataset
from ...descriptors import DescriptorConfig, compute_soap
from ...descriptors.budget import check_compression_memory, check_feature_memory
from ...descriptors.compression import SpeciesPCA
from ...descriptors.projected import featurize_batches
from ...storage import hash_frames
from ...training.config import FinishedRun, claim_run, run_fingerprint
from ..energy.task import (
    Features,
    cached_features,
    cached_fit,
    fit_and_write,
    read_splits,
    split_features,
    target_hash,
    training_order,
)
from ..energy.task import shared_work as energy_shared_work
from . import finetune as _finetune
from .config import PotentialConfig, describe_architecture
from .model import Potential

#: frames per SOAP computation while fitting the compression
COMPRESSION_BATCH = 50


@dataclasses.dataclass
class _Inputs:
    """What a run trains on: its splits (the training frames in the seed's
    order), elements, descriptor, compression and features (cached)."""

    config: PotentialConfig
    splits: Dict[str, Dataset]
    base: Optional[Potential]
    species: Tuple[int, ...]
    hypers: dict
    architecture: dict
    pca: SpeciesPCA
    features: Dict[str, Features]
    fingerprint: Dict[str, Any]
    timings: Dict[str, float]


def _inputs(
    config: PotentialConfig, progress: bool, claim: bool, overwrite: bool = False
) -> _Inputs:
    """Read, compress and featurize (the steps before the network); with
    ``claim``, the output folder is claimed for this run first (``overwrite``:
    from another run)."""
    timings = {}
    start = time.perf_counter()
    splits = read_splits(config, shuffle=False)
    base, config, hypers = _base_model(config)
    found = set().union(*(set(d.species) for d in splits.values()))
    species = config.descriptor.species or tuple(sorted(found | set(base.species if base else ())))
    hypers, architecture = _resolve(config, species, hypers if base else None, progress)
    dtype = config.training.torch_dtype
    data: Dict[str, Any] = {
        name: {"structures": hash_frames(d.frames), "targets": target_hash(d)}
        for name, d in splits.items()
    }
    if config.finetune is not None:
        data["base"] = _finetune.base_fingerprint(config.finetune)
    fingerprint = run_fingerprint(config, data)
    if claim:
        claim_run(config, fingerprint, overwrite, Potential.load)
    timings["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    pca = _fit_compression(splits["train"], species, hypers, config, architecture["shared"])
    if base is not None and config.finetune is not None:
        pca = _finetune.compression(base, pca, config.finetune.compression)
    timings["compression_s"] = time.perf_counter() - start

    start = time.perf_counter()
    # computed in file order (shared by the training seeds), trained in the
    # seed's order (consecutive-block batches then mix the trajectory)
    order = training_order(config, len(splits["train"]))
    features = _split_features(splits, hypers, pca, dtype, config, progress, order)
    splits["train"] = splits["train"].subset(order)
    timings["features_s"] = time.perf_counter() - start
    return _Inputs(
        config, splits, base, species, hypers, architecture, pca, features, fingerprint, timings
    )


def prepare_shared(config: PotentialConfig, progress: bool = False) -> None:
    """The family's ``prepare`` (:func:`equilens.models.registry.prepare_shared`):
    the compression and every split's features, cached."""
    _inputs(config, progress, claim=False)


def train_potential(
    config: PotentialConfig,
    progress: bool = True,
    stop_after: Optional[int] = None,
    overwrite: bool = False,
) -> Tuple[Potential, Dict[str, Any]]:
    """Run the whole training; returns the potential and the summary written
    to ``metrics.json``.

    :param stop_after: stop (as if interrupted) after this epoch
    :param overwrite: replace the outputs of another run in the output folder
    """
    try:
        inputs = _inputs(config, progress, claim=True, overwrite=overwrite)
    except FinishedRun as finished:  # this run, already finished in its folder
        return finished.model, finished.summary
    config, base = inputs.config, inputs.base
    with torch.random.fork_rng():
        torch.manual_seed(config.training.seed)
        potential = Potential.build(
            inputs.hypers, inputs.pca, config.model, config.training.torch_dtype
        )
    potential.metadata = {
        "config": to_mapping(config),
        "species": list(inputs.species),
        "architecture": inputs.architecture,
    }
    start_from_base = None
    if base is not None and config.finetune is not None:
        finetune = config.finetune

        def start_from_base(baseline):
            _finetune.start_from_base(potential.module, base, finetune, baseline)

    summary = fit_and_write(
        config,
        potential,
        inputs.features,
        inputs.splits,
        inputs.species,
        inputs.timings,
        inputs.fingerprint,
        progress,
        stop_after,
        start_from_base,
    )
    return potential, summary


def shared_work(config: PotentialConfig) -> Optional[str]:
    """Runs that compute the same compression and features (every training
    seed of a study: they are computed in file order): the key of
    :func:`energy.task.shared_work <equilens.models.energy.task.shared_work>`."""
    sections = ("data", "read", "descriptor", "compression", "finetune", "cache_dir")
    return energy_shared_work(config, sections, ("dtype",))


def _resolve(config: PotentialConfig, species, base_hypers, progress: bool):
    """The descriptor hypers (a base model's, else the configuration's for
    these elements) and the architecture, announced in one line."""
    hypers = base_hypers or config.descriptor.descriptor_hypers(len(species))
    architecture = describe_architecture(config.model, species, hypers)
    if progress:
        print(f"{config.name}: {architecture['summary']}")
    return hypers, architecture


def _base_model(config: PotentialConfig) -> Tuple[Optional[Potential], PotentialConfig, dict]:
    """The base potential of a fine-tuning run (else None), the configuration
    with the base's compression width and architecture, and the SOAP hypers."""
    hypers = config.descriptor.featomic_dict()
    if config.finetune is None:
        return None, config, hypers
    base = _finetune.load_base(config.finetune)
    _finetune.check_hypers(hypers, base, DescriptorConfig().featomic_dict())
    compression = dataclasses.replace(config.compression, n_components=base.pca.n_components)
    config = dataclasses.replace(config, compression=compression, model=base.config)
    return base, config, base.hypers


def _split_features(splits, hypers, pca, dtype, config, progress, order) -> Dict[str, Features]:
    """Projected SOAP features of every split (a split given twice is
    featurized once), after checking that they fit in memory (without a
    cache) or, split by split before writing it, on disk."""
    storage = torch.finfo(getattr(torch, config.compression.gradient_storage)).bits // 8
    cutoff = float(hypers["cutoff"]["radius"])
    k = config.compression.n_components

    def check(frames, folder=None):
        check_feature_memory(frames, cutoff, k, storage, folder=folder)

    if config.cache_dir is None:
        check([atoms for dataset in splits.values() for atoms in dataset.frames])
    return split_features(
        splits,
        lambda dataset: _cached_features(dataset, hypers, pca, dtype, config, progress, check),
        order,
        cached=config.cache_dir is not None,
    )


def _fit_compression(
    train: Dataset, species, hypers, config: PotentialConfig, shared: bool
) -> SpeciesPCA:
    """The per-species PCA fitted on the training frames; with a
    ``cache_dir``, kept there (the runs of a study fit the same PCA on the
    same frames: one fit instead of one per run). The entry holds plain
    arrays (``weights_only`` loading)."""
    settings = to_mapping(config.compression)
    settings.pop("gradient_storage")  # how the features are stored, not the fit
    identity = {
        "frames": hash_frames(train.frames),
        "species": list(species),
        "hypers": hypers,
        "compression": settings,
        "shared": shared,
    }
    return cached_fit(
        config.cache_dir,
        "compression",
        identity,
        lambda: _fitted_compression(train, species, hypers, config, shared),
        SpeciesPCA.state,
        SpeciesPCA.from_state,
        "compression",
    )


def _fitted_compression(
    train: Dataset, species, hypers, config: PotentialConfig, shared: bool
) -> SpeciesPCA:
    compression = config.compression
    check_compression_memory(
        train.frames, species, hypers, compression.max_samples, shared, COMPRESSION_BATCH
    )
    gradients = None
    if compression.gradient_weight > 0 and compression.gradient_frames > 0:
        rng = np.random.default_rng(compression.seed)
        count = min(compression.gradient_frames, len(train))
        chosen = np.sort(rng.choice(len(train), count, replace=False))
        # one frame at a time: dense gradients take ~170 MB per 164-atom frame
        gradients = (
            compute_soap([train.frames[i]], species, hypers, gradients=True, neighbors="properties")
            for i in chosen
        )
    return SpeciesPCA(
        n_components=compression.n_components,
        whiten=compression.whiten,
        max_samples=compression.max_samples,
        gradient_weight=compression.gradient_weight,
        seed=compression.seed,
        shared=shared,
    ).fit_batches(
        train.frames,
        species,
        lambda batch: compute_soap(batch, species, hypers),
        COMPRESSION_BATCH,
        gradients,
    )


def _cached_features(dataset: Dataset, hypers, pca: SpeciesPCA, dtype, config, progress, check):
    settings = {
        "hypers": hypers,
        "pca": pca.fingerprint(),
        "dtype": str(dtype),
        "gradient_storage": config.compression.gradient_storage,
    }
    storage = getattr(torch, config.compression.gradient_storage)

    def batches(per_process: Optional[int]):
        return featurize_batches(
            dataset.frames,
            hypers,
            pca,
            dtype=dtype,
            progress=progress,
            gradient_dtype=storage,
            per_process=per_process,
        )

    return cached_features(dataset, settings, config.cache_dir, batches, dtype, check)
