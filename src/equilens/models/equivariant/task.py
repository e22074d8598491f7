"""The ``equivariant_potential`` task: an equivariant network on lambda-SOAP,
trained on energies and forces.

``train_equivariant_potential(config)`` reads the splits, fits the density
compression and the lambda-SOAP projection on the training frames
(:class:`~equilens.descriptors.equivariant.EquivariantFeatures`), computes
every split's features with their projected position gradients once (cached
on disk) and trains the module with the loop, the composition baseline, the
metrics and the files every potential writes
(:func:`equilens.models.energy.task.fit_and_write`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from ...config import to_mapping
from ...data.io import Dataset
from ...descriptors.budget import check_feature_memory, density_gradient_frames
from ...descriptors.equivariant import EquivariantFeatures, check_features, featurize_equivariant
from ...descriptors.feature_batches import feature_batches
from ...storage import (
    hash_frames,
)
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
from .config import EquivariantPotentialConfig
from .model import EquivariantPotential


@dataclasses.dataclass
class _Inputs:
    """What a run trains on: its splits (the training frames in the seed's
    order), elements, fitted maps and features (cached)."""

    splits: Dict[str, Dataset]
    species: Tuple[int, ...]
    features: EquivariantFeatures
    computed: Dict[str, Features]
    fingerprint: Dict[str, Any]
    timings: Dict[str, float]


def _inputs(
    config: EquivariantPotentialConfig, progress: bool, claim: bool, overwrite: bool = False
) -> _Inputs:
    """Read, fit the maps and featurize (the steps before the network); with
    ``claim``, the output folder is claimed for this run first (``overwrite``:
    from another run)."""
    timings: Dict[str, float] = {}
    start = time.perf_counter()
    # the features are computed (and cached) in file order, so that the models
    # of a study's seeds share them, then put in each seed's training order
    splits = read_splits(config, shuffle=False)
    found = set().union(*(set(d.species) for d in splits.values()))
    species = config.descriptor.species or tuple(sorted(found))
    hypers = config.descriptor.featomic_dict()
    data = {
        name: {"structures": hash_frames(d.frames), "targets": target_hash(d)}
        for name, d in splits.items()
    }
    fingerprint = run_fingerprint(config, data)
    if claim:
        claim_run(config, fingerprint, overwrite, EquivariantPotential.load)
    timings["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    features = _fitted_features(splits["train"].frames, species, hypers, config)
    check_features(features, species)
    timings["compression_s"] = time.perf_counter() - start

    start = time.perf_counter()
    order = training_order(config, len(splits["train"]))
    computed = _split_features(splits, features, config, progress, order)
    splits["train"] = splits["train"].subset(order)
    timings["features_s"] = time.perf_counter() - start
    return _Inputs(splits, tuple(species), features, computed, fingerprint, timings)


def prepare_shared(config: EquivariantPotentialConfig, progress: bool = False) -> None:
    """The family's ``prepare`` (:func:`equilens.models.registry.prepare_shared`):
    the fitted maps and every split's features, cached."""
    _inputs(config, progress, claim=False)


def train_equivariant_potential(
    config: EquivariantPotentialConfig,
    progress: bool = True,
    stop_after: Optional[int] = None,
    overwrite: bool = False,
) -> Tuple[EquivariantPotential, Dict[str, Any]]:
    """Run the whole training; returns the potential and the summary written
    to ``metrics.json``.

    :param stop_after: stop (as if interrupted) after this epoch
    :param overwrite: replace the outputs of another run in the output folder
    """
    try:
        inputs = _inputs(config, progress, claim=True, overwrite=overwrite)
    except FinishedRun as finished:  # this run, already finished in its folder
        return finished.model, finished.summary
    features, species = inputs.features, inputs.species
    dtype = config.training.torch_dtype
    with torch.random.fork_rng():
        torch.manual_seed(config.training.seed)
        potential = EquivariantPotential.build(features, config.model, dtype)
    potential.metadata = {
        "config": to_mapping(config),
        "species": list(species),
        "architecture": {
            "summary": f"{len(species)} elements: lambda-SOAP of a compressed density "
            f"(lambda <= {config.features.lambda_max}), equivariant network "
            f"{list(config.model.hidden)}"
        },
    }
    if progress:
        print(f"{config.name}: {potential.metadata['architecture']['summary']}")
    summary = fit_and_write(
        config,
        potential,
        inputs.computed,
        inputs.splits,
        species,
        inputs.timings,
        inputs.fingerprint,
        progress,
        stop_after,
    )
    return potential, summary


def shared_work(config: EquivariantPotentialConfig) -> Optional[str]:
    """Runs that fit the same maps and compute the same features (every
    training seed of a study: they are computed in file order)."""
    sections = ("data", "read", "descriptor", "features", "cache_dir")
    return energy_shared_work(config, sections, ("dtype",))


def _fitted_features(frames, species, hypers: dict, config) -> EquivariantFeatures:
    """The density compression and product projection fitted on ``frames``;
    with a ``cache_dir``, kept there (the seeds of a study fit the same maps
    on the same frames: one fit, a few seconds each, instead of one per
    seed). The entry holds plain arrays (``weights_only`` loading)."""
    settings = config.features

    def fit() -> EquivariantFeatures:
        return EquivariantFeatures(
            species, hypers, settings.lambda_max, settings.density_components, settings.n_components
        ).fit(frames, settings.max_atoms, settings.seed)

    identity = {
        "frames": hash_frames(frames),
        "species": list(species),
        "hypers": hypers,
        "settings": [
            settings.lambda_max,
            settings.density_components,
            settings.n_components,
            settings.max_atoms,
            settings.seed,
        ],
    }
    return cached_fit(
        config.cache_dir,
        "equivariant-maps",
        identity,
        fit,
        EquivariantFeatures.state,
        lambda state: EquivariantFeatures.from_state(state, hypers),
        "equivariant maps",
    )


def _split_features(
    splits,
    features: EquivariantFeatures,
    config: EquivariantPotentialConfig,
    progress: bool,
    order: np.ndarray,
) -> Dict[str, Features]:
    """Every split's features (cached; a split given twice computed once;
    the training frames' in ``order``), after checking that they fit in
    memory (without a cache) or, split by split before writing it, on disk."""
    storage = torch.finfo(getattr(torch, config.features.gradient_storage)).bits // 8
    cutoff = float(features.hypers["cutoff"]["radius"])

    def check(frames, folder=None):
        check_feature_memory(frames, cutoff, features.width, storage, folder=folder)

    if config.cache_dir is None:
        check([atoms for dataset in splits.values() for atoms in dataset.frames])
    settings = {
        "features": features.fingerprint(),
        "dtype": str(config.training.torch_dtype),
        "gradient_storage": config.features.gradient_storage,
    }

    def compute(dataset: Dataset):
        size = config.features.batch_size or density_gradient_frames(
            dataset.frames, len(features.species), features.hypers
        )

        def batches(per_process: Optional[int]):
            featurize = functools.partial(
                featurize_equivariant,
                features=features,
                batch_size=size,
                dtype=config.training.torch_dtype,
                gradient_dtype=getattr(torch, config.features.gradient_storage),
            )
            return feature_batches(dataset.frames, size, featurize, progress, per_process)

        return cached_features(
            dataset, settings, config.cache_dir, batches, config.training.torch_dtype, check
        )

    return split_features(splits, compute, order, cached=config.cache_dir is not None)
