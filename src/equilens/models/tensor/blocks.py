"""Blocks of the tensor module's outputs (see
:mod:`equilens.models.tensor.module`): components, per-structure sums and
means, invariant summaries.

This file must not use ``from __future__ import annotations``: TorchScript
reads the annotations.
"""

from typing import List, Tuple

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap


def _mu(values: torch.Tensor) -> Labels:
    ell = (values.shape[1] - 1) // 2
    return Labels(
        ["o3_mu"],
        torch.arange(-ell, ell + 1, dtype=torch.int32, device=values.device).reshape(-1, 1),
    )


def _block(values: torch.Tensor, samples: Labels, name: str) -> TensorBlock:
    properties = Labels(
        [name],
        torch.arange(values.shape[2], dtype=torch.int32, device=values.device).reshape(-1, 1),
    )
    return TensorBlock(values, samples, [_mu(values)], properties)


def _sum_by_system(block: TensorBlock, n_systems: int) -> Tuple[torch.Tensor, torch.Tensor]:
    values = block.values
    system = block.samples.column("system").to(torch.long)
    total = torch.zeros((n_systems,) + values.shape[1:], dtype=values.dtype, device=values.device)
    total = total.index_add(0, system, values)
    counts = torch.zeros(n_systems, dtype=values.dtype, device=values.device).index_add(
        0, system, torch.ones(system.shape[0], dtype=values.dtype, device=values.device)
    )
    return total, counts


def _system_block(values: torch.Tensor, block: TensorBlock, n_systems: int) -> TensorBlock:
    samples = Labels(
        ["system"], torch.arange(n_systems, dtype=torch.int32, device=values.device).reshape(-1, 1)
    )
    return TensorBlock(values, samples, block.components, block.properties)


def pooled(tensor: TensorMap, n_systems: int, per_atom: bool) -> TensorMap:
    """Per atom as it is; per structure the mean over each block's atoms."""
    blocks: List[TensorBlock] = []
    for b in range(len(tensor.keys)):
        block = tensor.block_by_id(b)
        if per_atom:
            blocks.append(_block(block.values, block.samples, "feature"))
        else:
            total, counts = _sum_by_system(block, n_systems)
            mean = total / torch.clamp(counts, min=1.0).reshape(-1, 1, 1)
            blocks.append(_system_block(mean, block, n_systems))
    return TensorMap(tensor.keys, blocks)


def summary(tensor: TensorMap, species: List[int], n_systems: int, per_atom: bool) -> TensorMap:
    """Invariant summary of a layer, one block over all atoms (system, atom)."""
    device = tensor.device
    dtype = tensor.dtype
    keys = tensor.keys.values
    rows: List[torch.Tensor] = []
    labels: List[torch.Tensor] = []
    for z in species:
        parts: List[torch.Tensor] = []
        atoms = torch.zeros((0, 2), dtype=torch.int32, device=device)
        for b in range(keys.shape[0]):
            if int(keys[b, 2]) == z:
                block = tensor.block_by_id(b)
                v = block.values
                parts.append(
                    v[:, 0, :]
                    if int(keys[b, 0]) == 0 and int(keys[b, 1]) == 1
                    else torch.linalg.vector_norm(v, dim=1)
                )
                atoms = block.samples.values
        if len(parts) > 0:
            rows.append(torch.cat(parts, dim=1))
            labels.append(atoms)
    features = torch.cat(rows, dim=0)
    atom_samples = torch.cat(labels, dim=0)
    order = torch.argsort(
        atom_samples[:, 0].to(torch.long) * 1_000_000 + atom_samples[:, 1].to(torch.long)
    )
    features = features[order]
    atom_samples = atom_samples[order]
    properties = Labels(
        ["feature"],
        torch.arange(features.shape[1], dtype=torch.int32, device=device).reshape(-1, 1),
    )
    keys_out = Labels(["_"], torch.zeros((1, 1), dtype=torch.int32, device=device))
    if per_atom:
        samples_out = Labels(["system", "atom"], atom_samples)
        return TensorMap(keys_out, [TensorBlock(features, samples_out, [], properties)])
    system = atom_samples[:, 0].to(torch.long)
    total = torch.zeros((n_systems, features.shape[1]), dtype=dtype, device=device)
    total = total.index_add(0, system, features)
    counts = torch.zeros(n_systems, dtype=dtype, device=device).index_add(
        0, system, torch.ones(system.shape[0], dtype=dtype, device=device)
    )
    mean = total / torch.clamp(counts, min=1.0).reshape(-1, 1)
    samples_out = Labels(
        ["system"], torch.arange(n_systems, dtype=torch.int32, device=device).reshape(-1, 1)
    )
    return TensorMap(keys_out, [TensorBlock(mean, samples_out, [], properties)])


def mu_labels(ell: int, device: torch.device) -> Labels:
    return Labels(
        ["o3_mu"], torch.arange(-ell, ell + 1, dtype=torch.int32, device=device).reshape(-1, 1)
    )
