"""Data of the ``tensor`` task: structures, lambda-SOAP and the aligned target.

:func:`read_tensor_data` reads the structures through the validated reader
(:func:`equilens.data.read_dataset`), the target TensorMap, checks and aligns
one with the other (one row per structure in file order, or one per atom of
each ``(o3_lambda, o3_sigma, center_type)`` block), and computes the input
blocks of lambda-SOAP. Density coefficients can carry the overlap matrix of
their auxiliary basis (:class:`OverlapMetric`) for an overlap-metric loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import ase
import metatensor
import numpy as np
import torch
from metatensor import Labels, TensorBlock, TensorMap

from ...data.io import Dataset, read_dataset, with_species
from ...data.splits import resolve_path
from ...descriptors.lambda_soap import compute_lambda_soap
from ...errors import ConfigError, DataError, EquilensError
from ...storage import load_tensormap
from ...tensormaps import Key, key_tuple, to_metatensor_torch
from .layout import TargetLayout, network_keys


@dataclass
class TensorData:
    """Structures, their lambda-SOAP and the target aligned with it."""

    frames: List[ase.Atoms]
    soap: TensorMap  # numpy, the network's input blocks, all structures
    layout: TargetLayout
    targets: Dict[Key, np.ndarray]  # rows: structures, or the atoms of soap's block
    species: Tuple[int, ...]
    overlap: Optional[List[OverlapMetric]] = None


def read_tensor_data(config, progress: bool = False) -> TensorData:
    """Read, validate and align the structures (``config.data.train``) and the
    target (``config.target``) of a :class:`~equilens.models.tensor.config.TensorConfig`."""
    structures_path = resolve_path(config.data.train)
    options = with_species(config.read, config.descriptor.species)
    dataset: Dataset = read_dataset(structures_path, options)
    frames = dataset.frames
    target_path = resolve_path(config.target.file)
    target = load_tensormap(target_path, "target TensorMap")
    try:
        layout = TargetLayout.of(target, config.target.name or _stem(target_path))
    except EquilensError as error:
        raise DataError(str(error), path=target_path) from None
    species = tuple(config.descriptor.species or dataset.species)
    lambda_max = max(k[0] for k in layout.keys)
    soap = compute_lambda_soap(
        frames,
        species,
        config.descriptor.descriptor_hypers(len(species)),
        lambda_max,
        include_improper=False,
        progress=progress,
    )
    in_keys, _ = network_keys(layout, species)
    soap = metatensor.filter_blocks(soap, in_keys)
    targets = _align_targets(target, layout, soap, len(frames), target_path)
    metric = None
    if config.target.overlap:
        if not layout.per_atom:
            raise ConfigError("target.overlap applies to per-atom (density) targets only")
        metric = [
            OverlapMetric.build(f, s, config.target.overlap, soap, layout)
            for s, f in enumerate(frames)
        ]
    return TensorData(frames, soap, layout, targets, species, metric)


def _stem(path) -> str:
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    return name.split(".", 1)[0]


def _align_targets(target, layout, soap, n_frames, path) -> Dict[Key, np.ndarray]:
    result = {}
    for key, block in zip(layout.keys, target.blocks()):
        values = np.asarray(block.values, dtype=np.float64)
        samples = np.asarray(block.samples.values)
        bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
        if bad.any():
            raise DataError(
                f"target block {key} has non-finite values",
                path=path,
                frame=int(samples[bad][0, 0]),
            )
        if not layout.per_atom:
            if len(values) != n_frames or not np.array_equal(samples[:, 0], np.arange(n_frames)):
                raise DataError(
                    f"target block {key} has {len(values)} rows, expected one per structure "
                    f"({n_frames}, systems 0..{n_frames - 1} in order)",
                    path=path,
                )
            result[key] = values
            continue
        rows = soap.block(dict(zip(layout.key_names, key))).samples.values
        index = {tuple(int(v) for v in s): i for i, s in enumerate(samples)}
        order = []
        for row in rows:
            position = index.get((int(row[0]), int(row[1])))
            if position is None:
                raise DataError(
                    f"target block {key} has no value for atom {int(row[1])}",
                    path=path,
                    frame=int(row[0]),
                )
            order.append(position)
        if len(order) != len(samples):
            raise DataError(f"target block {key} has rows for atoms of another species", path=path)
        result[key] = values[order]
    return result


@dataclass
class OverlapMetric:
    """One structure's overlap matrix and where its coefficients live.

    ``gather[k]`` is the position, in the concatenation of all flattened
    per-atom blocks (in ``layout.keys`` order), of the coefficient of
    auxiliary function ``k`` of :func:`~equilens.data.basis.auxiliary_basis`.
    """

    overlap: torch.Tensor
    gather: torch.Tensor

    @classmethod
    def build(cls, frame, system, auxbasis, soap, layout) -> OverlapMetric:
        from ...data.basis import auxiliary_basis

        overlap, basis = auxiliary_basis(frame, auxbasis)
        offsets, rows = {}, {}
        offset = 0
        for index, key in enumerate(layout.keys):
            samples = soap.block(dict(zip(layout.key_names, key))).samples.values
            n_props = len(layout.properties[index][1])
            width = (2 * key[0] + 1) * n_props
            offsets[key] = (offset, width, n_props)
            for i, row in enumerate(samples):
                if int(row[0]) == system:
                    rows[(key, int(row[1]))] = i
            offset += len(samples) * width
        gather = []
        for atom, ell, n, m in basis:
            key = (int(ell), 1, int(frame.numbers[atom]))
            if key not in offsets or (key, int(atom)) not in rows:
                raise DataError(f"the target has no block {key} for atom {atom}", frame=system)
            start, width, n_props = offsets[key]
            gather.append(start + rows[(key, int(atom))] * width + int(m) * n_props + int(n))
        return cls(torch.tensor(overlap), torch.tensor(gather))

    def square(self, flat: torch.Tensor) -> torch.Tensor:
        vector = flat[self.gather]
        return vector @ self.overlap @ vector


def subset(tensor: TensorMap, systems: np.ndarray) -> Tuple[TensorMap, Dict[Key, np.ndarray]]:
    """The rows of ``tensor`` for ``systems`` and, per key, their row indices."""
    blocks, rows = [], {}
    for key, block in tensor.items():
        index = np.flatnonzero(np.isin(block.samples.column("system"), systems))
        rows[key_tuple(key)] = index
        samples = Labels(block.samples.names, np.asarray(block.samples.values)[index])
        blocks.append(TensorBlock(block.values[index], samples, block.components, block.properties))
    return TensorMap(tensor.keys, blocks), rows


def network_input(tensor: TensorMap, systems: np.ndarray):
    """The rows of ``tensor`` for ``systems`` as the module's input (a
    ``metatensor.torch`` TensorMap, float64) and, per key, their row indices."""
    selected, rows = subset(tensor, systems)
    return to_metatensor_torch(selected), rows
