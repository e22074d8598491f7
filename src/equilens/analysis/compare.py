"""Measures between feature sets: GFRE, GFRD, LFRE, CKA, information imbalance, ID.

:func:`compare` takes any number of feature sets on the same samples (layers
of one model, layers of two models, descriptors with other hypers) and
computes scikit-matter's reconstruction measures for every ordered pair
``source -> target`` (a linear map of the source reproducing the target), on
one seeded selection and split shared by all pairs: asymmetric matrices (rows:
source, columns: target) and a tidy table.

Choices made explicit here, since scikit-matter leaves them to the caller:

- the index arguments are passed by keyword (the global and pointwise
  functions take them in different orders);
- scikit-matter scales each set by one global factor (not per column), so
  constant columns are harmless; a set that is entirely constant is an
  error naming it;
- GFRD needs a target at least as wide as the source (orthogonal regression
  maps between spaces of one dimension): a narrower target is padded with
  zero columns, as in Goscinski et al., Mach. Learn.: Sci. Technol. 2, 025028
  (2021); the padding changes neither the target's distances nor its scale.
  The padded problem is never formed
  (:func:`~equilens.analysis.reconstruction.global_reconstruction_distortion_thin`:
  the same number, checked by a test);
- LFRE fits one ridge per test point on its ``lfre_neighbors`` nearest
  training points, so it runs on its own, smaller sample budget;
- every measure fits each source once for all its targets
  (:mod:`equilens.analysis.reconstruction`), with scikit-matter's values.

Next to them, in the same call and on the same selection
(:mod:`equilens.analysis.measures`): the debiased linear CKA (``"cka"``,
symmetric), the information imbalance Δ(row → column) (``"ii"``), both on a
seeded subsample of ``rank_samples`` of the selected samples (they need all
pairwise distances), and the TwoNN intrinsic dimension of each set (``"id"``,
in :attr:`Comparison.per_set`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
from metatensor import Labels, TensorBlock, TensorMap

from ..errors import EquilensError
from ..tensormaps import StackedBlocks, check_same_structures
from .estimators import warn_few_rows
from .measures import information_imbalance, intrinsic_dimension, is_constant, linear_cka
from .pairwise import global_values, lfre_values
from .sampling import sample_split

MEASURES = ("gfre", "gfrd", "lfre")
#: measures on a subsample of the selection: pairwise (matrices) and per set
RANK_MEASURES = ("cka", "ii")
SET_MEASURES = ("id",)
ALL_MEASURES = MEASURES + RANK_MEASURES + SET_MEASURES
FeatureSet = Union[TensorMap, np.ndarray]


@dataclass
class Comparison:
    """Reconstruction measures between named feature sets.

    ``matrices[measure][i, j]`` is the measure from ``names[i]`` (source) to
    ``names[j]`` (target); ``table`` has one row per (measure, source, target).
    """

    names: List[str]
    matrices: Dict[str, np.ndarray]
    n_samples: int
    n_train: int
    n_test: int
    lfre_samples: Optional[int] = None
    table: List[dict] = field(default_factory=list)
    seconds: Dict[str, float] = field(default_factory=dict)
    #: per-set measures (``{"id": {name: value}}``)
    per_set: Dict[str, Dict[str, float]] = field(default_factory=dict)
    rank_samples: Optional[int] = None


def compare(
    features: Mapping[str, FeatureSet],
    measures: Sequence[str] = MEASURES,
    n_samples: int = 10000,
    selection: str = "random",
    train_fraction: float = 0.5,
    lfre_samples: int = 1000,
    lfre_neighbors: int = 100,
    seed: int = 0,
    split: Optional[tuple] = None,
    progress: bool = False,
    n_jobs: Optional[int] = 1,
    rank_samples: int = 2000,
) -> Comparison:
    """Reconstruction measures for every ordered pair of ``features``.

    :param features: ``{name: TensorMap or (n_samples, n_features) array}``;
        TensorMaps with several blocks (e.g. one per species) are stacked in
        ``(system, atom)`` order, and all sets must have the same samples
    :param measures: any of ``"gfre"``, ``"gfrd"``, ``"lfre"``
    :param n_samples: sample budget of GFRE and GFRD
    :param selection: ``"random"`` or ``"fps"`` (farthest-point sampling in
        the first feature set) for choosing the budgeted samples
    :param train_fraction: fraction of the selected samples used to fit
    :param lfre_samples: sample budget of LFRE (a subset of the others)
    :param lfre_neighbors: neighbors of each LFRE test point
    :param seed: seeds the selection and the split
    :param split: explicit ``(train_idx, test_idx)`` into the selected
        samples, instead of the seeded split (e.g. to match another tool)
    :param progress: show progress bars
    :param n_jobs: joblib workers for GFRE/GFRD (a task per source) and LFRE
        (tasks of one source and 100 test points); ``None``: one per CPU core;
        a Dask cluster's under ``joblib.parallel_config(backend="dask")``. The
        LFRE values do not depend on it; GFRE/GFRD in workers fit on one BLAS
        thread, whose round-off may differ from several threads' (1e-12)
    :param rank_samples: subsample of the selection for CKA, information
        imbalance and intrinsic dimension
    """
    unknown = set(measures) - set(ALL_MEASURES)
    if unknown:
        raise EquilensError(f"unknown measures {sorted(unknown)}; choose from {ALL_MEASURES}")
    if len(features) < 2:
        raise EquilensError("compare needs at least two feature sets")
    names = list(features)
    sets = _aligned_sets(features)

    rng = np.random.default_rng(seed)
    first = sets[names[0]]
    if selection == "fps" and isinstance(first, StackedBlocks):
        first = first.rows()  # farthest-point sampling reads every row
    chosen, train_idx, test_idx = sample_split(
        first, n_samples, selection, train_fraction, split, rng
    )
    data = [_selected_rows(name, sets[name], chosen) for name in names]
    if any(m in measures for m in ("gfre", "gfrd")):
        warn_few_rows(len(train_idx), max(array.shape[1] for array in data), "GFRE/GFRD")
    seconds: Dict[str, float] = {}
    global_measures = [m for m in measures if m in ("gfre", "gfrd")]
    values = global_values(data, global_measures, train_idx, test_idx, seconds, progress, n_jobs)
    lfre_train = lfre_test = None
    if "lfre" in measures:
        fraction = min(1.0, lfre_samples / len(chosen))
        lfre_train = np.sort(
            rng.choice(train_idx, max(2, int(fraction * len(train_idx))), replace=False)
        )
        lfre_test = np.sort(
            rng.choice(test_idx, max(1, int(fraction * len(test_idx))), replace=False)
        )
        if lfre_neighbors > len(lfre_train):
            raise EquilensError(
                f"lfre_neighbors={lfre_neighbors} is larger than the {len(lfre_train)} LFRE "
                "training points; raise lfre_samples or lower lfre_neighbors"
            )
        started = time.perf_counter()
        values.update(lfre_values(data, lfre_train, lfre_test, lfre_neighbors, n_jobs, progress))
        seconds["lfre"] = time.perf_counter() - started
    rank_rows = None
    wanted = [m for m in measures if m in RANK_MEASURES + SET_MEASURES]
    if wanted:  # drawn after the others, so their values do not depend on it
        rank_rows = np.sort(rng.choice(len(chosen), min(rank_samples, len(chosen)), replace=False))
        subset = [array[rank_rows] for array in data]
        values.update(_rank_values(subset, [m for m in wanted if m in RANK_MEASURES], seconds))
    per_set = {}
    if "id" in measures:
        started = time.perf_counter()
        per_set["id"] = {
            name: intrinsic_dimension(data[i][rank_rows]) for i, name in enumerate(names)
        }
        seconds["id"] = time.perf_counter() - started

    measures = [m for m in measures if m not in SET_MEASURES]
    matrices = {m: np.zeros((len(names), len(names))) for m in measures}
    table = []
    for i in range(len(names)):
        for j in range(len(names)):
            for measure in measures:
                value = values[(measure, i, j)]
                matrices[measure][i, j] = value
                table.append(
                    {"measure": measure, "source": names[i], "target": names[j], "value": value}
                )
    return Comparison(
        names=names,
        matrices=matrices,
        n_samples=len(chosen),
        n_train=len(train_idx),
        n_test=len(test_idx),
        lfre_samples=None if lfre_train is None else len(lfre_train) + len(lfre_test),
        table=table,
        seconds=seconds,
        per_set=per_set,
        rank_samples=None if rank_rows is None else len(rank_rows),
    )


def _rank_values(data, measures, seconds) -> Dict[tuple, float]:
    """CKA (symmetric: computed once per pair) and information imbalance."""
    values: Dict[tuple, float] = {}
    for measure in measures:
        started = time.perf_counter()
        for i in range(len(data)):
            for j in range(len(data)):
                if measure == "cka" and j < i:
                    values[("cka", i, j)] = values[("cka", j, i)]
                elif measure == "cka":
                    values[("cka", i, j)] = 1.0 if i == j else linear_cka(data[i], data[j])
                else:
                    values[("ii", i, j)] = information_imbalance(data[i], data[j])
        seconds[measure] = time.perf_counter() - started
    return values


def compare_by_species(features: Mapping[str, TensorMap], **options) -> Dict[int, Comparison]:
    """:func:`compare` separately for each center species.

    Per-species networks (one MLP per species, per-species descriptor
    compression) give each species its own coordinates, so a linear map fitted
    over all atoms at once mixes unrelated spaces: compare their layers
    species by species. Each feature set is either split on its
    ``center_type`` key (per-species blocks) or on a ``center_type`` sample
    dimension (one block over all atoms); every set must hold the same
    species. ``options`` go to :func:`compare` and apply to each species
    (the sample budget is per species).

    :returns: ``{center_type: Comparison}`` in increasing species order
    """
    check_same_structures(features)
    split = {name: _split_species(tensor, name) for name, tensor in features.items()}
    species = [set(parts) for parts in split.values()]
    common = set.intersection(*species)
    if any(s != common for s in species):
        found = {name: sorted(parts) for name, parts in split.items()}
        raise EquilensError(f"feature sets hold different center species: {found}")
    return {
        z: compare({name: parts[z] for name, parts in split.items()}, **options)
        for z in sorted(common)
    }


def _split_species(tensor: TensorMap, name: str) -> Dict[int, np.ndarray]:
    if not isinstance(tensor, TensorMap):
        raise EquilensError(f"feature set '{name}' must be a TensorMap to split by species")
    if "center_type" in tensor.keys.names:
        parts = {}
        for key, block in tensor.items():
            parts[int(key["center_type"])] = TensorMap(
                Labels(["_"], np.zeros((1, 1), dtype=np.int32)), [block.copy()]
            )
        return parts
    block = tensor.block(0)
    if len(tensor.keys) != 1 or "center_type" not in block.samples.names:
        raise EquilensError(
            f"feature set '{name}' has neither a center_type key nor a center_type sample "
            "dimension; compute latents with per_species=True"
        )
    column = block.samples.column("center_type")
    column = np.asarray(column)
    parts = {}
    for z in np.unique(column):
        rows = np.nonzero(column == z)[0]
        samples = block.samples.values[rows]
        keep = [i for i, n in enumerate(block.samples.names) if n != "center_type"]
        labels = Labels(
            [block.samples.names[i] for i in keep], np.asarray(samples[:, keep], dtype=np.int32)
        )
        part = TensorBlock(block.values[rows], labels, [], block.properties)
        parts[int(z)] = TensorMap(Labels(["_"], np.zeros((1, 1), dtype=np.int32)), [part])
    return parts


Rows = Union[StackedBlocks, np.ndarray]


def _aligned_sets(features: Mapping[str, FeatureSet]) -> Dict[str, Rows]:
    """Each set's rows in sample order (TensorMaps' blocks gathered only
    where :func:`_selected_rows` asks), all with the same samples."""
    check_same_structures(features)
    sets: Dict[str, Rows] = {}
    reference = None
    for name, value in features.items():
        if isinstance(value, TensorMap):
            stacked = StackedBlocks(value, name)
            if reference is None:
                reference = (name, stacked.samples)
            elif stacked.samples != reference[1]:
                raise EquilensError(
                    f"feature sets '{reference[0]}' and '{name}' do not have the same samples"
                )
            sets[name] = stacked
        else:
            array = np.asarray(value, dtype=np.float64)
            if array.ndim != 2:
                raise EquilensError(
                    f"feature set '{name}' must be 2-dimensional, got {array.shape}"
                )
            sets[name] = array
    lengths = {name: len(a) for name, a in sets.items()}
    if len(set(lengths.values())) != 1:
        raise EquilensError(f"feature sets have different numbers of samples: {lengths}")
    return sets


def _selected_rows(name: str, rows: Rows, chosen) -> np.ndarray:
    """The ``chosen`` rows of one set (float64), checked: the measures see
    only these rows, so these are the ones that must be finite and vary."""
    array = np.asarray(rows.rows(chosen) if isinstance(rows, StackedBlocks) else rows[chosen])
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise EquilensError(f"feature set '{name}' contains NaN or inf")
    if is_constant(array):
        raise EquilensError(f"feature set '{name}' is constant: nothing to reconstruct")
    return array
