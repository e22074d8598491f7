"""Featurization batch by batch, in this process or in child processes.

:func:`feature_batches` is how every family computes the features of a
dataset: consecutive batches of frames, one at a time, with a progress bar,
the transient memory of each batch given back before the next; a long one
runs in spawned child processes, replaced every :data:`BATCHES_PER_PROCESS`
batches.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Iterator, List, Optional, Sequence, TypeVar

import ase
import numpy as np
import torch

from .budget import release_free_memory

T = TypeVar("T")


#: batches one child process computes when a split is streamed to disk in
#: more batches than this (:func:`feature_batches`): featomic's transient
#: arrays fragment the C heap of a long featurization, so that its peak grew
#: with the number of frames (``docs/benchmarks.md``, issue 27); a fresh
#: process every 50 batches (400 frames of 8) hands its heap back whole
BATCHES_PER_PROCESS = 50


def feature_batches(
    frames: Sequence[ase.Atoms],
    batch_size: int,
    compute: Callable[[List[ase.Atoms]], T],
    progress: bool = False,
    per_process: Optional[int] = None,
) -> Iterator[T]:
    """``compute(batch)`` of consecutive batches of ``frames``, one at a
    time, with a progress bar: the parts to concatenate in memory
    (:meth:`~equilens.descriptors.projected.FeatureSet.concatenate`) or to stream to disk
    (:class:`~equilens.descriptors.feature_files.FeatureWriter`).

    :param per_process: when the frames make more batches than this, they
        are computed in a spawned child process, a fresh one every
        ``per_process`` batches, one batch ahead of the caller (``compute``
        must then be picklable: a module-level function or a
        ``functools.partial`` of one); in this process otherwise, and always
        in a daemonic process (a Dask worker), which cannot have children
    """
    from tqdm.auto import tqdm

    batches = [list(frames[s : s + batch_size]) for s in range(0, len(frames), batch_size)]
    parts: Iterator[T]
    if per_process is not None and len(batches) > per_process and _may_spawn():
        parts = _in_child_processes(batches, compute, per_process)
    else:
        parts = (compute(batch) for batch in batches)
    bar = tqdm(total=len(frames), desc="features", unit="frame", disable=not progress, leave=False)
    with bar:
        for batch, part in zip(batches, parts):
            yield part
            release_free_memory()  # the batch's transient arrays, freed
            bar.update(len(batch))


def _may_spawn() -> bool:
    import multiprocessing

    return not multiprocessing.current_process().daemon


def _in_child_processes(
    batches: List[List[ase.Atoms]],
    compute: Callable[[List[ase.Atoms]], T],
    per_process: int,
) -> Iterator[T]:
    """``compute(batch)`` of every batch in one spawned worker, replaced
    every ``per_process`` batches; the next batch is computed while the
    caller handles the current one."""
    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    # ``compute`` (with its fitted projections: megabytes) goes to each child
    # once, not with every batch
    pool = ProcessPoolExecutor(
        1,
        mp_context=context,
        max_tasks_per_child=per_process,
        initializer=_start_child,
        initargs=(compute,),
    )
    with pool:
        pending: Optional[Future] = None
        for batch in batches:
            submitted = pool.submit(_computed_as_arrays, batch)
            if pending is not None:
                yield _from_arrays(pending.result())
            pending = submitted
        if pending is not None:
            yield _from_arrays(pending.result())


class _Arrays:
    """A dataclass of tensors (a :class:`~equilens.descriptors.projected.FeatureSet`)
    as its class and numpy arrays, between processes."""

    def __init__(self, kind: type, arrays: Dict[str, Optional[np.ndarray]]):
        self.kind, self.arrays = kind, arrays


#: in a child process of :func:`_in_child_processes`: its ``compute``
_CHILD_COMPUTE: List[Callable] = []


def _start_child(compute: Callable) -> None:
    _CHILD_COMPUTE[:] = [compute]


def _computed_as_arrays(batch: List[ase.Atoms]):
    """The child's ``compute(batch)``, a dataclass of tensors sent back as
    numpy arrays: torch would share its tensors through file descriptors,
    which close with the child process that is replaced."""
    part = _CHILD_COMPUTE[0](batch)
    if not dataclasses.is_dataclass(part) or isinstance(part, type):
        return part
    values = {f.name: getattr(part, f.name) for f in dataclasses.fields(part)}
    return _Arrays(type(part), {k: None if v is None else v.numpy() for k, v in values.items()})


def _from_arrays(part):
    if not isinstance(part, _Arrays):
        return part
    values = {k: None if v is None else torch.from_numpy(v) for k, v in part.arrays.items()}
    return part.kind(**values)
