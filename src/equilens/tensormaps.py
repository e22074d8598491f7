"""Small helpers over metatensor TensorMaps shared by the whole package.

- building per-atom TensorMaps from arrays (:func:`atom_tensormap`);
- stacking invariant blocks into one array (:func:`stack_blocks`, or only
  the rows asked for: :class:`StackedBlocks`);
- moving TensorMaps between metatensor and metatensor-torch
  (:func:`to_metatensor_torch`, :func:`to_metatensor_numpy`);
- joining per-batch results (:func:`join_by_system`);
- the invariant summary of an equivariant layer (:func:`invariant_summary`).
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from metatensor import Labels, TensorBlock, TensorMap

from .errors import EquilensError

Key = Tuple[int, ...]


#: TensorMap info key holding the SHA-256 of the structures a tensor describes
STRUCTURES_INFO = "equilens.structures"


def tag_structures(tensor: TensorMap, frames) -> TensorMap:
    """Record in ``tensor`` (its metatensor info, saved in ``.mts`` files) a
    fingerprint of the structures it describes; returns ``tensor``."""
    from .storage import hash_frames

    tensor.set_info(STRUCTURES_INFO, hash_frames(frames))
    tensor.set_info("equilens.n_frames", str(len(frames)))
    return tensor


def warn_unfingerprinted(files: Dict[str, TensorMap]) -> None:
    """Warn about TensorMaps read from files that carry no structure
    fingerprint (written by another tool): :func:`check_same_structures`
    cannot check them, only their sample labels and counts are compared."""
    unchecked = [name for name, tensor in files.items() if STRUCTURES_INFO not in tensor.info()]
    if unchecked:
        warnings.warn(
            f"feature sets {', '.join(repr(n) for n in unchecked[:4])} carry no structure "
            "fingerprint (written by another tool): the structures could not be checked, "
            "only the sample labels and counts (compare layers of the same frames)",
            stacklevel=2,
        )


def check_same_structures(features) -> None:
    """Refuse feature sets (``{name: TensorMap or array}``) that record
    fingerprints of different structures, naming two of them."""
    seen: Dict[str, str] = {}
    for name, tensor in features.items():
        tag = tensor.info().get(STRUCTURES_INFO) if isinstance(tensor, TensorMap) else None
        if tag is None:
            continue
        for other, other_tag in seen.items():
            if other_tag != tag:
                raise EquilensError(
                    f"feature sets '{other}' and '{name}' were computed on different structures "
                    f"(fingerprints {other_tag[:12]} and {tag[:12]}): compare layers of the same "
                    "frames"
                )
        seen[name] = tag


def key_tuple(key) -> Key:
    """A TensorMap key (a ``LabelsEntry``) as a tuple of ints."""
    return tuple(int(v) for v in key.values)


def is_invariant(key: Key) -> bool:
    """``o3_lambda = 0`` and ``o3_sigma = 1`` (the first two key entries)."""
    return key[0] == 0 and key[1] == 1


def atom_tensormap(
    values: np.ndarray,
    system: np.ndarray,
    atom: np.ndarray,
    center_type: np.ndarray,
    per_species: bool = True,
    species: Optional[Sequence[int]] = None,
) -> TensorMap:
    """Per-atom ``values`` (rows: atoms) as a TensorMap with properties ``feature``.

    :param per_species: one block per center type (keys ``center_type``,
        samples ``(system, atom)``); otherwise one block (key ``_``) with
        samples ``(system, atom, center_type)``
    :param species: the center types to make blocks for (default: those
        present); absent ones get empty blocks
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    properties = Labels.range("feature", values.shape[1])
    if not per_species:
        samples = np.column_stack([system, atom, center_type]).astype(np.int32)
        block = TensorBlock(
            values, Labels(["system", "atom", "center_type"], samples), [], properties
        )
        return TensorMap(Labels.single(), [block])
    types = sorted({int(z) for z in center_type}) if species is None else list(species)
    blocks = []
    for z in types:
        mask = np.asarray(center_type) == z
        samples = np.column_stack([system[mask], atom[mask]]).astype(np.int32).reshape(-1, 2)
        blocks.append(
            TensorBlock(values[mask], Labels(["system", "atom"], samples), [], properties)
        )
    return TensorMap(Labels(["center_type"], np.array(types, dtype=np.int32)[:, None]), blocks)


def frame_atoms(frames) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(system, atom, center_type)`` of every atom of ``frames``, in order."""
    system = np.concatenate([np.full(len(f), s) for s, f in enumerate(frames)]).astype(np.int64)
    atom = np.concatenate([np.arange(len(f)) for f in frames]).astype(np.int64)
    numbers = np.concatenate([np.asarray(f.numbers) for f in frames]).astype(np.int64)
    return system, atom, numbers


class StackedBlocks:
    """The blocks of an invariant TensorMap as one array in sample order,
    gathered only for the rows asked for: choosing 10,000 of a million atoms
    copies those rows, not the whole set (:func:`stack_blocks` gathers all).

    :param tensor: blocks (e.g. one per species) with the same properties
        count and no components; rows are sorted by their sample values
        (``system``, ``atom``, ...)
    :param name: the set's name in error messages
    """

    def __init__(self, tensor: TensorMap, name: str):
        blocks, samples = [], []
        for block in tensor.blocks():
            if len(block.components) != 0:
                raise EquilensError(
                    f"feature set '{name}' has components {block.components[0].names}; use "
                    "the invariant blocks (or the equivariant measure) here"
                )
            blocks.append(np.asarray(block.values))
            samples.append(block.samples.values)
        if len({b.shape[1] for b in blocks}) > 1:
            raise EquilensError(
                f"feature set '{name}': blocks have different numbers of properties"
            )
        rows = np.concatenate(samples)
        #: the stacked row (blocks one after the other) of each sorted row
        self.order = np.lexsort(rows.T[::-1])
        self.samples = Labels(tensor.block(0).samples.names, rows[self.order].astype(np.int32))
        self._blocks = blocks
        self._starts = np.cumsum([0] + [len(b) for b in blocks])

    def __len__(self) -> int:
        return len(self.order)

    def rows(self, index: Optional[np.ndarray] = None) -> np.ndarray:
        """The values of the sorted rows ``index`` (all when ``None``)."""
        stacked = self.order if index is None else self.order[np.asarray(index)]
        if len(self._blocks) == 1:
            return self._blocks[0][stacked]
        block = np.searchsorted(self._starts, stacked, side="right") - 1
        values = np.empty((len(stacked), self._blocks[0].shape[1]), np.result_type(*self._blocks))
        for b, part in enumerate(self._blocks):
            mine = block == b
            values[mine] = part[stacked[mine] - self._starts[b]]
        return values


def stack_blocks(tensor: TensorMap, name: str) -> Tuple[np.ndarray, Labels]:
    """Values of all blocks of an invariant ``tensor`` stacked in sample order
    (:class:`StackedBlocks`, every row). ``name`` is used in error messages.

    :returns: ``(values, samples)``
    """
    stacked = StackedBlocks(tensor, name)
    return stacked.rows(), stacked.samples


def to_metatensor_torch(tensor: TensorMap, dtype=None, device=None):
    """The same TensorMap (numpy values) as a ``metatensor.torch`` TensorMap,
    through metatensor's own serialization (float64 unless ``dtype``)."""
    import metatensor.torch
    import torch
    from metatensor.io import save_buffer

    buffer = np.frombuffer(save_buffer(tensor), dtype=np.uint8).copy()
    result = metatensor.torch.load_buffer(torch.from_numpy(buffer))
    return result.to(dtype=dtype or torch.float64, device=device)


def to_metatensor_numpy(tensor) -> TensorMap:
    """A ``metatensor.torch`` TensorMap as a metatensor TensorMap with numpy
    float64 values (detached, on the CPU)."""
    import metatensor.torch
    import torch
    from metatensor.io import load_buffer

    plain = metatensor.torch.detach(tensor).to(dtype=torch.float64, device="cpu")
    return load_buffer(metatensor.torch.save_buffer(plain).numpy())


def join_by_system(parts: List[Tuple[int, TensorMap]]) -> TensorMap:
    """Join per-batch TensorMaps along samples, adding each batch's first
    frame index ``start`` to its ``system`` samples (and gradient samples)."""
    import metatensor

    if len(parts) == 1 and parts[0][0] == 0:
        return parts[0][1]
    shifted = [_offset_systems(t, start) if start else t for start, t in parts]
    return metatensor.join(shifted, axis="samples", different_keys="union")


def _offset_systems(tensor: TensorMap, offset: int) -> TensorMap:
    blocks = []
    for block in tensor.blocks():
        new = TensorBlock(
            block.values, _shift(block.samples, offset), block.components, block.properties
        )
        for parameter, gradient in block.gradients():
            new.add_gradient(
                parameter,
                TensorBlock(
                    gradient.values,
                    _shift(gradient.samples, offset),
                    gradient.components,
                    gradient.properties,
                ),
            )
        blocks.append(new)
    return TensorMap(tensor.keys, blocks)


def _shift(labels: Labels, offset: int) -> Labels:
    values = labels.values.copy()
    values[:, labels.names.index("system")] += offset
    return Labels(labels.names, values)


def invariant_summary(tensor: TensorMap) -> TensorMap:
    """Invariant per-atom features of an equivariant layer.

    For each center type: the ``(0, 1)`` block's features and, for every
    other block, the norm of each channel over its components (invariant under
    rotations and inversion). Keys ``center_type``, samples ``(system, atom)``,
    properties ``(o3_lambda, o3_sigma, feature)``. Works on numpy or torch
    values.
    """
    names = tensor.keys.names
    if names[:2] != ["o3_lambda", "o3_sigma"] or "center_type" not in names:
        raise EquilensError(f"expected keys (o3_lambda, o3_sigma, center_type), got {names}")
    center = names.index("center_type")
    parts: Dict[int, list] = {}
    for key, block in tensor.items():
        values = block.values
        norms = values[:, 0, :] if is_invariant(key_tuple(key)) else _norm(values)
        parts.setdefault(int(key.values[center]), []).append((key_tuple(key), block, norms))
    blocks, species = [], []
    for z, entries in sorted(parts.items()):
        samples = entries[0][1].samples
        for key, block, _ in entries:
            if block.samples != samples:
                raise EquilensError(f"block {key} does not have the atoms of the other blocks")
        values = _concatenate([e[2] for e in entries])
        properties = np.array(
            [[k[0], k[1], f] for k, b, _ in entries for f in range(len(b.properties))],
            dtype=np.int32,
        )
        blocks.append(
            TensorBlock(
                values, samples, [], Labels(["o3_lambda", "o3_sigma", "feature"], properties)
            )
        )
        species.append([z])
    return TensorMap(Labels(["center_type"], np.array(species, dtype=np.int32)), blocks)


def _norm(values):
    if hasattr(values, "detach"):
        import torch

        return torch.linalg.vector_norm(values, dim=1)
    return np.linalg.norm(values, axis=1)


def _concatenate(arrays):
    if hasattr(arrays[0], "detach"):
        import torch

        return torch.cat(arrays, dim=1)
    return np.concatenate(arrays, axis=1)
