"""Blocks of the TorchScript tensor module's outputs (see
:mod:`equilens.models.tensor_module`): components, per-structure sums.

This file must not use ``from __future__ import annotations``: TorchScript
reads the annotations.
"""

from typing import Tuple

import torch
from metatensor.torch import Labels, TensorBlock


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
