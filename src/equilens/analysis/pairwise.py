"""GFRE, GFRD and LFRE of every ordered pair of feature sets, in this process
or in joblib's workers (worker processes on this machine, or a Dask
cluster's under ``joblib.parallel_config(backend="dask")``).

A task is one source against every target (GFRE/GFRD), or one source and a
chunk of LFRE test points: the factorisations of a source serve all its
targets (:mod:`equilens.analysis.reconstruction`). Used by
:func:`equilens.analysis.compare.compare`.
"""

from __future__ import annotations

import os
import time
from typing import Dict, List, Optional

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .reconstruction import (
    ScaledTargets,
    global_measures,
    local_squared_errors,
    scaled_targets,
)


def global_values(
    data, measures, train_idx, test_idx, seconds, progress, n_jobs
) -> Dict[tuple, float]:
    """GFRE / GFRD of every ordered pair: ``{(measure, i, j): value}``.

    One fit per source for all its targets (:mod:`equilens.analysis.reconstruction`,
    scikit-matter's values); GFRD reuses the ridge of GFRE. With several
    ``n_jobs`` the sources run in joblib's worker processes on one BLAS
    thread each, the widest first: two singular value decompositions side
    by side use two cores better than one on two threads.
    """
    values: Dict[tuple, float] = {}
    if not measures:
        return values
    started = time.perf_counter()
    order = sorted(range(len(data)), key=lambda i: -data[i].shape[1])
    # every source's targets: scaled once
    options = (scaled_targets(data, train_idx, test_idx), train_idx, test_idx)
    distortion = "gfrd" in measures
    jobs = _workers(n_jobs, len(data))
    bar = dict(total=len(data), desc="GFRE/GFRD", unit="source", disable=not progress)
    if jobs == 1:
        rows = (global_measures(data[i], *options, distortion=distortion) for i in order)
    else:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=jobs, return_as="generator", max_nbytes="1M")
        rows = parallel(delayed(_global_task)(data[i], *options, distortion) for i in order)
    for i, (errors, distortions) in zip(order, tqdm(rows, **bar)):
        for measure in measures:
            row = errors if measure == "gfre" else distortions
            values.update({(measure, i, j): value for j, value in enumerate(row)})
    # one fit serves both measures: its time is shared between them
    share = (time.perf_counter() - started) / len(measures)
    seconds.update({measure: share for measure in measures})
    return values


def _global_task(source: np.ndarray, targets: ScaledTargets, train, test, distortion: bool):
    """GFRE and GFRD from one source to every set, on one BLAS thread."""
    with threadpool_limits(1):
        return global_measures(source, targets, train, test, distortion=distortion)


def _workers(n_jobs: Optional[int], tasks: int) -> int:
    """Worker processes for ``tasks``: ``n_jobs`` (``None``: one per core), at
    most one per task."""
    return max(1, min(n_jobs or os.cpu_count() or 1, tasks))


#: test points per LFRE task: the tasks of a wide source are spread over the
#: workers, and the chunks (and so the values) do not depend on their number
LFRE_CHUNK = 100


def lfre_values(data, train, test, neighbors, n_jobs, progress) -> Dict[tuple, float]:
    """LFRE of every ordered pair. A task is one source and a chunk of test
    points (its neighbours and local fits serve every target); the tasks run
    in joblib's workers when ``n_jobs`` allows (worker processes on this
    machine, or a Dask cluster's workers under ``joblib.parallel_config(
    backend="dask")``), which map the LFRE rows from one file instead of
    receiving them with every task; each source's squared errors are joined
    in chunk order."""
    from joblib import Parallel, delayed

    rows = np.concatenate([train, test])
    subset = [array[rows] for array in data]
    local_train = np.arange(len(train))
    chunks = np.array_split(np.arange(len(train), len(rows)), -(-len(test) // LFRE_CHUNK))
    # the widest sources (the slowest local factorisations) first
    order = sorted(range(len(data)), key=lambda i: -subset[i].shape[1])
    tasks = [(i, local_train, chunk, neighbors) for i in order for chunk in chunks]
    jobs = _workers(n_jobs, len(tasks))
    bar = dict(total=len(tasks), desc="LFRE", unit="task", disable=not progress)
    if jobs == 1:
        squared = [_lfre_task(task, subset) for task in tqdm(tasks, **bar)]
    else:
        parallel = Parallel(n_jobs=jobs, return_as="generator", max_nbytes="1M")
        squared = list(tqdm(parallel(delayed(_lfre_task)(task, subset) for task in tasks), **bar))
    per_source: Dict[int, list] = {}
    for (source, *_), part in zip(tasks, squared):
        per_source.setdefault(source, []).append(part)
    values = {}
    for i, parts in per_source.items():
        lfre = np.sqrt(np.mean(np.vstack(parts), axis=0))
        values.update({("lfre", i, j): float(value) for j, value in enumerate(lfre)})
    return values


def _lfre_task(task, sets: List[np.ndarray]) -> np.ndarray:
    """Squared LFRE errors of a chunk of test points from one source to every
    set (:mod:`equilens.analysis.reconstruction`, scikit-matter's values), on
    one BLAS thread. The rows are copied first: numpy's vectorised sums
    depend, in the last bit, on where an array starts in memory, and a
    worker's arrays (mapped from a file, or received) start elsewhere than
    this process's."""
    source, train, test, neighbors = task
    sets = [np.array(rows, dtype=np.float64, order="C") for rows in sets]
    with threadpool_limits(1):  # small SVDs run 2x faster on one BLAS thread
        return local_squared_errors(sets[source], sets, neighbors, train, test)
