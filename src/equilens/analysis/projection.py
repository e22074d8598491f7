"""Low-dimensional maps of feature sets: PCA, PCovR and UMAP.

:class:`Projector` is a scikit-learn style ``fit`` / ``transform`` object
over ``(n_samples, n_features)`` arrays. The features are centred and scaled
by one global factor (scikit-matter's ``StandardFlexibleScaler``, so the
relative weight of the columns is kept). PCA comes from scikit-learn, PCovR
(principal covariates regression: a map that also has to predict a target,
e.g. the atomic energy) from scikit-matter, UMAP from ``umap-learn`` (the
``umap`` extra). Large sets are fitted on a seeded subset of
``max_fit_samples`` rows and every row is transformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from skmatter.preprocessing import StandardFlexibleScaler

from ..errors import ConfigError, EquilensError

METHODS = ("pca", "pcovr", "umap")


@dataclass
class Projector:
    """Project feature sets to ``n_components`` dimensions.

    :param method: ``"pca"``, ``"pcovr"`` (needs a target in :meth:`fit`) or
        ``"umap"`` (needs ``pip install equilens[umap]``)
    :param n_components: dimension of the map (2 or 3 for chemiscope)
    :param mixing: PCovR's alpha, 1 = PCA, 0 = pure regression
    :param max_fit_samples: fit on at most this many (seeded, random) rows
    :param seed: seeds the subset and UMAP
    """

    method: str = "pca"
    n_components: int = 2
    mixing: float = 0.5
    max_fit_samples: int = 20000
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"projection method must be one of {METHODS}, got {self.method!r}")
        if self.n_components < 1:
            raise ConfigError("n_components must be >= 1")
        if not 0.0 <= self.mixing <= 1.0:
            raise ConfigError("PCovR mixing must be in [0, 1]")

    def fit(self, x: np.ndarray, y: Optional[np.ndarray] = None) -> Projector:
        """Fit the scaler and the projection on (a subset of) ``x``."""
        x = _as_matrix(x, "features")
        if x.shape[1] < self.n_components and self.method != "umap":
            raise EquilensError(
                f"cannot project {x.shape[1]} features on {self.n_components} components"
            )
        rows = np.arange(len(x))
        if len(x) > self.max_fit_samples:
            rng = np.random.default_rng(self.seed)
            rows = np.sort(rng.choice(len(x), self.max_fit_samples, replace=False))
        self.scaler_ = StandardFlexibleScaler(column_wise=False).fit(x[rows])
        z = self.scaler_.transform(x[rows])
        if self.method == "pca":
            from sklearn.decomposition import PCA

            self.model_ = PCA(n_components=self.n_components, random_state=self.seed).fit(z)
        elif self.method == "pcovr":
            from skmatter.decomposition import PCovR

            if y is None:
                raise EquilensError("PCovR needs a target (e.g. the atomic energies)")
            target = _as_matrix(y, "target")
            if len(target) != len(x):
                raise EquilensError(f"PCovR target has {len(target)} rows, features {len(x)}")
            target = StandardFlexibleScaler(column_wise=True).fit_transform(target[rows])
            self.model_ = PCovR(mixing=self.mixing, n_components=self.n_components).fit(z, target)
        else:
            try:
                import umap
            except ImportError as error:
                raise EquilensError(
                    "UMAP projections need umap-learn: pip install 'equilens[umap]'"
                ) from error
            self.model_ = umap.UMAP(n_components=self.n_components, random_state=self.seed)
            self.model_.fit(z)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Coordinates of every row of ``x`` on the map."""
        return np.asarray(self.model_.transform(self.scaler_.transform(_as_matrix(x, "features"))))

    def fit_transform(self, x: np.ndarray, y: Optional[np.ndarray] = None) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` of all rows."""
        return self.fit(x, y).transform(x)


def _as_matrix(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise EquilensError(f"{name} must be a 2-dimensional array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise EquilensError(f"{name} contain NaN or inf")
    return array
