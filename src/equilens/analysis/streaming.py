"""GFRE, GFRD and CKA of feature sets too large to hold: statistics over chunks.

:class:`StreamingComparison` reads feature sets chunk by chunk (rows are
atoms, the same rows in every set) and keeps, for each part of the split
(the two cross-validation folds of the training rows and the test rows), the
triangular factor ``R`` of ``[1 | X_1 | ... | X_K]`` (``Q R`` of the rows seen
so far, updated by a QR of ``R`` stacked on the new rows). ``R^T R`` is the
Gram matrix ``[1 X]^T [1 X]`` the issue calls the sufficient statistics
(``X^T X``, ``X^T Y``, ``Y^T Y`` and the column sums), but the singular
values of a set are read from ``R`` itself, not from the square root of the
Gram matrix's eigenvalues, so that the ridge cutoffs down to ``1e-9`` of the
largest singular value (scikit-matter's grid) keep their precision. Memory is
``3 (W + 1)^2`` numbers for ``W`` columns in all, whatever the number of rows.

:meth:`StreamingComparison.result` computes, for every ordered pair, the same
quantities as :func:`equilens.analysis.compare.compare`: scikit-matter's GFRE
(``StandardFlexibleScaler`` fitted on the training rows, ridge with
singular-value cutoff chosen by 2-fold cross-validation over
``geomspace(1e-9, 0.9, 20)``, RMS error on the test rows), its GFRD (the thin
form of ``global_reconstruction_distortion_thin``)
and the debiased linear CKA of :func:`~equilens.analysis.measures.linear_cka`,
here over all rows (its sums need no pairwise matrix). Given the same split
they equal the in-memory values (``tests/test_streaming.py``).

The split is a function of the global row index and the seed only
(:func:`assign_parts`), so the values do not depend on how rows are chunked;
partial statistics of disjoint row ranges (e.g. from Dask workers) add up with
:meth:`StreamingComparison.merge`.
"""

from __future__ import annotations

import time
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tqdm.auto import tqdm

from ..errors import EquilensError
from .compare import Comparison
from .estimators import SKMATTER_ALPHAS

MEASURES = ("gfre", "gfrd", "cka")
FOLD1, FOLD2, TEST = 0, 1, 2
#: rows of one random block of :func:`assign_parts` (chunking-independent)
_BLOCK = 1 << 16


def assign_parts(start: int, stop: int, train_fraction: float, seed: int) -> np.ndarray:
    """Part of each row ``start <= row < stop``: ``0``/``1`` (training folds),
    ``2`` (test), drawn from one uniform number per row seeded by ``seed``
    and the row's block of 65,536 rows."""
    if not 0.0 < train_fraction < 1.0:
        raise EquilensError(f"train_fraction must be in (0, 1), got {train_fraction}")
    parts = np.empty(stop - start, dtype=np.int8)
    first, last = start // _BLOCK, (stop - 1) // _BLOCK if stop > start else -1
    for block in range(first, last + 1):
        uniform = np.random.default_rng([seed, block]).random(_BLOCK)
        lo, hi = max(start, block * _BLOCK), min(stop, (block + 1) * _BLOCK)
        values = uniform[lo - block * _BLOCK : hi - block * _BLOCK]
        chunk = np.where(values < train_fraction / 2, FOLD1, FOLD2)
        parts[lo - start : hi - start] = np.where(values < train_fraction, chunk, TEST)
    return parts


class _Factor:
    """Streaming ``R`` of ``[1 | A]`` over the rows added (buffered)."""

    def __init__(self, width: int, buffer_rows: int):
        self.r = np.zeros((0, width + 1))
        self.rows = 0
        self._buffer: List[np.ndarray] = []
        self._buffered = 0
        self._buffer_rows = buffer_rows

    def add(self, rows: np.ndarray) -> None:
        if len(rows):
            self._buffer.append(np.hstack([np.ones((len(rows), 1)), rows]))
            self._buffered += len(rows)
            self.rows += len(rows)
        if self._buffered >= self._buffer_rows:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self.r = np.asarray(np.linalg.qr(np.vstack([self.r, *self._buffer]), mode="r"))
            self._buffer, self._buffered = [], 0

    def merge(self, other: _Factor) -> None:
        other.flush()
        self.flush()
        self.r = np.asarray(np.linalg.qr(np.vstack([self.r, other.r]), mode="r"))
        self.rows += other.rows


class StreamingComparison:
    """GFRE, GFRD and CKA between named feature sets, fitted chunk by chunk.

    :param measures: any of ``"gfre"``, ``"gfrd"``, ``"cka"``
    :param train_fraction: expected fraction of rows in the training folds
    :param seed: seeds the split (:func:`assign_parts`)
    :param buffer_rows: rows buffered before each QR update (larger: faster,
        more memory; the values do not depend on it beyond rounding)
    """

    def __init__(
        self,
        measures: Sequence[str] = MEASURES,
        train_fraction: float = 0.5,
        seed: int = 0,
        buffer_rows: int = 8192,
    ):
        unknown = set(measures) - set(MEASURES)
        if unknown:
            raise EquilensError(
                f"unknown streaming measures {sorted(unknown)}; choose from {MEASURES}"
            )
        self.measures = tuple(measures)
        self.train_fraction = train_fraction
        self.seed = seed
        self.buffer_rows = buffer_rows
        self.names_: Optional[List[str]] = None
        self.n_rows_ = 0
        self._next_row = 0

    def _start(self, chunk: Mapping[str, np.ndarray]) -> None:
        self.names_ = list(chunk)
        if len(self.names_) < 2:
            raise EquilensError("a comparison needs at least two feature sets")
        widths = [np.shape(chunk[name])[1] for name in self.names_]
        self.offsets_ = np.concatenate([[0], np.cumsum(widths)]).astype(int)
        width = int(self.offsets_[-1])
        self._factors = [_Factor(width, self.buffer_rows) for _ in range(3)]
        # CKA: per-set squared row norms d_k, their products with [1 A] and each other
        self._a_d = np.zeros((width + 1, len(widths)))
        self._d_d = np.zeros((len(widths), len(widths)))

    def partial_fit(
        self,
        chunk: Mapping[str, np.ndarray],
        parts: Optional[np.ndarray] = None,
        start: Optional[int] = None,
    ) -> StreamingComparison:
        """Add the next rows: ``{name: (n_rows, n_features)}``, the same rows in
        every set and the same names and widths as the first chunk.

        :param parts: the part of each row (``0``, ``1``: training folds;
            ``2``: test) instead of :func:`assign_parts`
        :param start: global index of the chunk's first row, which decides
            its rows' parts (default: right after the rows added before;
            give it when disjoint row ranges are accumulated separately and
            merged)
        """
        if self.names_ is None:
            self._start(chunk)
        assert self.names_ is not None
        if list(chunk) != self.names_:
            raise EquilensError(f"chunk has sets {list(chunk)}, expected {self.names_}")
        arrays = []
        for k, name in enumerate(self.names_):
            array = np.asarray(chunk[name], dtype=np.float64)
            width = self.offsets_[k + 1] - self.offsets_[k]
            if array.ndim != 2 or array.shape[1] != width:
                raise EquilensError(
                    f"feature set '{name}': chunk of shape {array.shape}, expected (rows, {width})"
                )
            if not np.all(np.isfinite(array)):
                raise EquilensError(
                    f"feature set '{name}' contains NaN or inf in rows from {self.n_rows_}"
                )
            arrays.append(array)
        rows = {len(a) for a in arrays}
        if len(rows) != 1:
            raise EquilensError(f"chunk sets have different numbers of rows: {sorted(rows)}")
        n = rows.pop()
        start = self._next_row if start is None else start
        if parts is None:
            parts = assign_parts(start, start + n, self.train_fraction, self.seed)
        parts = np.asarray(parts)
        if parts.shape != (n,):
            raise EquilensError(f"parts must have one entry per row ({n}), got {parts.shape}")
        joined = np.hstack(arrays)
        for part, factor in enumerate(self._factors):
            factor.add(joined[parts == part])
        if "cka" in self.measures:
            d = np.stack([np.einsum("ij,ij->i", a, a) for a in arrays], axis=1)
            self._a_d[0] += d.sum(axis=0)
            self._a_d[1:] += joined.T @ d
            self._d_d += d.T @ d
        self.n_rows_ += n
        self._next_row = start + n
        return self

    def fit(
        self, chunks: Iterable[Mapping[str, np.ndarray]], progress: bool = False
    ) -> StreamingComparison:
        """:meth:`partial_fit` over every chunk of ``chunks``."""
        for chunk in tqdm(chunks, desc="statistics", unit="chunk", disable=not progress):
            self.partial_fit(chunk)
        return self

    def merge(self, other: StreamingComparison) -> StreamingComparison:
        """Add the statistics of ``other`` (disjoint rows, same sets)."""
        if other.names_ is None:
            return self
        if self.names_ is None:
            widths = np.diff(other.offsets_)
            self._start({n: np.zeros((0, w)) for n, w in zip(other.names_, widths)})
        if other.names_ != self.names_ or not np.array_equal(other.offsets_, self.offsets_):
            raise EquilensError("cannot merge statistics of different feature sets")
        for mine, theirs in zip(self._factors, other._factors):
            mine.merge(theirs)
        self._a_d += other._a_d
        self._d_d += other._d_d
        self.n_rows_ += other.n_rows_
        return self

    def result(self) -> Comparison:
        """Every ordered pair's measures, as
        :func:`~equilens.analysis.compare.compare` gives them."""
        if self.names_ is None:
            raise EquilensError("no rows were added to the comparison")
        for factor in self._factors:
            factor.flush()
        rows = [factor.rows for factor in self._factors]
        if min(rows[FOLD1], rows[FOLD2]) < 2 or rows[TEST] < 1:
            raise EquilensError(f"too few rows for the split: folds {rows[:2]}, test {rows[2]}")
        seconds: Dict[str, float] = {}
        started = time.perf_counter()
        scaled = self._scaled_parts()
        k = len(self.names_)
        matrices = {m: np.zeros((k, k)) for m in self.measures}
        global_measures = [m for m in self.measures if m in ("gfre", "gfrd")]
        for i in range(k):
            for j in range(k):
                if global_measures:
                    values = _reconstruction(scaled, i, j, rows)
                    for measure in global_measures:
                        matrices[measure][i, j] = values[measure]
        seconds["gfre/gfrd"] = time.perf_counter() - started
        if "cka" in self.measures:
            started = time.perf_counter()
            matrices["cka"] = self._cka()
            seconds["cka"] = time.perf_counter() - started
        table = [
            {"measure": m, "source": self.names_[i], "target": self.names_[j],
             "value": float(matrices[m][i, j])}
            for i in range(k) for j in range(k) for m in self.measures
        ]  # fmt: skip
        return Comparison(
            names=list(self.names_),
            matrices=matrices,
            n_samples=self.n_rows_,
            n_train=rows[FOLD1] + rows[FOLD2],
            n_test=rows[TEST],
            table=table,
            seconds=seconds,
        )

    def _scaled_parts(self) -> List[List[np.ndarray]]:
        """``[part][set]``: factors of each set's rows, centred on the training
        mean and divided by its global scale (scikit-matter's scaler)."""
        assert self.names_ is not None
        folds = [self._factors[FOLD1], self._factors[FOLD2]]
        n_train = folds[0].rows + folds[1].rows
        # R[0, 0] = +-sqrt(n) and R[0, 1:] = +-sums / sqrt(n): the training sums
        sums = sum(f.r[0, 1:] * f.r[0, 0] for f in folds)
        mean = sums / n_train
        # [1 A] T with T = [-mean; I] is A centred on the training mean
        centred = [f.r[:, 1:] - f.r[:, :1] * mean[None, :] for f in self._factors]
        scaled: List[List[np.ndarray]] = [[] for _ in centred]
        for k, name in enumerate(self.names_):
            columns = slice(self.offsets_[k], self.offsets_[k + 1])
            variance = sum(np.sum(c[:, columns] ** 2) for c in centred[:2]) / n_train
            # zero up to the rounding of the centring (skmatter refuses these too)
            if variance <= 1e-20 * (1.0 + np.mean(mean[columns] ** 2)):
                raise EquilensError(
                    f"feature set '{name}' is constant on the training rows: nothing to reconstruct"
                )
            for part, c in enumerate(centred):
                scaled[part].append(c[:, columns] / np.sqrt(variance))
        return scaled

    def _cka(self) -> np.ndarray:
        """Debiased linear CKA of every pair over all rows, from the sums."""
        assert self.names_ is not None
        gram = np.zeros((self.offsets_[-1] + 1,) * 2)
        for factor in self._factors:
            gram += factor.r.T @ factor.r
        n = self.n_rows_
        if n < 4:
            raise EquilensError("CKA needs at least 4 rows")
        k = len(self.names_)
        hsic = np.zeros((k, k))
        for a in range(k):
            for b in range(a, k):
                hsic[a, b] = hsic[b, a] = self._hsic(gram, a, b, n)
        diagonal = np.sqrt(np.maximum(np.diag(hsic), 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            cka = hsic / np.outer(diagonal, diagonal)
        cka[np.outer(diagonal, diagonal) <= 0] = np.nan
        np.fill_diagonal(cka, 1.0)
        return cka

    def _hsic(self, gram: np.ndarray, a: int, b: int, n: int) -> float:
        """Song et al.'s unbiased HSIC of the linear kernels of sets ``a`` and
        ``b`` (as :func:`~equilens.analysis.measures.linear_cka`), from
        ``[1 A]^T [1 A]`` and the squared row norms ``d``."""
        ca = slice(1 + self.offsets_[a], 1 + self.offsets_[a + 1])
        cb = slice(1 + self.offsets_[b], 1 + self.offsets_[b + 1])
        cross = gram[ca, cb]  # X_a^T X_b
        sum_a, sum_b = gram[0, ca], gram[0, cb]
        d_a, d_b = self._a_d[0, a], self._a_d[0, b]  # sums of the d's
        off_diagonal = np.sum(cross**2) - self._d_d[a, b]
        total_a = sum_a @ sum_a - d_a
        total_b = sum_b @ sum_b - d_b
        rows_product = (
            sum_a @ cross @ sum_b
            - sum_a @ self._a_d[ca, b]
            - sum_b @ self._a_d[cb, a]
            + self._d_d[a, b]
        )
        term = off_diagonal + total_a * total_b / ((n - 1) * (n - 2)) - 2 * rows_product / (n - 2)
        return float(term / (n * (n - 3)))


def _reconstruction(
    scaled: List[List[np.ndarray]], i: int, j: int, rows: Sequence[int]
) -> Dict[str, float]:
    """GFRE and GFRD from set ``i`` to set ``j`` on the factored parts."""
    x1, x2, xt = (scaled[p][i] for p in (FOLD1, FOLD2, TEST))
    y1, y2, yt = (scaled[p][j] for p in (FOLD1, FOLD2, TEST))
    cutoff = _cross_validated_cutoff(x1, y1, x2, y2, rows[FOLD1], rows[FOLD2])
    x_train, y_train = np.vstack([x1, x2]), np.vstack([y1, y2])
    u, s, vt = np.linalg.svd(x_train, full_matrices=False)
    keep = min(len(s), int(np.sum(s > cutoff)))
    weights = vt[:keep].T @ ((u[:, :keep].T @ y_train) / s[:keep, None])
    n_test = rows[TEST]
    gfre = np.sqrt(np.sum((yt - xt @ weights) ** 2) / n_test)
    # GFRD: Procrustes map from x to the ridge predictions on the training rows
    pu, _, pvt = np.linalg.svd(x_train.T @ (x_train @ weights), full_matrices=False)
    squared = np.sum((xt @ (weights - pu @ pvt)) ** 2)
    squared += np.sum(xt**2) - np.sum((xt @ pu) ** 2)
    return {"gfre": float(gfre), "gfrd": float(np.sqrt(max(squared, 0.0) / n_test))}


def _cross_validated_cutoff(x1, y1, x2, y2, n1: int, n2: int) -> float:
    """The singular-value cutoff :class:`~equilens.analysis.estimators.FactorizedRidge2FoldCV`
    chooses, on factors of the two folds (``n1``, ``n2`` rows)."""
    fits = []
    for (xa, ya), (xb, yb, nb) in (((x1, y1), (x2, y2, n2)), ((x2, y2), (x1, y1, n1))):
        u, s, vt = np.linalg.svd(xa, full_matrices=False)
        # scikit-matter's rank cutoff uses the shape of the whole training set
        rcond = max(n1 + n2, xa.shape[1]) * np.spacing(1.0)
        used = int(np.sum(s > rcond))
        # predictions of fold b from the model of fold a, one singular value at a time
        fits.append((s, used, (xb @ vt[:used].T) / s[:used], u[:, :used].T @ ya, xb, yb, nb))
    scale = max(np.max(fits[0][0]), np.max(fits[1][0]))
    cutoffs = np.asarray(SKMATTER_ALPHAS) * scale
    scores = np.empty(len(cutoffs))
    predictions = [np.zeros((len(f[5]), f[5].shape[1])) for f in fits]
    done = [0, 0]
    for index in np.argsort(-cutoffs, kind="stable"):
        score = 0.0
        for f, (s, used, basis, projected, _, y_other, n_other) in enumerate(fits):
            k = min(used, int(np.sum(s > cutoffs[index])))
            if k > done[f]:
                predictions[f] += basis[:, done[f] : k] @ projected[done[f] : k]
                done[f] = k
            # y_other and the predictions are factors: squared column norms are sums
            column = np.sum((y_other - predictions[f]) ** 2, axis=0) / n_other
            score += float(np.mean(np.sqrt(column)))
        scores[index] = -score / 2
    return float(cutoffs[int(np.argmax(scores))])


def compare_streaming(
    chunks: Iterable[Mapping[str, np.ndarray]],
    measures: Sequence[str] = MEASURES,
    train_fraction: float = 0.5,
    seed: int = 0,
    progress: bool = False,
) -> Comparison:
    """:class:`StreamingComparison` over ``chunks`` (an iterable of
    ``{name: rows}``, e.g. :func:`equilens.analysis.chunks.iter_latent_chunks`)."""
    streaming = StreamingComparison(measures, train_fraction, seed)
    return streaming.fit(chunks, progress=progress).result()


def split_indices(parts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(train_idx, test_idx)`` of rows labelled by :func:`assign_parts`."""
    parts = np.asarray(parts)
    return np.nonzero(parts != TEST)[0], np.nonzero(parts == TEST)[0]
