"""Choose which structures of a pool to compute next.

- :func:`select_by_uncertainty`: the ``n`` structures of highest
  uncertainty under a fitted estimator (the ranking does not depend on the
  calibration's scale factor). For :class:`~equilens.uncertainty.LLPR` the
  choice is greedy: each chosen structure joins the training covariance
  before the next is chosen (a rank-one update), so that a batch does not
  fill up with near-copies of one uncertain structure (consecutive MD
  frames); the other estimators take the ``n`` highest at once;
- :func:`select_by_variance_reduction`: the structures whose labels would
  most reduce the summed LLPR variance of the whole pool (the transductive,
  or integrated-variance, criterion of optimal design): an uncertain
  structure like many others gains more than an outlier that is only
  uncertain itself; greedy with the same rank-one updates;
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


def _inverse_covariance(estimator: LLPR) -> np.ndarray:
    """The fitted LLPR's regularised inverse training covariance."""
    assert estimator.eigenvalues is not None and estimator.eigenvectors is not None
    shift = estimator.regularizer * max(float(estimator.eigenvalues.mean()), 1e-300)
    vectors = estimator.eigenvectors
    return (vectors / (estimator.eigenvalues + shift)) @ vectors.T


def _learn(inverse: np.ndarray, row: np.ndarray) -> None:
    """``inverse`` once ``row`` joins the training covariance (Sherman-Morrison)."""
    column = inverse @ row
    inverse -= np.outer(column, column) / (1.0 + row @ column)


def _greedy_rigidity(estimator: LLPR, pool: Sequence[ase.Atoms], n: int):
    """Greedy LLPR choice with the inverse covariance updated after each pick."""
    sums = estimator.rows(pool).structure_sums()
    inverse = _inverse_covariance(estimator)
    chosen: list = []
    scores = []
    for _ in range(n):
        variance = np.einsum("ij,jk,ik->i", sums, inverse, sums)
        variance[chosen] = -np.inf
        pick = int(np.argmax(variance))
        chosen.append(pick)
        scores.append(estimator.scale * np.sqrt(max(variance[pick], 0.0)))
        _learn(inverse, sums[pick])
    return np.array(chosen), np.array(scores)


def select_by_variance_reduction(
    estimator: UncertaintyEstimator, pool: Sequence[ase.Atoms], n: int
) -> Tuple[np.ndarray, np.ndarray]:
    """The ``n`` pool structures that most reduce the summed LLPR energy
    variance of the pool, chosen greedily; each score is the reduction its
    structure brought (eV^2, calibrated), in the order chosen.

    With ``f`` a structure's summed rows, ``C`` the inverse covariance and
    ``S`` the pool's ``sum_j f_j f_j^T``, learning structure ``i`` lowers the
    pool's summed variance by ``alpha^2 f_i^T C S C f_i / (1 + f_i^T C f_i)``;
    computed with feature-sized matrices only, so the memory grows with the
    pool linearly."""
    if not isinstance(estimator, LLPR):
        raise DataError("selection by variance reduction needs the LLPR estimator (--method llpr)")
    _check_count(pool, n)
    sums = estimator.rows(pool).structure_sums()
    spread = sums.T @ sums
    inverse = _inverse_covariance(estimator)
    chosen: list = []
    scores = []
    for _ in range(n):
        projected = sums @ inverse
        own = np.einsum("ij,ij->i", projected, sums)
        gain = np.einsum("ij,jk,ik->i", projected, spread, projected) / (1.0 + own)
        gain[chosen] = -np.inf
        pick = int(np.argmax(gain))
        chosen.append(pick)
        scores.append(estimator.scale**2 * gain[pick])
        _learn(inverse, sums[pick])
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
