"""An equivariant global feature reconstruction error between lambda blocks.

For two feature blocks of the same symmetry, ``X`` of shape
``(n, 2 lambda + 1, p)`` and ``Y`` of shape ``(n, 2 lambda + 1, q)`` on the
same atoms, the error is the one of the best *equivariant* linear map: a
``p x q`` matrix ``W`` on the feature axis, shared by the ``2 lambda + 1``
components, ``Y[i, m] ~ X[i, m] W``. It is computed with scikit-matter's
:func:`~skmatter.metrics.global_reconstruction_error` on the stacked rows
``(atom, m)``, with three choices that keep it symmetric:

- the train/test split and the estimator's inner 2-fold split are drawn over
  atoms and every atom brings all its components (no component of a test atom
  is seen in training);
- for ``lambda > 0`` the features are not centered (a mean over samples is not
  covariant) and the scale is one global factor, the root-mean-square row
  norm (:class:`RootMeanSquareScaler`); for ``lambda = 0`` it is
  scikit-matter's centering and scaling;
- for ``lambda = 0`` (one component) it is exactly scikit-matter's GFRE with
  the same split (tested).

How it differs from flattening the components into ``(n, (2 lambda + 1) p)``
and computing the ordinary GFRE: the flattened map has ``(2 lambda + 1)^2``
times more parameters and may mix components, so it can fit relations that
are not equivariant (and overfit with few atoms), and its value changes when
the atoms are rotated; the equivariant error is unchanged when every atom's
``X`` and ``Y`` are rotated by any rotations (each row block is multiplied by
an orthogonal matrix, which changes neither the residual nor ``X^T X``), and
it is zero whenever ``Y`` is a feature mix of ``X`` (both tested).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from metatensor import TensorBlock, TensorMap
from sklearn.model_selection import train_test_split
from skmatter.metrics import global_reconstruction_error
from skmatter.preprocessing import StandardFlexibleScaler

from ..errors import EquilensError
from .estimators import SKMATTER_RANDOM_STATE, FactorizedRidge2FoldCV, warn_few_rows

Key = Tuple[int, ...]


class RootMeanSquareScaler:
    """Divide by the root-mean-square row norm of the fitted data, no centering.

    scikit-matter's ``StandardFlexibleScaler(with_mean=False)`` still scales by
    the *centered* variance, which changes when the atoms are rotated; this
    scale does not.
    """

    def fit(self, x: np.ndarray) -> RootMeanSquareScaler:
        self.scale_ = float(np.sqrt(np.mean(np.sum(np.asarray(x) ** 2, axis=1))))
        if self.scale_ == 0.0:
            raise EquilensError("cannot scale a feature block that is zero everywhere")
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x) / self.scale_


def _values(block) -> np.ndarray:
    values = block.values if isinstance(block, TensorBlock) else block
    values = np.asarray(values.detach() if hasattr(values, "detach") else values, dtype=np.float64)
    if values.ndim != 3:
        raise EquilensError(f"expected (samples, components, features), got shape {values.shape}")
    return values


def equivariant_reconstruction_error(
    source,
    target,
    train_idx: Optional[np.ndarray] = None,
    test_idx: Optional[np.ndarray] = None,
) -> float:
    """Error of the best component-shared linear map ``source -> target``.

    :param source: block or array ``(n, 2 lambda + 1, p)``
    :param target: block or array ``(n, 2 lambda + 1, q)`` on the same atoms
    :param train_idx: atoms to fit on (default: scikit-matter's 50/50 split)
    :param test_idx: atoms to measure on
    :returns: the root-mean-square residual per ``(atom, m)`` row of the scaled
        target (0: exact reconstruction, about 1: nothing reconstructed)
    """
    x, y = _values(source), _values(target)
    if x.shape[:2] != y.shape[:2]:
        raise EquilensError(
            f"source {x.shape} and target {y.shape} need the same atoms and components"
        )
    n, width = x.shape[:2]
    if train_idx is None and test_idx is None:
        train_idx, test_idx = train_test_split(
            np.arange(n), test_size=0.5, train_size=0.5, random_state=SKMATTER_RANDOM_STATE
        )
    elif train_idx is None:
        train_idx = np.setdiff1d(np.arange(n), test_idx)
    elif test_idx is None:
        test_idx = np.setdiff1d(np.arange(n), train_idx)
    offsets = np.arange(width)
    rows_train = (np.asarray(train_idx)[:, None] * width + offsets).ravel()
    rows_test = (np.asarray(test_idx)[:, None] * width + offsets).ravel()
    return float(
        global_reconstruction_error(
            x.reshape(n * width, -1),
            y.reshape(n * width, -1),
            train_idx=rows_train,
            test_idx=rows_test,
            scaler=(
                StandardFlexibleScaler(column_wise=False) if width == 1 else RootMeanSquareScaler()
            ),
            estimator=FactorizedRidge2FoldCV(cache_size=0, group_size=width),
        )
    )


def equivariant_gfre_matrix(
    features: Mapping[str, TensorMap],
    keys: Optional[Sequence[Key]] = None,
    seed: int = 0,
) -> Dict[Key, np.ndarray]:
    """The equivariant error between every ordered pair of feature sets, per key.

    :param features: named TensorMaps with the same keys (e.g. the layers of
        a :class:`~equilens.models.tensor.model.TensorModel`) and the
        same samples in each block
    :param keys: the keys to compare (default: the keys all sets have)
    :param seed: seeds the 50/50 split of the atoms of each block
    :returns: ``{key: matrix}`` with ``matrix[i, j]`` the error from set ``i``
        (source) to set ``j`` (target), in the order of ``features``
    """
    names = list(features)
    if not names:
        raise EquilensError("no feature sets to compare")
    for name in names:
        if "o3_lambda" not in features[name].keys.names:
            raise EquilensError(
                f"feature set '{name}' has no o3_lambda keys (keys {features[name].keys.names}): "
                "the equivariant comparison takes lambda-SOAP or equivariant layers"
            )
    first = features[names[0]]
    if keys is None:
        common = set.intersection(
            *({tuple(int(v) for v in k.values) for k in features[n].keys} for n in names)
        )
        selected = [
            tuple(int(v) for v in k.values)
            for k in first.keys
            if tuple(int(v) for v in k.values) in common
        ]
    else:
        selected = list(keys)
    result = {}
    for key in selected:
        blocks = {}
        for name in names:
            try:
                blocks[name] = features[name].block(dict(zip(first.keys.names, key)))
            except Exception as error:
                raise EquilensError(f"feature set '{name}' has no block {key}") from error
            if blocks[name].samples != blocks[names[0]].samples:
                raise EquilensError(
                    f"feature set '{name}', block {key}: samples differ from '{names[0]}'"
                )
        n = len(blocks[names[0]].samples)
        if n < 4:
            continue
        widest = max(len(b.properties) for b in blocks.values())
        rows = (n // 2) * int(np.prod([len(c) for c in blocks[names[0]].components]))
        warn_few_rows(rows, widest, f"block {key}")
        order = np.random.default_rng(seed).permutation(n)
        train, test = np.sort(order[: n // 2]), np.sort(order[n // 2 :])
        matrix = np.zeros((len(names), len(names)))
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                matrix[i, j] = equivariant_reconstruction_error(blocks[a], blocks[b], train, test)
        result[key] = matrix
    return result
