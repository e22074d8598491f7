"""End-to-end jobs that the CLI and the workflow scripts run.

Each job takes validated inputs, writes its outputs to a folder and returns a
summary (also written as JSON), so that the CLI stays a thin layer of
argument parsing.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import ase

from ..config import to_mapping
from ..descriptors import DescriptorConfig, compute_descriptor
from ..storage import save_json, save_tensormap
from ..tensormaps import tag_structures
from .plots import plot_invariant_pca

PathLike = Union[str, "os.PathLike[str]"]


def descriptor_job(
    frames: Sequence[ase.Atoms],
    name: str,
    configs: Sequence[DescriptorConfig],
    output_dir: PathLike,
    cache_dir: Optional[PathLike] = None,
    progress: bool = True,
    source: Optional[str] = None,
) -> Dict[str, Any]:
    """Compute each descriptor of ``configs`` for ``frames`` and save it.

    Writes ``<output_dir>/<name>-<kind>.mts`` for each descriptor, a PCA plot
    of the invariant part ``<name>-<kind>-pca.png``, and ``<name>.json`` with
    the hypers, the sizes and the timings.
    """
    output_dir = Path(output_dir)
    species = sorted({int(z) for atoms in frames for z in atoms.numbers})
    summary: Dict[str, Any] = {
        "name": name,
        "source": source,
        "n_frames": len(frames),
        "n_atoms": sum(len(atoms) for atoms in frames),
        "descriptors": {},
    }
    for config in configs:
        if config.species is None:
            config = dataclasses.replace(config, species=tuple(species))
        start = time.perf_counter()
        cache = None if cache_dir is None else str(cache_dir)
        tensor = compute_descriptor(frames, config, cache_dir=cache, progress=progress)
        elapsed = time.perf_counter() - start
        tag_structures(tensor, frames)
        path = save_tensormap(output_dir / f"{name}-{config.kind}.mts", tensor)
        plot = plot_invariant_pca(
            tensor, output_dir / f"{name}-{config.kind}-pca.png", f"{name}: {config.kind}"
        )
        summary["descriptors"][config.kind] = {
            "file": str(path),
            "plot": str(plot),
            "config": to_mapping(config),
            "keys": tensor.keys.names,
            "n_blocks": len(tensor.keys),
            "properties": tensor.block(0).properties.names,
            "n_properties": {
                "_".join(str(v) for v in key.values): block.values.shape[-1]
                for key, block in tensor.items()
            },
            "seconds": round(elapsed, 3),
        }
    save_json(output_dir / f"{name}.json", summary)
    return summary
