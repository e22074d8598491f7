"""Latents of datasets too large for memory: written per chunk, read lazily.

:func:`save_latent_chunks` evaluates a model on ``chunk_frames`` frames at a
time and writes each chunk as a latents folder of its own
(``chunk-00000/``, ... with one ``.mts`` per layer, ``system`` indices
global), with a top-level ``layers.json`` listing the layers and the chunks.
:func:`iter_latent_chunks` reads them back one chunk at a time, and
:func:`chunk_arrays` turns chunks of several latents folders into the
``{name: rows}`` mappings that :class:`~equilens.analysis.streaming.StreamingComparison`
accumulates, so that a comparison never holds more than one chunk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence

import ase
import numpy as np
from metatensor import Labels, TensorMap
from tqdm.auto import tqdm

from ..errors import EquilensError
from ..storage import atomic_write, hash_frames
from ..tensormaps import join_by_system, stack_blocks
from .latents import PathLike, arrange_layers, load_latents, save_latents


def save_latent_chunks(
    directory: PathLike,
    model,
    frames: Sequence[ase.Atoms],
    chunk_frames: int,
    batch_size: int = 50,
    source: Optional[dict] = None,
    progress: bool = True,
    **layout,
) -> Path:
    """Every layer of ``model`` on ``frames``, ``chunk_frames`` frames at a time.

    :param layout: ``per_species``, ``pooling``, ``invariant`` as in
        :func:`~equilens.analysis.latents.latents`
    """
    if chunk_frames < 1:
        raise EquilensError(f"chunk_frames must be >= 1, got {chunk_frames}")
    directory = Path(directory)
    chunks: List[str] = []
    names: List[str] = []
    starts = range(0, len(frames), chunk_frames)
    bar = tqdm(starts, desc="latents", unit="chunk", disable=not progress)
    for number, start in enumerate(bar):
        part = frames[start : start + chunk_frames]
        layers = arrange_layers(model.layers(part, batch_size=batch_size), **layout)
        layers = {name: join_by_system([(start, t)]) for name, t in layers.items()}
        names = list(layers)
        chunks.append(f"chunk-{number:05d}")
        save_latents(directory / chunks[-1], layers, part, source)
    index = {
        "layers": names,
        "chunks": chunks,
        "chunk_frames": chunk_frames,
        "structures": hash_frames(frames),
        "n_frames": len(frames),
        "source": source or {},
    }
    with atomic_write(directory / "layers.json", "w") as handle:
        json.dump(index, handle, indent=2)
    return directory


def latent_chunks(directory: PathLike) -> List[Path]:
    """The chunk folders of ``directory`` in order (itself if not chunked)."""
    directory = Path(directory)
    index = directory / "layers.json"
    if not index.is_file():
        raise EquilensError(f"{directory}: no layers.json; not a latents folder")
    chunks = json.loads(index.read_text()).get("chunks")
    if chunks is None:
        return [directory]
    missing = [c for c in chunks if not (directory / c / "layers.json").is_file()]
    if missing:
        raise EquilensError(f"{directory}: chunk {missing[0]} listed in layers.json is missing")
    return [directory / c for c in chunks]


def iter_latent_chunks(directory: PathLike) -> Iterator[Dict[str, TensorMap]]:
    """``{layer: TensorMap}`` of each chunk of a latents folder, one at a time."""
    for chunk in latent_chunks(directory):
        yield load_latents(chunk)


def chunk_arrays(
    folders: Mapping[str, PathLike], per_species: bool = False
) -> Iterator[Dict[Optional[int], Dict[str, np.ndarray]]]:
    """Rows of every layer of several latents folders, chunk by chunk.

    :param folders: ``{prefix: latents folder}``; the sets are named
        ``prefix/layer``; every folder must be chunked the same way
    :param per_species: group the rows by center species (per-species
        blocks) instead of stacking all atoms
    :returns: one ``{species or None: {name: rows}}`` per chunk
    """
    chunked = {prefix: latent_chunks(folder) for prefix, folder in folders.items()}
    counts = {prefix: len(chunks) for prefix, chunks in chunked.items()}
    if len(set(counts.values())) != 1:
        raise EquilensError(f"latents folders have different numbers of chunks: {counts}")
    for position in range(next(iter(counts.values()))):
        groups: Dict[Optional[int], Dict[str, np.ndarray]] = {}
        samples: Dict[Optional[int], tuple] = {}
        for prefix, chunks in chunked.items():
            where = chunks[position].name
            for layer, tensor in load_latents(chunks[position]).items():
                name = f"{prefix}/{layer}"
                parts = _species_parts(tensor, name) if per_species else {None: tensor}
                if groups and set(parts) != set(groups):
                    raise EquilensError(
                        f"'{name}' holds species {sorted(parts)} in {where}, "
                        f"the others {sorted(groups)}"
                    )
                for group, part in parts.items():
                    values, rows = stack_blocks(part, name)
                    if group in samples and rows != samples[group][1]:
                        raise EquilensError(
                            f"'{samples[group][0]}' and '{name}' do not have the same samples "
                            f"in {where}"
                        )
                    samples.setdefault(group, (name, rows))
                    groups.setdefault(group, {})[name] = values
        yield groups


def _species_parts(tensor: TensorMap, name: str) -> Dict[Optional[int], TensorMap]:
    if "center_type" not in tensor.keys.names:
        raise EquilensError(f"'{name}' has no center_type key: write latents per species")
    parts: Dict[Optional[int], TensorMap] = {}
    for i, key in enumerate(tensor.keys):
        keys = Labels(tensor.keys.names, tensor.keys.values[i : i + 1])
        parts[int(key["center_type"])] = TensorMap(keys, [tensor.block(i).copy()])
    return parts
