"""Latent features of every layer of any model, as TensorMaps.

:func:`latents` returns ``{layer name: TensorMap}`` for every layer of a
model that implements the protocol of :mod:`equilens.models.base`, in order
(input, hidden layers, output), computed in batches of frames so that the
memory stays bounded. Equivariant layers (keys ``o3_lambda, o3_sigma,
center_type``) become their invariant summaries
(:func:`~equilens.tensormaps.invariant_summary`: the invariant channels and
the norm of every covariant channel) unless ``invariant=False``. Layouts:

- ``per_species=True`` (default): keys ``center_type``, one block per
  species, samples ``(system, atom)``, properties ``feature``;
- ``per_species=False``: one block (key ``_``) over all atoms, samples
  ``(system, atom, center_type)`` so that the species stays recoverable;
- ``pooling="mean"``, ``"sum"`` or ``"cumulants"`` (mean, variance and third
  cumulant of each feature, concatenated): one row per structure, samples
  ``system`` (per species when ``per_species=True``).

:func:`save_latents` / :func:`load_latents` store them as one ``.mts`` file
per layer next to a small JSON index that keeps the layer order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Literal, Optional, Sequence, Union

import ase
import metatensor
import numpy as np
from metatensor import Labels, TensorBlock, TensorMap

from ..errors import EquilensError
from ..storage import atomic_write, hash_frames, load_tensormap, save_tensormap
from ..tensormaps import invariant_summary, tag_structures

PathLike = Union[str, "os.PathLike[str]"]


def latents(
    model,
    frames: Sequence[ase.Atoms],
    per_species: bool = True,
    pooling: Optional[Literal["mean", "sum", "cumulants"]] = None,
    batch_size: int = 50,
    invariant: bool = True,
) -> Dict[str, TensorMap]:
    """Every layer of ``model`` for the atoms of ``frames``.

    :param model: any :class:`~equilens.models.base.Model`
    :param per_species: one block per center species, or one block over all
        atoms with ``center_type`` in the samples
    :param pooling: ``None`` for per-atom features; ``"mean"``, ``"sum"`` or
        ``"cumulants"`` for one vector per structure
    :param batch_size: frames per forward pass
    :param invariant: replace equivariant layers by their invariant summaries
        (needed for per-species merging and pooling)
    """
    from ..models.base import Model

    _check_pooling(pooling)
    if not isinstance(model, Model):
        raise EquilensError(
            f"{type(model).__name__} does not implement the equilens model protocol "
            "(equilens.models.Model: layer_names, layers, predict)"
        )
    layers = model.layers(frames, batch_size=batch_size)
    return frame_latents(layers, frames, per_species, pooling, invariant)


def frame_latents(
    layers: Dict[str, TensorMap],
    frames: Sequence[ase.Atoms],
    per_species: bool = True,
    pooling: Optional[Literal["mean", "sum", "cumulants"]] = None,
    invariant: bool = True,
) -> Dict[str, TensorMap]:
    """:func:`latents` of layers already computed with ``model.layers(frames)``
    (``arrange_layers``, then the structures of ``frames`` tagged)."""
    arranged = arrange_layers(layers, per_species, pooling, invariant)
    return {name: tag_structures(tensor, frames) for name, tensor in arranged.items()}


def arrange_layers(
    layers: Dict[str, TensorMap],
    per_species: bool = True,
    pooling: Optional[Literal["mean", "sum", "cumulants"]] = None,
    invariant: bool = True,
) -> Dict[str, TensorMap]:
    """The layouts of :func:`latents` applied to layers already computed with
    ``model.layers(frames)``."""
    _check_pooling(pooling)
    result = {}
    for name, tensor in layers.items():
        if "o3_lambda" in tensor.keys.names:
            if not invariant:
                if per_species and pooling is None:
                    result[name] = tensor
                    continue
                raise EquilensError(
                    f"layer '{name}' is equivariant: merging species or pooling needs "
                    "invariant=True"
                )
            tensor = invariant_summary(tensor)
        if not per_species:
            tensor = _merge_species(tensor)
        if pooling is not None:
            tensor = _pool(tensor, pooling)
        result[name] = tensor
    return result


POOLINGS = ("mean", "sum", "cumulants")


def _check_pooling(pooling) -> None:
    if pooling is not None and pooling not in POOLINGS:
        raise EquilensError(f"pooling must be None or one of {POOLINGS}, got {pooling!r}")


def _merge_species(tensor: TensorMap) -> TensorMap:
    """One block over all atoms, ``center_type`` moved to the samples and the
    rows sorted by ``(system, atom)`` (a tensor already in one block stays one)."""
    merged = tensor.keys_to_samples("center_type") if "center_type" in tensor.keys.names else tensor
    block = merged.block(0)
    samples = block.samples.values
    order = np.lexsort((samples[:, 1], samples[:, 0]))
    sorted_block = TensorBlock(
        block.values[order],
        Labels(block.samples.names, samples[order]),
        block.components,
        block.properties,
    )
    return TensorMap(Labels.single(), [sorted_block])


def _pool(tensor: TensorMap, pooling: str) -> TensorMap:
    """Mean, sum or the first three cumulants over the atoms of each structure."""
    others = [name for name in tensor.block(0).samples.names if name != "system"]
    if pooling == "mean":
        return metatensor.mean_over_samples(tensor, sample_names=others)
    if pooling == "sum":
        return metatensor.sum_over_samples(tensor, sample_names=others)
    return TensorMap(tensor.keys, [_cumulants(block) for block in tensor.blocks()])


def _cumulants(block: TensorBlock) -> TensorBlock:
    """Per structure and feature: the mean, the variance and the third
    cumulant (third central moment) over the atoms, as in Chorna et al.,
    arXiv:2512.05717. Properties ``(cumulant, feature)`` with cumulant 1, 2, 3."""
    values = np.asarray(block.values, dtype=np.float64)
    systems, index = np.unique(np.asarray(block.samples.column("system")), return_inverse=True)
    counts = np.bincount(index, minlength=len(systems)).astype(np.float64)[:, None]
    mean = np.zeros((len(systems), values.shape[1]))
    np.add.at(mean, index, values)
    mean /= counts
    centered = values - mean[index]
    moments = []
    for order in (2, 3):
        moment = np.zeros_like(mean)
        np.add.at(moment, index, centered**order)
        moments.append(moment / counts)
    features = np.arange(values.shape[1])
    properties = np.array([[c, f] for c in (1, 2, 3) for f in features], dtype=np.int32).reshape(
        -1, 2
    )
    return TensorBlock(
        np.concatenate([mean, *moments], axis=1),
        Labels(["system"], systems.reshape(-1, 1).astype(np.int32)),
        [],
        Labels(["cumulant", "feature"], properties),
    )


def save_latents(
    directory: PathLike,
    layers: Dict[str, TensorMap],
    frames: Optional[Sequence[ase.Atoms]] = None,
    source: Optional[dict] = None,
) -> Path:
    """Write each layer to ``<directory>/<name>.mts`` and the order to
    ``layers.json`` (atomic writes), with a fingerprint of the structures
    (``frames``) and where they came from (``source``), so that layers of
    different structures are never compared by mistake."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, tensor in layers.items():
        if frames is not None:
            tag_structures(tensor, frames)
        save_tensormap(directory / f"{name}.mts", tensor)
    index: Dict[str, Any] = {"layers": list(layers), "source": source or {}}
    if frames is not None:
        index["structures"] = hash_frames(frames)
        index["n_frames"] = len(frames)
    with atomic_write(directory / "layers.json", "w") as handle:
        json.dump(index, handle, indent=2)
    return directory


def load_latents(directory: PathLike) -> Dict[str, TensorMap]:
    """Read layers written by :func:`save_latents`, in their order."""
    directory = Path(directory)
    index = directory / "layers.json"
    if not index.is_file():
        raise EquilensError(f"{directory}: no layers.json; not a latents folder")
    content = json.loads(index.read_text())
    names = content["layers"]
    if "chunks" in content:  # written per chunk of frames: joined here, in memory
        parts = [load_latents(directory / chunk) for chunk in content["chunks"]]
        return {
            name: metatensor.join([p[name] for p in parts], axis="samples", different_keys="union")
            for name in names
        }
    return {name: load_tensormap(directory / f"{name}.mts") for name in names}
