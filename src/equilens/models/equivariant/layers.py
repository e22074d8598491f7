"""The equivariant potential's layers and outputs as TensorMaps, from the
block values its network runs on (:mod:`equilens.models.equivariant.module`).

This file must not use ``from __future__ import annotations``: TorchScript
reads the annotations.
"""

from typing import List

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap

from ..tensor.blocks import mu_labels


def layer_tensor(
    values: List[torch.Tensor], rows: List[torch.Tensor], keys: List[List[int]], labels: Labels
) -> TensorMap:
    """Block values of the layer ``keys`` (``labels``) as a TensorMap,
    samples ``(system = 0, atom = row)``, properties ``feature``."""
    device = values[0].device
    blocks: List[TensorBlock] = []
    for b, key in enumerate(keys):
        samples = torch.stack([torch.zeros_like(rows[b]), rows[b]], dim=1).to(torch.int32)
        width = values[b].shape[-1]
        blocks.append(
            TensorBlock(
                values[b],
                Labels(["system", "atom"], samples),
                [mu_labels(key[0], device)],
                Labels(
                    ["feature"],
                    torch.arange(width, dtype=torch.int32, device=device).reshape(-1, 1),
                ),
            )
        )
    return TensorMap(labels.to(device), blocks)


def energy_layer(energy: torch.Tensor, rows: List[torch.Tensor], keys: Labels) -> TensorMap:
    """The atomic energies (eV, offsets included) as blocks ``(0, 1, z)``,
    one per species, ``rows[s]`` the rows of species ``s``."""
    device = energy.device
    blocks: List[TensorBlock] = []
    for s in range(len(keys)):
        samples = torch.stack([torch.zeros_like(rows[s]), rows[s]], dim=1).to(torch.int32)
        blocks.append(
            TensorBlock(
                energy[rows[s]].reshape(-1, 1, 1),
                Labels(["system", "atom"], samples),
                [mu_labels(0, device)],
                Labels(["feature"], torch.zeros((1, 1), dtype=torch.int32, device=device)),
            )
        )
    return TensorMap(keys.to(device), blocks)


def relabel(tensor: TensorMap, samples: Labels) -> TensorMap:
    """``tensor`` (samples ``(0, row)``) with the ``(system, atom)`` of each row."""
    blocks: List[TensorBlock] = []
    for b in range(len(tensor.keys)):
        block = tensor.block_by_id(b)
        rows = block.samples.column("atom").to(torch.long)
        new = Labels(["system", "atom"], samples.values[rows])
        blocks.append(TensorBlock(block.values, new, block.components, block.properties))
    return TensorMap(tensor.keys, blocks)


def energy_output(
    energy: torch.Tensor,
    system_of_row: torch.Tensor,
    samples: Labels,
    n_systems: int,
    per_atom: bool,
) -> TensorMap:
    """The ``energy`` output: per atom, or summed per structure."""
    device = energy.device
    keys = Labels(["_"], torch.zeros((1, 1), dtype=torch.int32, device=device))
    properties = Labels(["energy"], torch.zeros((1, 1), dtype=torch.int32, device=device))
    if per_atom:
        return TensorMap(keys, [TensorBlock(energy.reshape(-1, 1), samples, [], properties)])
    total = torch.zeros(n_systems, dtype=energy.dtype, device=device)
    total = total.index_add(0, system_of_row, energy).reshape(-1, 1)
    systems = Labels(
        ["system"], torch.arange(n_systems, dtype=torch.int32, device=device).reshape(-1, 1)
    )
    return TensorMap(keys, [TensorBlock(total, systems, [], properties)])
