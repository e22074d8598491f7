"""Interpretability scorecard of latent spaces.

:class:`Scorecard` scores each named feature set (a layer of a model, a
descriptor) on the same atoms:

- **decodability** of each physical label: cross-validated R² of a ridge
  regression for continuous labels, balanced accuracy of a logistic
  regression for categorical ones (folds seeded, features standardised
  inside each fold). It is scored twice: on the full set (``decode_<label>``)
  and on its ``n_components`` leading principal components
  (``decode_<label>@pc``), so that a wide set does not win by width alone.
- **per-species coordinates**: for sets whose coordinates differ between
  species (per-species networks, per-species descriptor compressions: the
  same column means different things for H and O), decoding runs within
  each center type and the scores are averaged with atom-count weights.
  When such sets are ranked together with shared-coordinate sets, every set
  is decoded within species: decoding over all atoms also credits a set for
  the differences *between* species (an O-H coordination that is simply 0
  on Fe atoms), which within-species decoding cannot use, so mixing the two
  would rank shared sets above per-species ones for the wrong reason.
  ``decoding`` says which was done. Decoding the species itself is then
  meaningless and left out.
- **the model's own output** (e.g. its atomic energy), scored apart from the
  physical labels: ``decode_output`` (R²) and ``gfre_to_output``. A last
  hidden layer decodes its own output linearly by construction, so it does
  not count towards the interpretability verdict.
- **information**: GFRE from a reference descriptor to the set (and
  ``gfre_to_output`` above): when the sets are decoded within species, it
  is fitted within each species too (a per-species compression of the
  descriptor is a linear function of it species by species, not over the
  stacked rows) and the species' errors are pooled as one GFRE is, the
  root mean square over the test atoms of every species;
- **map quality**: trustworthiness (scikit-learn) of the 2D PCA map and the
  variance the two components explain.

Each set is scored on its own, on one BLAS thread (so that its numbers do
not depend on how many threads the process that scores it has), and
``n_jobs`` sets are scored at once in joblib's workers (a Dask cluster's
under ``joblib.parallel_config(backend="dask")``); the scores do not depend
on ``n_jobs``.

:meth:`Scorecard.table` ranks the sets (1 = best) per score and gives two
mean ranks: ``mean_rank`` over the physical labels (decoded at full and
equal dimension), the interpretability verdict, and ``output_rank`` over the
own-output scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
from joblib import Parallel, delayed
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.manifold import trustworthiness
from sklearn.metrics import balanced_accuracy_score, r2_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..errors import EquilensError

# scores where lower is better; every other score is better when higher
LOWER_IS_BETTER = ("gfre_to_output",)
OUTPUT_SCORES = ("decode_output", "gfre_to_output")


@dataclass
class Scorecard:
    """Score feature sets for how directly they expose physical labels
    (scikit-learn style: settings here, data in :meth:`fit`).

    :param categorical: names of the categorical labels
    :param n_components: dimension of the equal-dimension scores (leading
        principal components of each set)
    :param n_folds: cross-validation folds
    :param max_samples: score on at most this many (seeded) samples
    :param trust_samples: samples used for trustworthiness (O(n^2))
    :param seed: seeds the subsets and folds
    :param n_jobs: sets scored at once (joblib's ``n_jobs``: ``None`` is one,
        ``-1`` every core)
    """

    categorical: Sequence[str] = ()
    n_components: int = 8
    n_folds: int = 5
    max_samples: int = 5000
    trust_samples: int = 1000
    seed: int = 0
    n_jobs: Optional[int] = None
    labels_: Dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    scores_: Dict[str, Dict[str, float]] = field(default_factory=dict, init=False)
    decoding_: Dict[str, str] = field(default_factory=dict, init=False)

    def fit(
        self,
        features: Mapping[str, np.ndarray],
        labels: Mapping[str, np.ndarray],
        descriptor: Optional[np.ndarray] = None,
        outputs: Optional[Mapping[str, np.ndarray]] = None,
        species: Optional[np.ndarray] = None,
        per_species: Iterable[str] = (),
    ) -> Scorecard:
        """Score every set of ``features`` (rows aligned with the labels);
        a new fit replaces the scores of an earlier one.

        :param labels: ``{name: per-sample values}`` of the physical labels
        :param descriptor: reference descriptor for ``gfre_from_descriptor``
        :param outputs: ``{set name: its model's per-sample output}``
        :param species: center type of each row (needed with ``per_species``)
        :param per_species: names of the sets whose coordinates differ per
            species; when there are any, every set is decoded within species
        """
        self.labels_ = dict(labels)
        self.scores_, self.decoding_ = {}, {}
        n = len(next(iter(self.labels_.values())))
        per_species = set(per_species)
        if per_species and species is None:
            raise EquilensError("per-species decoding needs the species of every row")
        rng = np.random.default_rng(self.seed)
        rows = np.sort(rng.choice(n, min(n, self.max_samples), replace=False))
        groups = None if species is None else np.asarray(species)[rows]
        for name, x in features.items():
            if len(x) != n:
                raise EquilensError(f"feature set '{name}' has {len(x)} rows, labels {n}")
        sets = {name: np.asarray(x, dtype=np.float64)[rows] for name, x in features.items()}
        own = {}
        for name in sets:
            output = None if outputs is None or name not in outputs else outputs[name]
            own[name] = None if output is None else np.asarray(output, dtype=np.float64)[rows]
        split = groups if per_species else None  # one footing for all sets
        gfre = self._gfre(sets, descriptor, rows, own, split)
        scored = Parallel(n_jobs=self.n_jobs)(
            delayed(_score_set)(self, x, rows, split, own[name], gfre[name])
            for name, x in sets.items()
        )
        for name, scores in zip(sets, scored):
            self.decoding_[name] = "per species" if split is not None else "shared"
            self.scores_[name] = scores
        return self

    def _gfre(self, sets, descriptor, rows, outputs, groups) -> Dict[str, Dict[str, float]]:
        """``gfre_from_descriptor`` and ``gfre_to_output`` of every set, on the
        split :func:`~equilens.analysis.compare.compare` draws from the seed
        (within each of ``groups`` when given, pooled by :func:`_pooled_gfre`):
        the descriptor is factorised once for all sets (its targets side by
        side), each set once for its own output."""
        from .sampling import sample_split

        scores: Dict[str, Dict[str, float]] = {name: {} for name in sets}
        if not sets:
            return scores
        first = next(iter(sets.values()))
        chosen, train, test = sample_split(first, len(first), rng=np.random.default_rng(self.seed))
        labels = None if groups is None else np.asarray(groups)[chosen]
        names = list(sets)
        if descriptor is not None:
            source = np.asarray(descriptor, dtype=np.float64)[rows][chosen]
            targets = [sets[name][chosen] for name in names]
            errors = _pooled_gfre(source, targets, train, test, labels, warn=True)
            for name, error in zip(names, errors):
                scores[name]["gfre_from_descriptor"] = error
        for name in names:
            if outputs[name] is not None:
                output = outputs[name].reshape(len(first), -1)[chosen]
                error = _pooled_gfre(sets[name][chosen], [output], train, test, labels)[0]
                scores[name]["gfre_to_output"] = error
        return scores

    def _score(self, x, rows, groups, output, gfre: Dict[str, float]) -> Dict[str, float]:
        scores: Dict[str, float] = {}
        leading = _leading_components(x, self.n_components, groups, self.seed)
        continuous: Dict[str, np.ndarray] = {}
        for label, values in self.labels_.items():
            values = np.asarray(values)[rows]
            if groups is not None and label == "species":
                continue  # constant within each species
            if label in self.categorical:
                scores[f"decode_{label}"] = self._decode(x, values, True, groups)
                scores[f"decode_{label}@pc"] = self._decode(leading, values, True, groups)
            else:
                continuous[label] = values
        # every continuous label (and the model's output) from one
        # factorisation of each fold's features
        targets = dict(continuous, **({} if output is None else {"\x00output": output}))
        for suffix, features, wanted in (("", x, targets), ("@pc", leading, continuous)):
            for label, value in self._regress_all(features, wanted, groups).items():
                name = "decode_output" if label == "\x00output" else f"decode_{label}{suffix}"
                scores[name] = value
        scores = {k: scores[k] for k in self._order(scores)}
        scores.update(gfre)
        subset = x[: self.trust_samples]
        pca = PCA(n_components=min(2, x.shape[1]), random_state=self.seed).fit(x)
        scores["pca_variance_2d"] = float(pca.explained_variance_ratio_.sum())
        scores["trustworthiness"] = float(
            trustworthiness(
                subset, pca.transform(subset), n_neighbors=min(10, len(subset) // 2 - 1)
            )
        )
        return scores

    def _order(self, scores: Dict[str, float]) -> List[str]:
        """The score names in the order of the labels (as before factorising)."""
        order = []
        for label in self.labels_:
            order += [f"decode_{label}", f"decode_{label}@pc"]
        return [k for k in order if k in scores] + [k for k in scores if k not in order]

    def _regress_all(self, x, targets: Mapping[str, np.ndarray], groups) -> Dict[str, float]:
        """R² of every continuous target from ``x`` (within each group when
        given, averaged with the groups' sizes): one cross-validated ridge per
        fold for all targets, each with its own regularisation."""
        if groups is None:
            return self._regress_many(x, targets)
        values: Dict[str, List[float]] = {name: [] for name in targets}
        weights: Dict[str, List[int]] = {name: [] for name in targets}
        for group in np.unique(groups):
            mask = groups == group
            if mask.sum() < 2 * self.n_folds:
                continue
            scored = self._regress_many(x[mask], {n: y[mask] for n, y in targets.items()})
            for name, value in scored.items():
                if np.isfinite(value):
                    values[name].append(value)
                    weights[name].append(int(mask.sum()))
        return {
            name: float(np.average(values[name], weights=weights[name]))
            if values[name]
            else float("nan")
            for name in targets
        }

    def _regress_many(self, x, targets: Mapping[str, np.ndarray]) -> Dict[str, float]:
        result = {name: float("nan") for name in targets}
        names = [n for n, y in targets.items() if not np.allclose(y, np.asarray(y)[0])]
        if not names:
            return result
        y = np.column_stack([np.asarray(targets[n], dtype=np.float64) for n in names])
        predictions = np.zeros_like(y)
        folds = KFold(self.n_folds, shuffle=True, random_state=self.seed)
        for train, test in folds.split(x):
            ridge = RidgeCV(alphas=np.geomspace(1e-6, 1e3, 10), alpha_per_target=True)
            model = make_pipeline(StandardScaler(), ridge)
            predictions[test] = (
                model.fit(x[train], y[train]).predict(x[test]).reshape(len(test), -1)
            )
        for index, name in enumerate(names):
            result[name] = float(r2_score(y[:, index], predictions[:, index]))
        return result

    def _decode(self, x, y, categorical: bool, groups) -> float:
        """Balanced accuracy of a categorical ``y`` from ``x``, within each
        group when given (averaged with the groups' sizes as weights, over the
        groups where it is defined)."""
        assert categorical, "continuous labels are decoded together (_regress_all)"
        if groups is None:
            return self._classify(x, y)
        values, weights = [], []
        for group in np.unique(groups):
            mask = groups == group
            if mask.sum() < 2 * self.n_folds:
                continue
            value = self._classify(x[mask], y[mask])
            if np.isfinite(value):
                values.append(value)
                weights.append(mask.sum())
        return float(np.average(values, weights=weights)) if values else float("nan")

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
        """One row per feature set: every score, ``mean_rank`` (physical labels:
        the verdict), ``output_rank`` (own output), ``decoding`` and ``place``."""
        names = list(self.scores_)
        metrics = sorted({m for s in self.scores_.values() for m in s})
        physical: Dict[str, List[int]] = {name: [] for name in names}
        output: Dict[str, List[int]] = {name: [] for name in names}
        for metric in metrics:
            values = np.array([self.scores_[n].get(metric, np.nan) for n in names])
            present = np.isfinite(values)
            if not present.any():
                continue
            sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
            order = np.argsort(np.where(present, sign * values, np.inf), kind="stable")
            target = output if metric in OUTPUT_SCORES else physical
            if metric.startswith("decode_") or metric in OUTPUT_SCORES:
                for place, index in enumerate(order):
                    if present[index]:  # undefined scores (e.g. references' outputs) skip
                        target[names[index]].append(place + 1)
        rows = []
        for n in names:
            row: Dict[str, Any] = {"feature_set": n, "decoding": self.decoding_.get(n, "shared")}
            row.update(self.scores_[n])
            row["mean_rank"] = float(np.mean(physical[n])) if physical[n] else float("nan")
            row["output_rank"] = float(np.mean(output[n])) if output[n] else float("nan")
            rows.append(row)
        rows.sort(key=lambda row: (np.isnan(row["mean_rank"]), row["mean_rank"]))
        for place, row in enumerate(rows):
            row["place"] = place + 1
        return rows


def _score_set(card: Scorecard, x, rows, groups, output, gfre) -> Dict[str, float]:
    """:meth:`Scorecard._score` on one BLAS thread, in this process or a
    joblib worker: the same numbers wherever it runs. The arrays are copied
    first: numpy's vectorised sums depend, in the last bit, on where an
    array starts in memory, which differs between an array received by a
    worker and the one made here."""
    x = np.array(x, dtype=np.float64, order="C")
    output = None if output is None else np.array(output, dtype=np.float64, order="C")
    with threadpool_limits(1):
        return card._score(x, rows, groups, output, gfre)


def _leading_components(x: np.ndarray, k: int, groups, seed: int) -> np.ndarray:
    """The ``k`` leading principal components of ``x`` (within each group
    when given, since the groups' coordinates differ); zero-padded to ``k``.
    ``seed`` fixes scikit-learn's randomized solver (which it picks for large
    sets: without it, the scores of two runs differed in the fifth digit)."""
    result = np.zeros((len(x), k))
    parts = (
        [np.arange(len(x))]
        if groups is None
        else [np.flatnonzero(groups == g) for g in np.unique(groups)]
    )
    for rows in parts:
        width = min(k, x.shape[1], len(rows))
        if width > 0:
            pca = PCA(n_components=width, random_state=seed)
            result[rows, :width] = pca.fit_transform(x[rows])
    return result


def _pooled_gfre(source, targets, train, test, groups, warn: bool = False) -> List[float]:
    """GFRE from ``source`` to each of ``targets`` on the split ``train`` /
    ``test``; with ``groups`` (one per row), fitted and scaled within each
    group that has enough rows, the groups' squared errors pooled over their
    test rows (the GFRE of the residuals of every group together); ``nan``
    for a target that is constant in every group. ``warn``: when a fit has
    fewer than twice as many rows as features."""
    from .estimators import warn_few_rows
    from .reconstruction import global_measures

    widest = max([source.shape[1]] + [t.shape[1] for t in targets])
    if groups is None:
        if warn:
            warn_few_rows(len(train), widest, "GFRE")
        return global_measures(source, targets, train, test, distortion=False)[0]
    squared, counts = np.zeros(len(targets)), np.zeros(len(targets))
    for group in np.unique(groups):
        train_g, test_g = train[groups[train] == group], test[groups[test] == group]
        if len(train_g) < 4 or len(test_g) < 1:
            continue  # too few atoms of this species to fit on
        if warn:
            warn_few_rows(len(train_g), widest, f"GFRE within center type {group}")
        varying = [
            i for i, t in enumerate(targets) if np.ptp(t[train_g], axis=0).max(initial=0) > 0
        ]
        if not varying or np.ptp(source[train_g], axis=0).max(initial=0) == 0:
            continue  # nothing to reconstruct, or nothing to reconstruct it from
        chosen = [targets[i] for i in varying]
        errors, _ = global_measures(source, chosen, train_g, test_g, distortion=False)
        for i, error in zip(varying, errors):
            squared[i] += error**2 * len(test_g)
            counts[i] += len(test_g)
    with np.errstate(invalid="ignore", divide="ignore"):
        return [float(v) for v in np.sqrt(squared / counts)]
