"""SOAP and lambda-SOAP descriptors as metatensor TensorMaps.

Two descriptors, both computed with featomic:

``soap``
    The SOAP power spectrum (:func:`compute_soap`). Keys ``center_type``;
    samples ``(system, atom)``; properties
    ``(neighbor_1_type, neighbor_2_type, l, n_1, n_2)``; optionally gradients
    with respect to positions.
``lambda_soap``
    The equivariant power spectrum, "lambda-SOAP" (:func:`compute_lambda_soap`)
    up to ``lambda_max``. Keys ``(o3_lambda, o3_sigma, center_type)``; samples
    ``(system, atom)``; components ``o3_mu``; properties
    ``(l_1, l_2, neighbor_1_type, n_1, neighbor_2_type, n_2)``.

The neighbor types are moved to properties over a *fixed* species list and
every center type of that list gets a block, so the metadata never depend on
which species a particular frame contains. With position gradients SOAP keeps
the neighbor types in the keys by default (every key of the species list,
empty blocks where absent), which avoids zero-padded dense gradients.
:func:`compute_descriptor` adds a
cache keyed by a hash of the hypers, the species list and the structures.

Compressions fitted once on training data (:class:`SpeciesPCA`,
:class:`EquivariantPCA`) and the projected SOAP with exact position
gradients that force training uses (:func:`featurize`, :class:`FeatureSet`)
live here too.
"""

from __future__ import annotations

from typing import Optional, Sequence

import ase
import featomic
from metatensor import TensorMap

from ..storage import TensorMapCache, hash_frames, hash_json
from ._batches import frames_species
from .compression import EquivariantPCA, SpeciesPCA
from .config import PRESETS, RADIAL_SCALING, AlchemicalConfig, DescriptorConfig, SoapHypers
from .lambda_soap import compute_lambda_soap
from .projected import FeatureSet, featurize
from .soap import compute_soap

#: bump when the layout of computed descriptors changes, to invalidate caches
CACHE_FORMAT = 2

__all__ = [
    "PRESETS",
    "RADIAL_SCALING",
    "AlchemicalConfig",
    "DescriptorConfig",
    "EquivariantPCA",
    "FeatureSet",
    "SoapHypers",
    "SpeciesPCA",
    "featurize",
    "compute_descriptor",
    "compute_lambda_soap",
    "compute_soap",
    "descriptor_metadata",
]


def compute_descriptor(
    frames: Sequence[ase.Atoms],
    config: DescriptorConfig,
    cache_dir: Optional[str] = None,
    progress: bool = False,
) -> TensorMap:
    """Compute (or load from the cache) the descriptor ``config`` of ``frames``.

    The cache entry is keyed by the resolved featomic hypers, the species list,
    ``lambda_max``, the sigma and gradient options, the featomic version and a
    hash of the structures (numbers, positions, cell, pbc); ``batch_size``
    does not enter since it does not change the result.

    :param cache_dir: folder of the cache; ``None`` computes without caching
    """
    species = config.species if config.species is not None else frames_species(frames)
    hypers = config.descriptor_hypers(len(species))
    description = descriptor_metadata(config, species)
    key = hash_json({**description, "frames": hash_frames(frames)})

    def compute() -> TensorMap:
        if config.kind == "soap":
            return compute_soap(
                frames,
                species,
                hypers,
                gradients=config.gradients,
                batch_size=config.batch_size,
                progress=progress,
                neighbors=config.layout,
            )
        return compute_lambda_soap(
            frames,
            species,
            hypers,
            config.lambda_max,
            include_improper=config.include_improper,
            batch_size=config.batch_size,
            progress=progress,
        )

    cache = TensorMapCache(cache_dir)
    metadata = {**description, "n_frames": len(frames)}
    return cache.get_or_compute(config.kind, key, compute, metadata=metadata)


def descriptor_metadata(config: DescriptorConfig, species: Sequence[int]) -> dict:
    """Everything that determines a descriptor's values, as plain data."""
    description = {
        "kind": config.kind,
        "featomic_hypers": config.descriptor_hypers(len(species)),
        "species": [int(s) for s in species],
        "gradients": config.gradients,
        "featomic_version": featomic.__version__,
        "cache_format": CACHE_FORMAT,
    }
    if config.kind == "soap":
        description["neighbors"] = config.layout
    else:
        description["lambda_max"] = config.lambda_max
        description["include_improper"] = config.include_improper
    return description
