"""Data-parallel training under torchrun (gloo, 2 CPU processes) and devices."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from equilens.devices import resolve_device
from equilens.errors import ConfigError

pytestmark = pytest.mark.slow


def _write_config(lj_files, tmp_path, **training):
    config = {
        "task": "potential",
        "name": "lj",
        "data": {"train": str(lj_files["train"]), "validation": str(lj_files["validation"])},
        "descriptor": {"preset": "small", "species": [1, 8, 26]},
        "compression": {"n_components": 12},
        "model": {"hidden": [8]},
        "training": {"epochs": 3, "batch_size": 6, "learning_rate": 0.01, "dtype": "float64",
                     "scheduler": "none", **training},
        "cache_dir": str(tmp_path / "cache"),
    }  # fmt: skip
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(arguments, processes=1):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    launcher = [sys.executable, "-m"]
    if processes > 1:
        launcher += ["torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        launcher += ["-m"]
    command = launcher + ["equilens", *arguments, "--no-progress", "--device", "cpu"]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)


def _validation_losses(folder):
    lines = (folder / "log.csv").read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("validation_loss")
    return np.array([float(line.split(",")[column]) for line in lines[1:]])


def test_two_processes_train_like_one(lj_files, tmp_path):
    config = _write_config(lj_files, tmp_path)
    one = _run(["train", str(config), "--output", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr[-2000:]
    two = _run(["train", str(config), "--output", str(tmp_path / "two")], processes=2)
    assert two.returncode == 0, two.stderr[-2000:]
    # rank 0 alone prints the result and writes the outputs
    assert two.stdout.count("best epoch") == 1
    single, double = _validation_losses(tmp_path / "one"), _validation_losses(tmp_path / "two")
    assert len(single) == len(double) == 3
    assert single[-1] < single[0]  # it trained
    np.testing.assert_allclose(double, single, rtol=1e-9)
    summary = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert summary["world_size"] == 2 and sum(summary["frames_per_rank"]) == 24
    assert summary["frames_per_rank"] == [12, 12]
    single_summary = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert single_summary["world_size"] == 1
    # the training metrics gathered from both ranks' shards are those of all frames
    for key, value in single_summary["metrics"]["train"].items():
        assert summary["metrics"]["train"][key] == pytest.approx(value, rel=1e-6, abs=1e-9)
    # each rank featurized its own frames: the full training set (one process),
    # the validation set (shared), and the two shards
    assert len(list((tmp_path / "cache" / "features").glob("features-*/index.json"))) == 4
    # one set of outputs: a checkpoint, a model, no partial files
    assert sorted(p.name for p in (tmp_path / "two").glob("*.pt")) == ["checkpoint.pt", "model.pt"]


def test_more_processes_than_frames_is_refused(lj_files, tmp_path):
    import ase.io

    frames = ase.io.read(lj_files["train"], ":2")
    ase.io.write(tmp_path / "two.extxyz", frames)
    config = _write_config(lj_files, tmp_path)
    mapping = yaml.safe_load(config.read_text())
    mapping["data"]["train"] = str(tmp_path / "two.extxyz")
    config.write_text(yaml.safe_dump(mapping))
    result = _run(["train", str(config), "--output", str(tmp_path / "out")], processes=3)
    assert result.returncode != 0
    assert "torchrun started 3 processes for 2 training frames" in result.stderr


def test_devices_are_resolved_or_refused_in_one_line():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="device must be auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
        with pytest.raises(ConfigError, match="CUDA GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ConfigError, match="torch sees no CUDA GPU"):
            resolve_device("cuda")


def test_device_option_on_the_command_line(lj_files, tmp_path, capsys):
    from equilens.cli import main

    config = _write_config(lj_files, tmp_path, epochs=1)
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is not what runs")
    assert main(["train", str(config), "--device", "cuda", "--output", str(tmp_path / "x")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "torch sees no CUDA GPU" in error[0]
    assert not (tmp_path / "x").exists()  # nothing trained, no folder claimed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_training_matches_cpu(lj_files, tmp_path):
    config = _write_config(lj_files, tmp_path)
    for device in ("cpu", "cuda"):
        command = [sys.executable, "-m", "equilens", "train", str(config), "--no-progress"]
        command += ["--device", device, "--output", str(tmp_path / device)]
        subprocess.run(command, check=True, timeout=600)
    cpu, cuda = _validation_losses(tmp_path / "cpu"), _validation_losses(tmp_path / "cuda")
    np.testing.assert_allclose(cuda, cpu, rtol=1e-6)
    assert json.loads((tmp_path / "cuda" / "metrics.json").read_text())["device"] == "cuda:0"


def test_auto_keeps_a_cpu_only_model_on_the_cpu(monkeypatch):
    """With ``auto`` on a GPU machine, a model that computes on the CPU only
    stays there; naming the GPU is refused in one line."""
    from equilens.devices import model_on_device
    from equilens.errors import ModelError
    from equilens.models.base import Model

    class CpuOnly(Model):
        kind = "test.cpu-only"
        layer_names = ["x"]
        species = (1,)
        outputs = ("energy",)

        def layers(self, frames, batch_size=50):
            return {}

        def predict(self, frames, outputs=None, batch_size=8):
            return {}

    model = CpuOnly()
    assert model_on_device(model, "cpu") is model and model.device.type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert model_on_device(model, "auto") is model and model.device.type == "cpu"
    with pytest.raises(ModelError, match="compute on the CPU only"):
        model_on_device(model, "cuda")
