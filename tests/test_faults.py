"""Faults: ``train``, ``generate``, ``study`` (with an external model),
``export`` and ``relax`` killed with SIGKILL at seeded random moments (training
twice, so that a resumed run is killed again; the others once); the rerun
finishes with the result of an uninterrupted run and leaves no temporary file
behind."""

import json
import os
import signal
import subprocess
import sys
import time

import ase.io
import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

KILLS = 2


def _command(args, cwd):
    return [sys.executable, "-m", "equilens.cli", *args], cwd


def _run(args, cwd, timeout=600):
    result = subprocess.run(
        [sys.executable, "-m", "equilens.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _killed_then_finished(args, cwd, duration, seed, kills=KILLS):
    """Start ``args`` ``kills`` times, SIGKILL each at a random moment within
    the uninterrupted ``duration``, then run it to the end."""
    rng = np.random.default_rng(seed)
    for _ in range(kills):
        process = subprocess.Popen(
            [sys.executable, "-m", "equilens.cli", *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.25, 0.9) * duration)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    _run(args, cwd)


def _timed(args, cwd):
    start = time.perf_counter()
    _run(args, cwd)
    return time.perf_counter() - start


def _no_temporaries(folder):
    stray = [str(p) for p in folder.rglob("*.tmp")]
    assert not stray, stray


def _both(tmp_path, name):
    a, b = tmp_path / f"{name}-straight", tmp_path / f"{name}-killed"
    a.mkdir()
    b.mkdir()
    return a, b


def _train_yaml(folder, lj_files):
    config = {
        "task": "potential",
        "name": "faults",
        "data": {"train": str(lj_files["train"]), "validation": str(lj_files["validation"])},
        "descriptor": {"preset": "small", "species": [1, 8, 26]},
        "compression": {"n_components": 12},
        "model": {"hidden": [8]},
        "training": {"epochs": 18, "batch_size": 4, "checkpoint_every": 3, "dtype": "float64"},
        "output_dir": "out",
        "cache_dir": "cache",
    }
    (folder / "train.yaml").write_text(yaml.safe_dump(config))
    return ["train", "train.yaml", "--no-progress"]


def test_killed_training_resumes_to_the_same_model(tmp_path, lj_files):
    import torch

    from equilens.models import load

    straight, killed = _both(tmp_path, "train")
    args = _train_yaml(straight, lj_files)
    _train_yaml(killed, lj_files)
    duration = _timed(args, straight)
    _killed_then_finished(args, killed, duration, seed=1)
    a, b = load(straight / "out" / "model.pt"), load(killed / "out" / "model.pt")
    for key, value in a.module.state_dict().items():
        assert torch.equal(value, b.module.state_dict()[key]), key
    _no_temporaries(killed)


def test_killed_generator_resumes_to_the_same_frames(tmp_path):
    pytest.importorskip("tblite", reason="tblite not installed (pip install equilens[xtb])")
    straight, killed = _both(tmp_path, "generate")
    config = dict(size=[2, 1, 2], n_water=1, starts=2, steps=6, warmup=0, stride=2, vacuum=5.0)
    for folder in (straight, killed):
        (folder / "gen.yaml").write_text(yaml.safe_dump(config))
    args = ["generate", "iron-water", "--config", "gen.yaml", "--output", "x.extxyz", "--quiet"]
    duration = _timed(args, straight)
    _killed_then_finished(args, killed, duration, seed=2, kills=1)
    a, b = ase.io.read(straight / "x.extxyz", ":"), ase.io.read(killed / "x.extxyz", ":")
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.positions, y.positions, atol=1e-7)
        # a resumed run starts the SCF of its first frame from a fresh guess: the
        # energy agrees to the SCF convergence (tblite: 1e-6 Eh), not to the last bit
        assert x.get_potential_energy() == pytest.approx(y.get_potential_energy(), abs=1e-5)
    _no_temporaries(killed)


def test_killed_study_finishes_with_the_same_scorecard(tmp_path, make_potential):
    straight, killed = _both(tmp_path, "study")
    external = make_potential(8, (6,), seed=7).save(tmp_path / "external.pt")
    config = {
        "models": [str(external)],
        "name": "faults",
        "read": {"index": "0:16", "require_forces": True},
        "compression": {"n_components": 8},
        "training": {"epochs": 6, "checkpoint_every": 2},
        "sweep": [{"name": "a", "model": {"hidden": [6]}}],
        "seeds": [0],
        "analysis_frames": 6,
        "autoencoder_epochs": 20,
        "max_samples": 300,
    }
    for folder in (straight, killed):
        (folder / "study.yaml").write_text(yaml.safe_dump(config))
    args = ["study", "study.yaml", "--quiet"]
    duration = _timed(args, straight)
    _killed_then_finished(args, killed, duration, seed=3, kills=1)
    for name in ("scorecard.csv", "scorecard_seeds.csv"):
        a = (straight / "results" / "faults" / name).read_text()
        assert a == (killed / "results" / "faults" / name).read_text(), name
    _no_temporaries(killed)


def test_killed_export_writes_the_same_file(tmp_path, make_potential):
    from equilens.data.examples import iron_water_example

    straight, killed = _both(tmp_path, "export")
    model = make_potential(10, (6,), seed=5).save(tmp_path / "model.pt")
    ase.io.write(tmp_path / "frames.extxyz", iron_water_example(n_frames=6, seed=3))
    args = ["export", str(model), str(tmp_path / "frames.extxyz"), "--output", "x.json.gz"]
    args += ["--projections", "pca", "pcovr", "--html"]
    duration = _timed(args, straight)
    _killed_then_finished(args, killed, duration, seed=4, kills=1)
    for name in ("x.json.gz", "x.html"):
        assert (straight / name).read_bytes() == (killed / name).read_bytes(), name
    _no_temporaries(killed)


def test_killed_relax_finishes_with_the_same_relaxations(tmp_path, make_potential):
    from ase.calculators.singlepoint import SinglePointCalculator

    from equilens.data.examples import iron_water_example

    straight, killed = _both(tmp_path, "relax")
    model = make_potential(8, (6,), seed=5).save(tmp_path / "model.pt")
    minima = iron_water_example(n_frames=2, seed=3)
    for atoms in minima:
        atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((len(atoms), 3)))
    ase.io.write(tmp_path / "minima.extxyz", minima)
    config = {
        "minima": str(tmp_path / "minima.extxyz"),
        "calculators": {"bpnn": str(model)},
        "rattle": {"copies": 3, "amplitude": 0.05},
        "optimizer": {"fmax": 0.05, "steps": 15},
        "output_dir": "out",
    }
    for folder in (straight, killed):
        (folder / "relax.yaml").write_text(yaml.safe_dump(config))
    args = ["relax", "relax.yaml", "--no-progress"]
    duration = _timed(args, straight)
    _killed_then_finished(args, killed, duration, seed=5, kills=1)

    def relaxed(folder):
        rows = [json.loads(line) for line in (folder / "out" / "relaxations.jsonl").open()]
        return {row["key"]: row["positions"] for row in rows}

    a, b = relaxed(straight), relaxed(killed)
    assert a.keys() == b.keys() and len(a) == 6
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-9, err_msg=key)
    _no_temporaries(killed)
