"""Latents of datasets too large for memory: written per chunk, read lazily.

:func:`save_latent_chunks` evaluates a model on ``chunk_frames`` frames at a
time and writes each chunk as a latents folder of its own
(``chunk-00000/``, ... with one ``.mts`` per layer, ``system`` indices
global), with a top-level ``layers.json`` listing the layers and the chunks.
A chunk already written for the same frames is kept (an interrupted run
resumes where it stopped), and with a Dask client the chunks are evaluated
as tasks on its workers (the model sent once to each). :func:`iter_latent_chunks`
reads them back one chunk at a time, and :func:`chunk_arrays` turns chunks
of several latents folders into the ``{name: rows}`` mappings that
:class:`~equilens.analysis.streaming.StreamingComparison` accumulates, so
that a comparison never holds more than one chunk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

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
    client: Optional[Any] = None,
    **layout,
) -> Path:
    """Every layer of ``model`` on ``frames``, ``chunk_frames`` frames at a time.

    A chunk whose folder already holds the layers of the same frames is not
    evaluated again. The folder must belong to this model and layout (the
    CLI checks it with its run record).

    :param client: a ``dask.distributed.Client``: the chunks are evaluated
        by its workers, which write them (the folder must be on a file
        system they share); ``None``: in this process
    :param layout: ``per_species``, ``pooling``, ``invariant`` as in
        :func:`~equilens.analysis.latents.latents`
    """
    if chunk_frames < 1:
        raise EquilensError(f"chunk_frames must be >= 1, got {chunk_frames}")
    directory = Path(directory).resolve()  # the workers' working folder may differ
    starts = list(range(0, len(frames), chunk_frames))
    chunks = [f"chunk-{number:05d}" for number in range(len(starts))]
    names: Dict[str, List[str]] = {}
    todo = []
    for chunk, start in zip(chunks, starts):
        part = list(frames[start : start + chunk_frames])
        written = _written_layers(directory / chunk, part)
        if written is not None:
            names[chunk] = written
        else:
            todo.append((chunk, start, part))
    options = dict(batch_size=batch_size, source=source, layout=layout)
    bar = tqdm(total=len(starts), initial=len(names), desc="latents", unit="chunk",
               disable=not progress)  # fmt: skip
    with bar:
        if client is None:
            for chunk, start, part in todo:
                names[chunk] = _latent_chunk(model, part, start, directory / chunk, **options)
                bar.update(1)
        else:
            from dask.distributed import as_completed

            shared = client.scatter(model, broadcast=True)
            futures = {
                client.submit(_latent_chunk, shared, part, start, directory / chunk,
                              **options, pure=False): chunk
                for chunk, start, part in todo
            }  # fmt: skip
            for future in as_completed(futures):
                names[futures[future]] = future.result()
                bar.update(1)
    layer_names = names[chunks[0]] if chunks else []
    index = {
        "layers": layer_names,
        "chunks": chunks,
        "chunk_frames": chunk_frames,
        "structures": hash_frames(frames),
        "n_frames": len(frames),
        "source": source or {},
    }
    with atomic_write(directory / "layers.json", "w") as handle:
        json.dump(index, handle, indent=2)
    return directory


def _latent_chunk(model, part, start: int, folder: Path, batch_size, source, layout) -> List[str]:
    """Evaluate and write one chunk (``system`` indices from ``start``);
    returns its layer names. Runs in this process or on a Dask worker."""
    layers = arrange_layers(model.layers(part, batch_size=batch_size), **layout)
    layers = {name: join_by_system([(start, t)]) for name, t in layers.items()}
    save_latents(folder, layers, part, source)
    return list(layers)


def _written_layers(folder: Path, part: Sequence[ase.Atoms]) -> Optional[List[str]]:
    """The layer names of a chunk already written for the frames ``part``
    (its ``layers.json``, written last, names them and their fingerprint),
    else ``None``."""
    index = folder / "layers.json"
    if not index.is_file():
        return None
    try:
        written = json.loads(index.read_text())
    except (ValueError, OSError, UnicodeDecodeError):
        return None
    if not isinstance(written, dict) or written.get("structures") != hash_frames(part):
        return None
    layers = written.get("layers")
    if not isinstance(layers, list) or not all((folder / f"{n}.mts").is_file() for n in layers):
        return None
    return [str(name) for name in layers]


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
