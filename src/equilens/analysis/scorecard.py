"""Interpretability scorecard of latent spaces.

:class:`Scorecard` scores each named feature set (a layer of a model, a
descriptor) on the same atoms:

- **decodability** of each physical label: cross-validated R² of a ridge
  regression for continuous labels, balanced accuracy of a logistic
  regression for categorical ones (folds seeded, features standardised
  inside each fold);
- **information**: GFRE from a reference descriptor to the set (how much of
  the set is a linear function of the descriptor) and from the set to a
  target (e.g. the atomic energy), through :func:`equilens.compare.compare`;
- **map quality**: trustworthiness (scikit-learn) of the 2D PCA map of the
  set and the variance the two components explain.

``rank`` combines them: each score is turned into a rank over the sets
(best = 1), and the aggregate is the mean rank; lower is better.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.manifold import trustworthiness
from sklearn.metrics import balanced_accuracy_score, r2_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..errors import EquilensError

# scores where lower is better; every other score is better when higher
LOWER_IS_BETTER = ("gfre_to_target",)


@dataclass
class Scorecard:
    """Score feature sets for how directly they expose physical labels.

    :param labels: ``{name: per-sample values}``
    :param categorical: names of the categorical labels
    :param n_folds: cross-validation folds
    :param max_samples: score on at most this many (seeded) samples
    :param trust_samples: samples used for trustworthiness (O(n^2))
    :param seed: seeds the subsets and folds
    """

    labels: Mapping[str, np.ndarray]
    categorical: Sequence[str] = ()
    n_folds: int = 5
    max_samples: int = 5000
    trust_samples: int = 1000
    seed: int = 0
    scores_: Dict[str, Dict[str, float]] = field(default_factory=dict, init=False)

    def fit(
        self,
        features: Mapping[str, np.ndarray],
        descriptor: Optional[np.ndarray] = None,
        target: Optional[np.ndarray] = None,
    ) -> Scorecard:
        """Score every set of ``features`` (rows aligned with the labels)."""
        n = len(next(iter(self.labels.values())))
        rng = np.random.default_rng(self.seed)
        rows = np.sort(rng.choice(n, min(n, self.max_samples), replace=False))
        for name, x in features.items():
            x = np.asarray(x, dtype=np.float64)
            if len(x) != n:
                raise EquilensError(f"feature set '{name}' has {len(x)} rows, labels {n}")
            self.scores_[name] = self._score(x[rows], rows, descriptor, target)
        return self

    def _score(self, x, rows, descriptor, target) -> Dict[str, float]:
        scores = {}
        for label, values in self.labels.items():
            values = np.asarray(values)[rows]
            if label in self.categorical:
                scores[f"decode_{label}"] = self._classify(x, values)
            else:
                scores[f"decode_{label}"] = self._regress(x, values)
        if descriptor is not None or target is not None:
            from .compare import compare

            sets = {"set": x}
            if descriptor is not None:
                sets["descriptor"] = np.asarray(descriptor, dtype=np.float64)[rows]
            if target is not None:
                sets["target"] = np.asarray(target, dtype=np.float64).reshape(len(target), -1)[rows]
            gfre = compare(sets, measures=("gfre",), n_samples=len(x), seed=self.seed)
            index = {n: i for i, n in enumerate(gfre.names)}
            if descriptor is not None:
                scores["gfre_from_descriptor"] = float(
                    gfre.matrices["gfre"][index["descriptor"], index["set"]]
                )
            if target is not None:
                scores["gfre_to_target"] = float(
                    gfre.matrices["gfre"][index["set"], index["target"]]
                )
        subset = x[: self.trust_samples]
        n_components = min(2, x.shape[1])
        pca = PCA(n_components=n_components).fit(x)
        scores["pca_variance_2d"] = float(pca.explained_variance_ratio_.sum())
        embedded = pca.transform(subset)
        scores["trustworthiness"] = float(
            trustworthiness(subset, embedded, n_neighbors=min(10, len(subset) // 2 - 1))
        )
        return scores

    def _regress(self, x, y) -> float:
        y = np.asarray(y, dtype=np.float64)
        if np.allclose(y, y[0]):
            return float("nan")
        predictions = np.zeros_like(y)
        folds = KFold(self.n_folds, shuffle=True, random_state=self.seed)
        for train, test in folds.split(x):
            model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.geomspace(1e-6, 1e3, 10)))
            predictions[test] = model.fit(x[train], y[train]).predict(x[test])
        return float(r2_score(y, predictions))

    def _classify(self, x, y) -> float:
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            return float("nan")
        n_folds = int(min(self.n_folds, counts.min()))
        if n_folds < 2:
            return float("nan")
        predictions = np.empty_like(y)
        folds = StratifiedKFold(n_folds, shuffle=True, random_state=self.seed)
        for train, test in folds.split(x, y):
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            predictions[test] = model.fit(x[train], y[train]).predict(x[test])
        return float(balanced_accuracy_score(y, predictions))

    def table(self) -> List[dict]:
        """One row per feature set with every score, its mean rank and its place."""
        names = list(self.scores_)
        metrics = sorted({m for s in self.scores_.values() for m in s})
        ranks: Dict[str, List[int]] = {name: [] for name in names}
        for metric in metrics:
            values = np.array([self.scores_[n].get(metric, np.nan) for n in names])
            if np.all(np.isnan(values)):
                continue
            sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
            order = np.argsort(np.where(np.isnan(values), np.inf, sign * values), kind="stable")
            for place, index in enumerate(order):
                ranks[names[index]].append(place + 1)
        rows = [
            {"feature_set": n, **self.scores_[n], "mean_rank": float(np.mean(ranks[n]))}
            for n in names
        ]
        rows.sort(key=lambda row: float(row["mean_rank"]))  # type: ignore[arg-type]
        for place, row in enumerate(rows):
            row["place"] = place + 1
        return rows
