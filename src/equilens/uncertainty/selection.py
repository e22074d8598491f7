"""Choose which structures of a pool to compute next.

- :func:`select_by_uncertainty`: the ``n`` structures of highest
  uncertainty under a fitted estimator (the ranking does not depend on the
  calibration's scale factor). For :class:`~equilens.uncertainty.LLPR` the
  choice is greedy: each chosen structure joins the training covariance
  before the next is chosen (a rank-one update), so that a batch does not
  fill up with near-copies of one uncertain structure (consecutive MD
  frames); the other estimators take the ``n`` highest at once;
- :func:`select_farthest`: farthest-point sampling of the structures in a
  layer's space (each structure the mean of its atoms' rows,
  :class:`~equilens.uncertainty.features.LayerLayout`), starting from the
  structures the model was trained on, so that the first pick is the pool
  structure farthest from all of them.

Both return ``(indices in the pool, score of each chosen structure)``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import ase
import numpy as np

from ..errors import DataError
from .estimators import LLPR, UncertaintyEstimator
from .features import LayerLayout, check_layer, layer_tensors


def _check_count(pool: Sequence[ase.Atoms], n: int) -> None:
    if n < 1 or n > len(pool):
        raise DataError(f"cannot select {n} structures from a pool of {len(pool)}")


def select_by_uncertainty(
    estimator: UncertaintyEstimator, pool: Sequence[ase.Atoms], n: int
) -> Tuple[np.ndarray, np.ndarray]:
    """The ``n`` pool structures of highest energy uncertainty, highest first
    (for LLPR, each one's uncertainty once the previous ones are known)."""
    _check_count(pool, n)
    if isinstance(estimator, LLPR):
        return _greedy_rigidity(estimator, pool, n)
    sigma = estimator.predict(pool).energy_uncertainty
    order = np.argsort(-sigma, kind="stable")[:n]
    return order, sigma[order]


def _greedy_rigidity(estimator: LLPR, pool: Sequence[ase.Atoms], n: int):
    """Greedy LLPR choice with the inverse covariance updated after each pick
    (Sherman-Morrison)."""
    assert estimator.eigenvalues is not None and estimator.eigenvectors is not None
    sums = estimator.rows(pool).structure_sums()
    shift = estimator.regularizer * max(float(estimator.eigenvalues.mean()), 1e-300)
    vectors = estimator.eigenvectors
    inverse = (vectors / (estimator.eigenvalues + shift)) @ vectors.T
    chosen: list = []
    scores = []
    for _ in range(n):
        variance = np.einsum("ij,jk,ik->i", sums, inverse, sums)
        variance[chosen] = -np.inf
        pick = int(np.argmax(variance))
        chosen.append(pick)
        scores.append(estimator.scale * np.sqrt(max(variance[pick], 0.0)))
        column = inverse @ sums[pick]
        inverse -= np.outer(column, column) / (1.0 + sums[pick] @ column)
    return np.array(chosen), np.array(scores)


def structure_means(model, layer: str, frames: Sequence[ase.Atoms], layout=None):
    """``(mean row of each structure, layout)`` of ``layer``."""
    tensor = layer_tensors(model, frames, [layer])[layer]
    layout = layout or LayerLayout.of(model, layer, tensor)
    rows = layout.rows(tensor, frames)
    counts = np.bincount(rows.system, minlength=rows.n_frames)[:, None]
    return rows.structure_sums() / counts, layout


def select_farthest(
    model,
    pool: Sequence[ase.Atoms],
    n: int,
    train: Sequence[ase.Atoms] = (),
    layer: Optional[str] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Farthest-point sampling of ``n`` pool structures in ``layer`` (default:
    the last hidden one), away from ``train`` and from each other; the score
    is each pick's distance to the nearest structure chosen or trained on."""
    from sklearn.metrics import pairwise_distances

    _check_count(pool, n)
    layer = check_layer(model, layer)
    points, layout = structure_means(model, layer, pool)
    if len(train):
        known, _ = structure_means(model, layer, train, layout)
        nearest = pairwise_distances(points, known).min(axis=1)
    else:
        nearest = np.full(len(points), np.inf)
        nearest[0] = -1.0  # no training set: start from the first structure
    chosen, scores = [], []
    for _ in range(n):
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        scores.append(nearest[pick])
        nearest = np.minimum(nearest, pairwise_distances(points, points[pick : pick + 1])[:, 0])
        nearest[chosen] = -1.0
    return np.array(chosen), np.array(scores)
