"""scikit-matter's reconstruction measures from one source to many targets at once.

scikit-matter's measures scale ``X`` and ``Y`` (``StandardFlexibleScaler``:
centred, one global factor each, fitted on the training rows) and fit a
ridge (``Ridge2FoldCV``: a singular-value cutoff chosen by 2-fold
cross-validation) from ``X`` to ``Y``: on all training rows for the global
measures (GFRE: RMS error of the test rows; GFRD: how far the map is from
an orthogonal one), on the ``k`` nearest training rows of each test row,
centred, for the local one (LFRE).

Everything but the targets' columns depends on the source only: the
scaling, the neighbours, the singular value decompositions of the fits.
Here that work is done once per source (per test point for LFRE) and every
target is fitted from it in one pass: the targets' columns are stacked, the
cross-validation scores of each cutoff are computed for all columns
together and reduced per target (each target keeps its own cutoff, as in
separate calls), and the predictions reuse one product. The values are
scikit-matter's with its default estimator (``tests/test_compare.py``
checks :func:`global_measures` against ``global_reconstruction_error`` and
``global_reconstruction_distortion``, :func:`local_reconstruction_errors`
against ``local_reconstruction_error``); an ``n x n`` matrix costs ``n``
fits instead of ``n^2`` (``2 n^2`` with GFRD).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple, Union

import numpy as np

from .estimators import (
    SKMATTER_ALPHAS,
    SKMATTER_RANDOM_STATE,
    _Factorization,
    cutoff_scores,
    default_estimator,
)


def _scaled(a: np.ndarray, train: np.ndarray, test: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """scikit-matter's ``StandardFlexibleScaler`` (centred, one global factor
    from the training rows) applied to the training and test rows."""
    rows = a[train]
    mean = rows.mean(axis=0)
    scale = np.sqrt(((rows - mean) ** 2).mean(axis=0).sum())
    return (rows - mean) / scale, (a[test] - mean) / scale


def global_measures(
    source: np.ndarray,
    targets: Union[Sequence[np.ndarray], ScaledTargets],
    train: np.ndarray,
    test: np.ndarray,
    distortion: bool = True,
    alphas: np.ndarray = SKMATTER_ALPHAS,
    random_state: int = SKMATTER_RANDOM_STATE,
) -> Tuple[List[float], List[float]]:
    """GFRE and GFRD (``nan`` when not ``distortion``) from ``source`` to
    each of ``targets`` (rows aligned; or already :func:`scaled_targets` for
    this split), fitted on ``train``, scored on ``test``."""
    x_train, x_test = _scaled(np.asarray(source, dtype=np.float64), train, test)
    if not isinstance(targets, ScaledTargets):
        targets = scaled_targets(targets, train, test)
    y_train, y_test = targets.train, targets.test
    starts, widths = targets.starts, targets.widths
    f = _Factorization(x_train, random_state)
    cutoffs = np.asarray(alphas, dtype=np.float64) * max(np.max(f.s1), np.max(f.s2))
    best = np.argmax(cutoff_scores(f, y_train, cutoffs, widths), axis=0)
    ut, s, vt = f.full()
    coefficients = (ut @ y_train) / s[:, None]
    a_test = x_test @ vt.T
    errors, distortions = [], []
    for t, (start, width) in enumerate(zip(starts, widths)):
        k = min(len(s), int(np.sum(s > cutoffs[best[t]])))
        columns = slice(start, start + width)
        ridge_test = a_test[:, :k] @ coefficients[:k, columns]
        difference = y_test[:, columns] - ridge_test
        errors.append(float(np.sqrt(np.sum(difference**2) / len(test))))
        if distortion:
            # X^T (ridge on the training rows) = V_k S_k^2 C_k: X = U S V^T and
            # the ridge is U_k S_k C_k, so neither it nor the product is formed
            cross = vt[:k].T @ (s[:k, None] ** 2 * coefficients[:k, columns])
            distortions.append(orthogonal_distance(cross, x_test, ridge_test))
        else:
            distortions.append(float("nan"))
    return errors, distortions


def orthogonal_distance(cross, x_test, ridge_test) -> float:
    """GFRD's last step: the RMS distance, on the test rows, between the
    ridge predictions and the orthogonal (Procrustes) map of the source
    fitted to the ridge predictions of the training rows, the narrower side
    zero-padded (see :func:`global_reconstruction_distortion_thin`).

    :param cross: the training rows' source times their ridge predictions,
        ``x_train^T ridge_train``
    """
    u, _, vt = np.linalg.svd(cross, full_matrices=False)
    projected = x_test @ u
    orthogonal = projected @ vt
    squared = np.sum((ridge_test - orthogonal) ** 2, axis=1)
    squared += np.sum(x_test**2, axis=1) - np.sum(projected**2, axis=1)
    return float(np.sqrt(np.mean(np.maximum(squared, 0.0))))


@dataclass(frozen=True)
class ScaledTargets:
    """Targets scaled as scikit-matter scales them, side by side: the
    training and test rows, and each target's first column and width. They
    do not depend on the source: computed once, they serve every source of
    a comparison matrix (:func:`scaled_targets`)."""

    train: np.ndarray
    test: np.ndarray
    starts: np.ndarray
    widths: np.ndarray


def scaled_targets(targets: Sequence[np.ndarray], train, test) -> ScaledTargets:
    """:class:`ScaledTargets` of ``targets`` (rows aligned) for a split."""
    scaled = [_scaled(np.asarray(t, dtype=np.float64), train, test) for t in targets]
    widths = np.array([part[0].shape[1] for part in scaled])
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(int)
    return ScaledTargets(
        np.hstack([p[0] for p in scaled]), np.hstack([p[1] for p in scaled]), starts, widths
    )


def local_reconstruction_errors(
    source: np.ndarray,
    targets: Sequence[np.ndarray],
    neighbors: int,
    train: np.ndarray,
    test: np.ndarray,
) -> List[float]:
    """The LFRE from ``source`` to each of ``targets`` (rows aligned), fitted
    on the ``neighbors`` nearest ``train`` rows of each ``test`` row."""
    squared = local_squared_errors(source, targets, neighbors, train, test)
    return [float(value) for value in np.sqrt(np.mean(squared, axis=0))]


def local_squared_errors(
    source: np.ndarray,
    targets: Sequence[np.ndarray],
    neighbors: int,
    train: np.ndarray,
    test: np.ndarray,
    alphas: np.ndarray = SKMATTER_ALPHAS,
    random_state: int = SKMATTER_RANDOM_STATE,
) -> np.ndarray:
    """The squared local reconstruction error ``(len(test), len(targets))``
    of each test row for each target: any split of the test rows gives the
    same rows (the scaling and neighbours come from ``train``), so chunks
    of test rows can run apart and be joined."""
    if len(source) < neighbors:
        raise ValueError(f"{len(source)} samples for {neighbors} local points")
    x_train, x_test = _scaled(np.asarray(source, dtype=np.float64), train, test)
    stacked = scaled_targets(targets, train, test)
    y_train, y_test = stacked.train, stacked.test
    starts, widths = stacked.starts, stacked.widths
    block = np.repeat(np.arange(len(targets)), widths)  # target of every column
    # the same expression and sort as scikit-matter: the same neighbours, ties included
    squared = (
        np.sum(x_train**2, axis=1) + np.sum(x_test**2, axis=1)[:, np.newaxis]
        - 2 * x_test @ x_train.T
    )  # fmt: skip
    width = x_train.shape[1]
    x_train, x_test = _row_space(x_train, x_test)
    squared_errors = np.zeros((len(test), len(targets)))
    for i in range(len(test)):
        local = np.argsort(squared[i])[:neighbors]
        lx, ly = x_train[local], y_train[local]
        x_mean, y_mean = lx.mean(axis=0), ly.mean(axis=0)
        lx, point = _local_span(lx - x_mean, x_test[i] - x_mean)
        f = _Factorization(lx, random_state, width=width)
        cutoffs = np.asarray(alphas, dtype=np.float64) * max(np.max(f.s1), np.max(f.s2))
        best = np.argmax(cutoff_scores(f, ly - y_mean, cutoffs, widths), axis=0)
        prediction = _predict(f, point, ly - y_mean, cutoffs[best][block])
        difference = y_test[i] - (y_mean + prediction)
        squared_errors[i] = np.add.reduceat(difference**2, starts)
    return squared_errors


def _local_span(rows: np.ndarray, point: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The local rows and the test point in an orthonormal basis of the local
    rows' span, when they have more columns than rows: the local fit's singular
    values and left vectors are unchanged, its predictions only see the
    point's projection on that span (as in :func:`_row_space`), and its three
    decompositions become square ones."""
    n = len(rows)
    if rows.shape[1] <= n:
        return rows, point
    # the point as one more column: the first n entries of its column of R
    # are its coordinates in the basis, which is never formed
    triangle = np.asarray(np.linalg.qr(np.column_stack([rows.T, point]), mode="r"))
    return triangle[:n, :n].T, triangle[:n, n]


def _row_space(x_train: np.ndarray, x_test: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The source in an orthonormal basis of its training rows' span, when
    it has more columns than training rows (a 1,470-wide SOAP on 500 rows).

    Every local fit's rows lie in that span: their singular values and left
    vectors are unchanged and their right vectors are the basis times those
    of the coordinates, so the predictions (right vectors applied to a test
    row) only see the test row's projection on the span. Each local SVD then
    costs ``rows^2 x n_train`` instead of ``rows^2 x n_features``.
    """
    if x_train.shape[1] <= len(x_train):
        return x_train, x_test
    basis, _ = np.linalg.qr(x_train.T)  # n_features x n_train, orthonormal columns
    return x_train @ basis, x_test @ basis


def _predict(f: _Factorization, x: np.ndarray, y: np.ndarray, column_cutoffs) -> np.ndarray:
    """The prediction at ``x`` of the ridge fitted on all local rows, each
    column keeping the singular values above its own cutoff.

    With the ``k`` largest values the prediction is ``w_k @ y``, where
    ``w_k = sum_{j < k} (v_j . x / s_j) u_j`` weighs the local rows: one
    ``w`` per distinct ``k`` (one per target at most), not a partial sum per
    singular value and column.
    """
    ut, s, vt = f.full()
    coefficients = (vt @ x) / s  # one per singular value
    kept = np.minimum(len(s), np.sum(s[:, None] > column_cutoffs[None, :], axis=0))
    prediction = np.empty(y.shape[1])
    for k in np.unique(kept):
        columns = kept == k
        prediction[columns] = (coefficients[:k] @ ut[:k]) @ y[:, columns]
    return prediction


def global_reconstruction_distortion_thin(
    x: np.ndarray, y: np.ndarray, train_idx, test_idx, estimator=None
) -> float:
    """scikit-matter's GFRD, computed without padding to a square problem.

    Same steps and value as ``skmatter.metrics.global_reconstruction_distortion``
    applied to ``x`` and ``y`` zero-padded to ``x``'s width: scale both with
    ``StandardFlexibleScaler`` fitted on the training rows, fit the ridge
    estimator, then the orthogonal (Procrustes) map from ``x`` to the ridge
    predictions on the training rows, and report the RMS distance between
    the ridge and the orthogonal predictions on the test rows.

    scikit-matter pads both sides to ``P = max(p, q)`` columns and factorises
    a ``P x P`` matrix, which for a 1,470-wide SOAP costs seconds per pair.
    The thin singular value decomposition ``X^T Yhat = U S V^T`` (``p x q``)
    gives the same map: ``x U V^T`` on the target's columns, and the part of
    ``x`` orthogonal to ``U`` (``p > q``) rotated onto padding columns where
    the target is zero, which adds ``|x|^2 - |x U|^2`` to each squared
    distance whatever rotation is chosen. ``tests/test_compare.py`` checks the
    equality with scikit-matter.
    """
    from skmatter.preprocessing import StandardFlexibleScaler

    estimator = estimator if estimator is not None else default_estimator()
    x_scaler = StandardFlexibleScaler().fit(x[train_idx])
    y_scaler = StandardFlexibleScaler().fit(y[train_idx])
    x_train, x_test = x_scaler.transform(x[train_idx]), x_scaler.transform(x[test_idx])
    y_train = y_scaler.transform(y[train_idx])
    estimator.fit(x_train, y_train)
    return orthogonal_distance(
        x_train.T @ estimator.predict(x_train), x_test, estimator.predict(x_test)
    )
