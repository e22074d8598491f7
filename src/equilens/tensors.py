"""Helpers over metatensor TensorMaps shared by the analysis modules."""

from __future__ import annotations

from typing import Tuple

import numpy as np
from metatensor import Labels, TensorMap

from .errors import EquilensError


def stack_blocks(tensor: TensorMap, name: str) -> Tuple[np.ndarray, Labels]:
    """Values of all blocks of an invariant ``tensor`` stacked in sample order.

    Blocks (e.g. one per species) must have the same properties count and
    no components; rows are sorted by their sample values (``system``,
    ``atom``, ...). ``name`` is used in error messages.

    :returns: ``(values, samples)``
    """
    values, samples = [], []
    for block in tensor.blocks():
        if len(block.components) != 0:
            raise EquilensError(
                f"feature set '{name}' has components {block.components[0].names}; use the "
                "invariant blocks (or the equivariant measure) here"
            )
        values.append(block.values)
        samples.append(block.samples.values)
    if len({len(b.properties) for b in tensor.blocks()}) > 1:
        raise EquilensError(f"feature set '{name}': blocks have different numbers of properties")
    array, rows = np.concatenate(values), np.concatenate(samples)
    order = np.lexsort(rows.T[::-1])
    names = tensor.block(0).samples.names
    return array[order], Labels(names, rows[order].astype(np.int32))
