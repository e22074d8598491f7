"""Representation measures beyond reconstruction errors.

- :func:`linear_cka`: linear centered kernel alignment with the debiased
  HSIC estimator (Song et al. 2012; Kornblith et al. 2019; Murphy et al.
  2024). It is 1 for feature sets related by an orthogonal map and scaling
  and near 0 for unrelated ones, without the upward bias of the plain
  estimator when features outnumber samples. Symmetric.
- :func:`information_imbalance`: Δ(A → B) (Glielmo et al., PNAS Nexus 2022),
  how well distances in A predict the nearest neighbours in B. For each
  point, take its nearest neighbour in A (not itself), find that point's
  rank among the point's neighbours in B (1 for the nearest), and compute
  Δ = 2/N · mean rank. It is about 0 when A's neighbourhoods are B's, and
  about 1 for unrelated spaces. Asymmetric.
- :func:`intrinsic_dimension`: the TwoNN estimate of scikit-dimension
  (``equilens[analysis]``), a number per feature set.

The pairwise measures take ``(n_samples, n_features)`` arrays of the same
samples; :func:`equilens.analysis.compare.compare` gives them one seeded
subsample.
"""

from __future__ import annotations

import numpy as np

from ..errors import EquilensError


def _gram(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x @ x.T


def _hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Unbiased HSIC of two Gram matrices (Song et al. 2012, eq. 5)."""
    n = len(k)
    k = k.copy()
    l = l.copy()  # noqa: E741
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    ones_k = k.sum(axis=0)
    ones_l = l.sum(axis=0)
    term = np.sum(k * l)
    term += ones_k.sum() * ones_l.sum() / ((n - 1) * (n - 2))
    term -= 2.0 * (ones_k @ ones_l) / (n - 2)
    return float(term / (n * (n - 3)))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA of two feature sets of the same ``n > 3`` samples."""
    if len(x) != len(y):
        raise EquilensError(f"CKA needs the same samples, got {len(x)} and {len(y)}")
    if len(x) < 4:
        raise EquilensError("CKA needs at least 4 samples")
    k, l = _gram(x), _gram(y)  # noqa: E741
    xy = _hsic_unbiased(k, l)
    xx = _hsic_unbiased(k, k)
    yy = _hsic_unbiased(l, l)
    if xx <= 0 or yy <= 0:
        return float("nan")
    return xy / np.sqrt(xx * yy)


def _distances(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    squares = np.sum(x**2, axis=1)
    d2 = squares[:, None] + squares[None, :] - 2.0 * (x @ x.T)
    return np.sqrt(np.maximum(d2, 0.0))


def information_imbalance(a: np.ndarray, b: np.ndarray) -> float:
    """Δ(A → B) with Euclidean distances over all ``n`` points."""
    if len(a) != len(b):
        raise EquilensError(f"information imbalance needs the same samples: {len(a)}, {len(b)}")
    n = len(a)
    if n < 3:
        raise EquilensError("information imbalance needs at least 3 samples")
    da, db = _distances(a), _distances(b)
    np.fill_diagonal(da, np.inf)
    np.fill_diagonal(db, np.inf)
    nearest = np.argmin(da, axis=1)
    # rank of the A-nearest neighbour among the B-neighbours (1 = nearest)
    target = db[np.arange(n), nearest]
    ranks = np.sum(db < target[:, None], axis=1) + 1
    return float(2.0 * np.mean(ranks) / n)


def intrinsic_dimension(x: np.ndarray) -> float:
    """TwoNN intrinsic dimension (scikit-dimension) of a feature set."""
    try:
        import skdim
    except ImportError:
        raise EquilensError(
            "the intrinsic dimension needs scikit-dimension: pip install 'equilens[analysis]'"
        ) from None
    x = np.asarray(x, dtype=np.float64)
    # TwoNN divides by nearest-neighbour distances: drop exact duplicates
    unique = np.unique(x, axis=0)
    if len(unique) < 10:
        raise EquilensError("the intrinsic dimension needs at least 10 distinct samples")
    return float(skdim.id.TwoNN().fit(unique).dimension_)


def is_constant(values: np.ndarray) -> bool:
    """Whether every row of ``values`` equals the first (to numpy's
    ``allclose``): such a set has nothing to reconstruct or compare."""
    values = np.asarray(values)
    return bool(np.allclose(values, values[:1]))


def constant_within_species(values: np.ndarray, numbers: np.ndarray) -> bool:
    """Whether ``values`` is constant over the rows of some species (e.g. a
    species embedding), which per-species comparisons cannot use."""
    numbers = np.asarray(numbers)
    return any(is_constant(np.asarray(values)[numbers == z]) for z in np.unique(numbers))
