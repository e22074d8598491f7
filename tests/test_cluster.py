"""The study's sweep as Dask tasks: same models and scorecard as in one process."""

import csv
import time

import pytest
import torch
from test_study import _tiny

from equilens.models import load
from equilens.study import StudyError, run_study

pytestmark = pytest.mark.slow
pytest.importorskip("dask.distributed", reason="the cluster extra is not installed")


def _scorecard(folder):
    return {row["feature_set"]: row for row in csv.DictReader(open(folder / "scorecard.csv"))}


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The two-run study (two entries, one seed) in one process."""
    folder = tmp_path_factory.mktemp("one")
    return run_study(_tiny(folder, seeds=[0], training=TRAINING), progress=False)


#: long enough for a worker to be killed in the middle of a run
TRAINING = {"epochs": 12, "learning_rate": 0.001, "scheduler": "cosine"}


def _same_models(alone, other) -> None:
    for run in ("a/seed0", "b/seed0"):
        one = load(alone / "models" / run / "model.pt").module.state_dict()
        two = load(other / "models" / run / "model.pt").module.state_dict()
        assert one.keys() == two.keys()
        # the same seeded runs: the same weights, bit for bit
        assert all(torch.equal(two[name], tensor) for name, tensor in one.items()), run


def test_a_study_on_a_local_cluster_equals_one_process(alone, tmp_path):
    # two entries and one seed: two runs, one per worker
    started = time.perf_counter()
    config = _tiny(tmp_path / "two", seeds=[0], training=TRAINING)
    spread = run_study(config, progress=False, scheduler="local:2")
    assert time.perf_counter() - started < 600
    _same_models(alone, spread)
    # and so the same scorecard, computed here from the same models
    assert _scorecard(alone) == _scorecard(spread)


def test_a_killed_worker_is_retried_and_the_study_is_unchanged(alone, tmp_path):
    """A worker killed (SIGKILL) in the middle of a run: Dask reruns its task
    on a worker the nanny restarts, the run resumes from what it had written,
    and the models are still the one-process models bit for bit."""
    import os
    import signal
    import threading

    from dask.distributed import Client, LocalCluster

    single = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")}  # fmt: skip
    killed = {}

    def kill_a_busy_worker(client, pids, stop):
        deadline = time.monotonic() + 300
        while not stop.is_set() and time.monotonic() < deadline:
            busy = [address for address, keys in client.processing().items() if keys]
            if busy and busy[0] in pids:
                time.sleep(1.0)  # into the run: features cached, training started
                if client.processing().get(busy[0]):
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed["pid"] = pids[busy[0]]
                    return
            time.sleep(0.05)

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=single
    )
    with cluster, Client(cluster) as client:
        pids = client.run(os.getpid)
        stop = threading.Event()
        killer = threading.Thread(target=kill_a_busy_worker, args=(client, pids, stop))
        killer.start()
        try:
            config = _tiny(tmp_path / "killed", seeds=[0], training=TRAINING)
            spread = run_study(config, progress=False, scheduler=cluster.scheduler_address)
        finally:
            stop.set()
            killer.join()
    assert "pid" in killed, "no run was in progress long enough to kill its worker"
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)  # that worker is gone: the run was finished by another
    _same_models(alone, spread)
    assert _scorecard(alone) == _scorecard(spread)


def test_a_scheduler_that_does_not_answer_is_refused_before_training(tmp_path, monkeypatch):
    config = _tiny(tmp_path)
    monkeypatch.setenv("EQUILENS_DASK_TIMEOUT", "1.5")  # the default waits 10 s
    started = time.perf_counter()
    with pytest.raises(StudyError, match="no Dask scheduler answered within 1.5 s"):
        run_study(config, progress=False, scheduler="tcp://127.0.0.1:9")
    assert time.perf_counter() - started < 60
    assert not (tmp_path / "results").exists()  # nothing trained, no folder claimed
    with pytest.raises(StudyError, match="must be local:N or tcp://HOST:PORT"):
        run_study(config, progress=False, scheduler="slurm")


def test_latent_chunks_on_a_local_cluster_equal_one_process(make_potential, tmp_path):
    """`equilens latents --chunk-frames N --scheduler local:2`: the chunks
    are evaluated and written by the workers, with this process's values
    bit for bit."""
    import ase.io
    import numpy as np
    from test_streaming import _chunk_values

    from equilens.cli import main
    from equilens.data.examples import iron_water_example

    make_potential(8, (6, 5), seed=3).save(tmp_path / "model.pt")
    ase.io.write(tmp_path / "frames.extxyz", iron_water_example(n_frames=8, seed=6))
    command = ["latents", str(tmp_path / "model.pt"), str(tmp_path / "frames.extxyz"),
               "--chunk-frames", "3"]  # fmt: skip
    assert main(command + ["--output", str(tmp_path / "one")]) == 0
    assert main(command + ["--output", str(tmp_path / "two"), "--scheduler", "local:2"]) == 0
    one, two = _chunk_values(tmp_path / "one"), _chunk_values(tmp_path / "two")
    assert one.keys() == two.keys() and len(one) > 3
    assert all(np.array_equal(two[key], values) for key, values in one.items())


def test_lfre_on_a_local_cluster_equals_one_process():
    """`equilens compare --scheduler`: LFRE's tasks on a Dask cluster's
    workers (joblib's Dask backend) give the values of one process; GFRE's
    and GFRD's (a task per source, one BLAS thread) agree to round-off."""
    import numpy as np
    from dask.distributed import Client, LocalCluster

    from equilens.analysis.compare import compare
    from equilens.study.cluster import joblib_backend

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 7))
    data = {"x": x, "noise": rng.normal(size=(300, 5)), "linear": x @ rng.normal(size=(7, 3))}
    options = dict(measures=("gfre", "gfrd", "lfre"), lfre_samples=200, lfre_neighbors=30)
    one = compare(data, n_jobs=1, **options)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)  # fmt: skip
    with cluster, Client(cluster) as client, joblib_backend(client):
        two = compare(data, n_jobs=2, **options)
    assert np.array_equal(one.matrices["lfre"], two.matrices["lfre"])
    for measure in ("gfre", "gfrd"):
        np.testing.assert_allclose(one.matrices[measure], two.matrices[measure], atol=1e-8)


def test_local_workers_run_one_thread_without_dasks_malloc_trim(monkeypatch):
    """A local cluster's workers get one thread per library and not the
    ``MALLOC_TRIM_THRESHOLD_`` of Dask's nanny (it makes training 1.4x
    slower), whatever this process's environment has; its scheduler sends a
    worker no task ahead of the one it runs (saturation 1, not Dask's 1.1),
    so that a free worker takes the queued run of highest priority."""
    import os

    from equilens.study.cluster import dask_client

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    names = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "RAYON_NUM_THREADS")
    with dask_client("local:1") as client:
        seen = client.run(lambda: {name: os.environ.get(name) for name in names})
        saturation = client.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.WORKER_SATURATION
        )
    assert saturation == 1.0
    (environment,) = seen.values()
    assert environment == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1",
                           "RAYON_NUM_THREADS": "1"}  # fmt: skip
