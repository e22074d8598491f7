"""A fast drop-in for scikit-matter's ``Ridge2FoldCV`` in the reconstruction measures.

scikit-matter's reconstruction measures take an ``estimator`` argument; their
default is ``Ridge2FoldCV`` with singular-value cutoff regularisation, relative
alphas ``geomspace(1e-9, 0.9, 20)`` and a 2-fold split chosen by
``KFold(2, shuffle=True, random_state=0x5F3759DF)``. :class:`FactorizedRidge2FoldCV`
computes exactly the same fit (same folds, same alpha grid, same score: the
mean over targets of the per-target RMSE, same tie-breaking, same final cutoff)
with two differences that only change the cost:

- the three singular value decompositions of a source (one per fold and one
  of the whole training set) are kept and reused when the next ``fit`` gets
  the same source matrix, so an ``n x n`` comparison matrix factorises each
  source once instead of ``2 n`` times (GFRE and GFRD both fit on it);
- the alpha scan scores with numpy instead of scikit-learn scorer objects,
  which dominated the cost of the many small local fits of LFRE.

``tests/test_compare.py`` checks that it reproduces ``Ridge2FoldCV``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Optional

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import KFold

SKMATTER_ALPHAS = np.geomspace(1e-9, 0.9, 20)
SKMATTER_RANDOM_STATE = 0x5F3759DF


class _Factorization:
    """SVDs of one source matrix and its two folds.

    ``width``: the number of columns of the matrix whose rank tolerance
    applies (scikit-learn's ``max(shape) * eps``) when ``x`` holds its rows
    in an orthonormal basis of fewer columns (same singular values).
    """

    def __init__(
        self, x: np.ndarray, random_state: int, group_size: int = 1, width: Optional[int] = None
    ):
        if len(x) % group_size:
            raise ValueError(f"{len(x)} rows are not groups of {group_size}")
        groups = np.arange(len(x) // group_size)
        fold1, fold2 = next(KFold(2, shuffle=True, random_state=random_state).split(groups))
        if group_size > 1:
            offsets = np.arange(group_size)
            fold1 = (fold1[:, None] * group_size + offsets).ravel()
            fold2 = (fold2[:, None] * group_size + offsets).ravel()
        self.fold1, self.fold2 = fold1, fold2
        u1, self.s1, vt1 = np.linalg.svd(x[fold1], full_matrices=False)
        u2, self.s2, vt2 = np.linalg.svd(x[fold2], full_matrices=False)
        rcond = max(len(x), width or x.shape[1]) * np.spacing(x.dtype.type(1))
        self.n1, self.n2 = int(np.sum(self.s1 > rcond)), int(np.sum(self.s2 > rcond))
        self.u1t = u1.T[: self.n1]
        self.u2t = u2.T[: self.n2]
        # predictions of one fold from the model fitted on the other
        self.x2_v1 = x[fold2] @ vt1.T[:, : self.n1]
        self.x1_v2 = x[fold1] @ vt2.T[:, : self.n2]
        self.ut, self.s, self.vt = None, None, None
        self._x = x

    def full(self):
        if self.s is None:
            u, self.s, self.vt = np.linalg.svd(self._x, full_matrices=False)
            self.ut = u.T
            self._x = None
        return self.ut, self.s, self.vt


def cutoff_scores(f: _Factorization, y: np.ndarray, cutoffs: np.ndarray, widths) -> np.ndarray:
    """2-fold cross-validation scores ``(n_cutoffs, n_targets)`` of the
    singular-value ``cutoffs`` for targets side by side in the columns of
    ``y`` (``widths`` columns each): minus the mean over a target's columns
    of the per-column RMSE, averaged over the two folds (scikit-matter's
    ``neg_root_mean_squared_error``).

    The prediction with the ``k`` largest singular values is a partial sum:
    the cutoffs are walked from the largest (fewest values) down, adding only
    the new terms, one full product in all instead of one per cutoff.
    """
    widths = np.asarray(widths)
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(int)
    y1, y2 = y[f.fold1], y[f.fold2]
    ut1_y1, ut2_y2 = f.u1t @ y1, f.u2t @ y2
    b1 = f.x2_v1 / f.s1[: f.n1]
    b2 = f.x1_v2 / f.s2[: f.n2]
    one_to_two, two_to_one = np.zeros_like(y2), np.zeros_like(y1)
    scores = np.empty((len(cutoffs), len(widths)))
    done1 = done2 = 0
    previous = None
    for index in np.argsort(-cutoffs, kind="stable"):
        k1 = min(f.n1, int(np.sum(f.s1 > cutoffs[index])))
        k2 = min(f.n2, int(np.sum(f.s2 > cutoffs[index])))
        if previous is not None and k1 == done1 and k2 == done2:
            scores[index] = scores[previous]  # the same fits: the same score
            continue
        previous = index
        if k1 > done1:
            one_to_two += b1[:, done1:k1] @ ut1_y1[done1:k1]
            done1 = k1
        if k2 > done2:
            two_to_one += b2[:, done2:k2] @ ut2_y2[done2:k2]
            done2 = k2
        d2, d1 = y2 - one_to_two, y1 - two_to_one
        rmse2 = np.sqrt(np.einsum("ij,ij->j", d2, d2) / len(y2))
        rmse1 = np.sqrt(np.einsum("ij,ij->j", d1, d1) / len(y1))
        summed = np.add.reduceat(rmse2, starts) + np.add.reduceat(rmse1, starts)
        scores[index] = -summed / (2 * widths)
    return scores


class FactorizedRidge2FoldCV(RegressorMixin, BaseEstimator):
    """scikit-matter's default reconstruction estimator with reusable factorisations.

    :param alphas: relative singular-value cutoffs (fractions of the largest
        singular value of the two folds)
    :param random_state: seed of the 2-fold split
    :param cache_size: how many source factorisations to keep (least recently
        used are dropped); 0 disables the cache
    :param cache_min_samples: sources with fewer rows are not cached (hashing
        them would cost about as much as factorising them)
    :param group_size: consecutive rows that form one sample and always fall
        in the same fold (the ``2 lambda + 1`` components of one atom in the
        equivariant measure); ``1`` is scikit-matter's row split
    """

    def __init__(
        self,
        alphas: np.ndarray = SKMATTER_ALPHAS,
        random_state: int = SKMATTER_RANDOM_STATE,
        cache_size: int = 2,
        cache_min_samples: int = 1000,
        group_size: int = 1,
    ):
        self.alphas = alphas
        self.random_state = random_state
        self.cache_size = cache_size
        self.cache_min_samples = cache_min_samples
        self.group_size = group_size
        self._cache: OrderedDict[bytes, _Factorization] = OrderedDict()

    def _factorize(self, x: np.ndarray) -> _Factorization:
        if self.cache_size < 1 or len(x) < self.cache_min_samples:
            return _Factorization(x, self.random_state, self.group_size)
        digest = hashlib.blake2b(np.ascontiguousarray(x).data, digest_size=16)
        digest.update(repr((x.shape, self.group_size)).encode())
        key = digest.digest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        factorization = _Factorization(x, self.random_state, self.group_size)
        self._cache[key] = factorization
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return factorization

    def fit(self, X, y) -> FactorizedRidge2FoldCV:
        """Choose the cutoff by 2-fold cross-validation, then fit on all of ``X``."""
        x = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        f = self._factorize(x)
        scaled = np.asarray(self.alphas, dtype=np.float64) * max(np.max(f.s1), np.max(f.s2))
        scores = cutoff_scores(f, y, scaled, [y.shape[1]])[:, 0]
        best = int(np.argmax(scores))
        self.cv_values_ = scores
        self.alpha_ = float(np.asarray(self.alphas)[best])
        ut, s, vt = f.full()
        # skmatter keeps every singular value above the chosen cutoff (its
        # rcond test is not applied to the final fit); so do we
        k = min(len(s), int(np.sum(s > scaled[best])))
        # keep the factors: coef = (V_k / s_k) (U_k^T y) costs n_features x
        # n_targets x k to form, far more than predicting a few points
        self._factors = (vt[:k], (ut[:k] @ y) / s[:k, None])
        self.n_features_in_ = x.shape[1]
        return self

    @property
    def coef_(self) -> np.ndarray:
        """Weights ``(n_targets, n_features)``, formed on demand."""
        vt, weights = self._factors
        return (vt.T @ weights).T

    def predict(self, X) -> np.ndarray:
        """Linear prediction ``X @ coef_.T``, through the factors."""
        vt, weights = self._factors
        return (np.asarray(X, dtype=np.float64) @ vt.T) @ weights


def default_estimator(cache_size: Optional[int] = 2) -> FactorizedRidge2FoldCV:
    """The estimator :func:`equilens.analysis.compare.compare` passes to scikit-matter."""
    return FactorizedRidge2FoldCV(cache_size=cache_size or 0)


def warn_few_rows(rows: int, widest: int, where: str) -> None:
    """Warn when a reconstruction is fitted on fewer than twice as many rows
    as features: its error is then dominated by the ridge's cross-validation
    noise, not by the feature sets (a GFRE of a set onto itself far from 0)."""
    import warnings

    if rows < 2 * widest:
        warnings.warn(
            f"{where}: {rows} training rows for up to {widest} features; the "
            "reconstruction errors are dominated by the ridge's cross-validation noise "
            "(use more samples or fewer features)",
            stacklevel=3,
        )
