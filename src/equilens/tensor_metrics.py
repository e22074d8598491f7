"""Error metrics of tensorial predictions, per block and pooled.

For every block: the RMSE over all its entries and the RMSE relative to the
reference's standard deviation (``sqrt`` of the mean over entries of the
variance over samples). Pooled over blocks: the same two numbers over every
entry. A per-structure polarizability (blocks ``lambda = 0`` and ``2`` of one
property) is also scored as the Cartesian 3 x 3 tensor, the figure people
quote; a per-structure dipole's spherical components are a permutation of
its Cartesian ones, so its pooled figures are the Cartesian ones.
"""

from __future__ import annotations

from typing import Dict, Mapping, Tuple

import numpy as np

from .so3 import spherical_to_symmetric_tensor

Key = Tuple[int, ...]


def _name(key: Key) -> str:
    return "_".join(str(v) for v in key)


def relative_rmse(predicted: np.ndarray, reference: np.ndarray) -> Tuple[float, float]:
    """``(RMSE, RMSE / std)`` over all entries; the standard deviation is over
    samples (axis 0) per entry, pooled over entries."""
    error = np.asarray(predicted) - np.asarray(reference)
    rmse = float(np.sqrt(np.mean(error**2)))
    spread = float(np.sqrt(np.mean(np.var(reference, axis=0))))
    return rmse, rmse / spread if spread > 0 else float("inf")


def tensor_metrics(
    predictions: Mapping[Key, np.ndarray], references: Mapping[Key, np.ndarray]
) -> Dict[str, float]:
    """Per-block and pooled RMSE and relative RMSE (see the module docstring)."""
    result: Dict[str, float] = {}
    squared, spread, count = 0.0, 0.0, 0
    for key, reference in references.items():
        predicted = np.asarray(predictions[key])
        rmse, relative = relative_rmse(predicted, reference)
        result[f"rmse_{_name(key)}"] = rmse
        result[f"relative_rmse_{_name(key)}"] = relative
        squared += float(np.sum((predicted - reference) ** 2))
        spread += float(np.sum(np.var(reference, axis=0))) * len(reference)
        count += reference.size
    result["rmse"] = float(np.sqrt(squared / count))
    result["relative_rmse"] = float(np.sqrt(squared / spread)) if spread > 0 else float("inf")
    keys = set(references)
    if keys == {(0, 1), (2, 1)} and references[(0, 1)].shape[-1] == 1:
        cartesian = [
            spherical_to_symmetric_tensor(values[(0, 1)][:, :, 0], values[(2, 1)][:, :, 0])
            for values in (predictions, references)
        ]
        rmse, relative = relative_rmse(cartesian[0], cartesian[1])
        result["cartesian_rmse"] = rmse
        result["cartesian_relative_rmse"] = relative
    return result
