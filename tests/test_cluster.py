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


def test_a_study_on_a_local_cluster_equals_one_process(tmp_path):
    # two entries and one seed: two runs, one per worker
    alone = run_study(_tiny(tmp_path / "one", seeds=[0]), progress=False)
    started = time.perf_counter()
    spread = run_study(_tiny(tmp_path / "two", seeds=[0]), progress=False, scheduler="local:2")
    assert time.perf_counter() - started < 600
    for run in ("a/seed0", "b/seed0"):
        one = load(alone / "models" / run / "model.pt").module.state_dict()
        two = load(spread / "models" / run / "model.pt").module.state_dict()
        assert one.keys() == two.keys()
        # the same seeded runs: the same weights, bit for bit
        assert all(torch.equal(two[name], tensor) for name, tensor in one.items())
    # and so the same scorecard, computed here from the same models
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
