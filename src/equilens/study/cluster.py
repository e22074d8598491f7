"""Where the study's independent work runs: this process or a Dask cluster.

``equilens study CONFIG --scheduler local:N`` starts a Dask ``LocalCluster``
of ``N`` single-threaded worker processes on this machine;
``--scheduler tcp://HOST:PORT`` joins a scheduler that is already running
(for example one started by dask-jobqueue's ``SLURMCluster`` on an HPC
system, see the README). Without ``--scheduler`` everything runs in this
process.

The study submits what does not depend on anything else: the training of
every sweep entry and seed (:func:`equilens.study.sweep.train_sweep`). Each
task trains into its own run folder, so a finished task is never redone
when the study runs again (the run reloads from its folder), and Dask
reruns the task of a worker that died on another worker. The scorecard's
sets are then scored by the same workers (joblib's Dask backend,
:func:`joblib_backend`). ``equilens latents --chunk-frames`` evaluates its
chunks of frames, and ``equilens compare`` its LFRE tasks, on a cluster the
same way.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator, Optional

from .config import StudyError

#: seconds to wait for a scheduler to answer before refusing (the
#: environment variable EQUILENS_DASK_TIMEOUT overrides it: a cluster whose
#: scheduler is still starting may need longer)
CONNECT_TIMEOUT = 10


def connect_timeout() -> float:
    """:data:`CONNECT_TIMEOUT`, or ``$EQUILENS_DASK_TIMEOUT`` when set."""
    import os

    text = os.environ.get("EQUILENS_DASK_TIMEOUT")
    try:
        value = float(text) if text else float(CONNECT_TIMEOUT)
    except ValueError:
        raise StudyError(f"EQUILENS_DASK_TIMEOUT must be seconds, got {text!r}") from None
    return value


@contextlib.contextmanager
def dask_client(scheduler: Optional[str]) -> Iterator[Optional[Any]]:
    """A ``dask.distributed.Client`` for ``scheduler`` (``local:N`` or a
    scheduler address), closed at the end; ``None`` for no scheduler."""
    if scheduler is None:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise StudyError("--scheduler needs Dask: pip install 'equilens[cluster]'") from None
    local = re.fullmatch(r"local:(\d+)", scheduler)
    if local:
        workers = int(local.group(1))
        if workers < 1:
            raise StudyError(f"--scheduler {scheduler}: at least one worker")
        import dask

        # one thread per worker for every library (torch, BLAS, featomic's
        # rayon pool), and no statistical profiler sampling the workers.
        # Dask's nanny would also set MALLOC_TRIM_THRESHOLD_=65536 (its
        # pre-spawn-environ), which turns off glibc's dynamic mmap threshold:
        # every training step's tensors are then mapped and unmapped afresh,
        # and a BPNN of the default study trains 1.4x slower (0.083 -> 0.118 s
        # per epoch, docs/benchmarks.md); the workers get the thread limits only
        single = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                         "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")}  # fmt: skip
        # and no task queued on a busy worker (Dask's default saturation, 1.1,
        # sends each single-threaded worker a second task ahead): a worker
        # takes its next task when it is free, the one of highest priority
        # then (the sweep's costliest runs first, docs/benchmarks.md)
        settings = {
            "distributed.worker.profile.enabled": False,
            "distributed.nanny.pre-spawn-environ": single,
            "distributed.scheduler.worker-saturation": 1.0,
        }
        with dask.config.set(settings):
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env=single,
            )
        with cluster, Client(cluster) as client:
            yield client
        return
    if not re.fullmatch(r"(tcp|tls|inproc|ucx)://\S+", scheduler):
        raise StudyError(f"--scheduler must be local:N or tcp://HOST:PORT, got {scheduler!r}")
    timeout = connect_timeout()
    try:
        client = Client(scheduler, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise StudyError(
            f"--scheduler {scheduler}: no Dask scheduler answered within {timeout:g} s "
            f"({reason}); nothing was trained"
        ) from None
    with client:
        yield client


def single_threaded(function, *args, **kwargs):
    """``function(*args, **kwargs)`` with torch on one thread, as a worker
    of a local cluster runs (one thread per worker, one worker per core)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return function(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def joblib_backend(client: Optional[Any]) -> Iterator[None]:
    """Where joblib's parallel work runs inside the block (the scorecard's
    sets, LFRE's tasks): the Dask cluster's workers when there is a
    ``client``, else joblib's worker processes on this machine."""
    if client is None:
        yield
        return
    import joblib

    with joblib.parallel_config(backend="dask"):
        yield
