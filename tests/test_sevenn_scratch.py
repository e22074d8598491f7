"""Training a NequIP-type model from scratch through sevenn's own trainer
(``task: sevenn`` with ``base_model: null``).

The frames are small Cu/Al cells of varied composition labelled by EMT. The
run is interrupted and resumed, its baseline is the composition model, the
trained model opens through the SevenNet adapter and keeps the model
contract (its hidden layer carries lambda = 1 blocks), and configurations
that cannot work are refused in one line before sevenn starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

pytest.importorskip("sevenn")

from equilens.config import from_mapping  # noqa: E402
from equilens.errors import ConfigError  # noqa: E402
from equilens.models import load  # noqa: E402
from equilens.models.registry import check_finetune  # noqa: E402
from equilens.models.sevenn.config import SevennConfig  # noqa: E402
from equilens.models.sevenn.task import train_sevenn  # noqa: E402
from equilens.testing import check_model  # noqa: E402

MODEL = {"channel": 4, "lmax": 1, "num_convolution_layer": 2, "weight_nn_hidden_neurons": [8]}


def _frames(n, aluminium=(1, 2, 3, 4), seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(n):
        atoms = bulk("Cu", "fcc", a=3.62, cubic=True).repeat((2, 1, 1))
        count = aluminium[index % len(aluminium)]
        atoms.numbers[rng.choice(len(atoms), count, replace=False)] = 13
        atoms.rattle(0.08, seed=seed * 100 + index)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def cual(tmp_path_factory):
    path = tmp_path_factory.mktemp("sevenn-scratch") / "cual.extxyz"
    ase.io.write(path, _frames(12))
    return path


def _config(path, output, **sections):
    mapping = {
        "task": "sevenn",
        "name": "cual",
        "data": {"train": str(path), "validation_fraction": 0.25, "test_fraction": 0.25},
        "base_model": None,
        "model": MODEL,
        "training": {"epochs": 2, "batch_size": 2, "checkpoint_every": 1, "loss": "mse"},
        "output_dir": str(output),
    }
    mapping.update(sections)
    return from_mapping(SevennConfig, mapping)


def test_from_scratch_resumes_and_keeps_the_contract(cual, tmp_path):
    config = _config(cual, tmp_path / "run")
    model, summary = train_sevenn(config, progress=False, stop_after=1)
    work = tmp_path / "run" / "sevenn"
    assert model is None and (work / "checkpoint_1.pth").is_file()
    assert not (work / "start.pth").exists()  # nothing to start from

    model, summary = train_sevenn(config, progress=False)  # resumes after epoch 1
    assert summary["epochs_run"] == 2 and summary["base_model"] is None
    assert len(list(work.glob("lc*.csv"))) == 2  # one learning curve per start
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(written["baselines"]) == {"composition"}
    composition = written["baselines"]["composition"]["train"]
    assert composition["energy_rmse_meV_per_atom"] > 0  # EMT is not a composition model
    assert np.isfinite(written["metrics"]["test"]["force_rmse_eV_per_A"])

    loaded = load(f"sevenn:{tmp_path / 'run' / 'model.pth'}")
    assert loaded.species == (13, 29)
    assert loaded.describe().hypers["model"]["channel"] == MODEL["channel"]
    hidden = loaded.layers(_frames(1, seed=5))["interaction_1"]
    assert sorted({int(x) for x in hidden.keys.column("o3_lambda")}) == [0, 1]
    # float32 layers: sevenn orders its sums by Python's string hashes, so a
    # fresh process reproduces the small (cancelling) lambda = 1 block of this
    # model to 2.4e-4 of its size under some PYTHONHASHSEED values, 1e-7 under
    # others; 1e-3 bounds that rounding, not a wrong block
    report = check_model(loaded, _frames(2, seed=7), atol=1e-3, force_atol=2e-2, fd_step=1e-2,
                         skip=["export"])  # fmt: skip
    ran = {name for name, result in report.items() if result == "ok"}
    assert {"rotation", "forces", "stress", "reload", "unknown element"} <= ran, report


def test_bad_scratch_configurations_are_refused(cual, tmp_path):
    with pytest.raises(ConfigError, match="set base_model: null"):
        _config(cual, tmp_path / "a", base_model="7net-0")
    with pytest.raises(ConfigError, match=r"model.channel: expected >= 1"):
        _config(cual, tmp_path / "b", model={"channel": 0})
    with pytest.raises(ConfigError, match=r"config.model: unknown key 'channels'"):
        _config(cual, tmp_path / "c", model={"channels": 4})
    with pytest.raises(ConfigError, match="base_model"):
        check_finetune(_config(cual, tmp_path / "d"))
    default = from_mapping(SevennConfig, {"data": {"train": str(cual)}, "base_model": None})
    assert default.model is not None and default.model.channel == 16

    copper_only = tmp_path / "cu.extxyz"
    ase.io.write(copper_only, _frames(8, aluminium=(0,)))
    with_al = tmp_path / "al.extxyz"
    ase.io.write(with_al, _frames(2))
    config = _config(copper_only, tmp_path / "e", data={"train": str(copper_only),
                     "validation": str(with_al)})  # fmt: skip
    with pytest.raises(ConfigError, match="data.validation: element Al is not in the training"):
        train_sevenn(config, progress=False)
    assert not (tmp_path / "e" / "sevenn").exists()


def test_several_processes_go_through_sevenns_own_distributed_training(cual, tmp_path):
    """``training.processes`` above 1 runs sevenn under torchrun with its own
    ``-d`` flag (NCCL, one GPU per process); refused in one line, before
    anything is claimed, on a machine with fewer GPUs."""
    import torch

    from equilens.models.sevenn.config import SevennTraining
    from equilens.models.sevenn.task import trainer_command

    one = trainer_command(SevennTraining(), Path("input.yaml"))
    assert one[1:] == ["-m", "sevenn.main.sevenn", "input.yaml", "-w", "."]
    with pytest.raises(ConfigError, match=r"training.processes: expected >= 1"):
        SevennTraining(processes=0)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus >= 2:
        two = trainer_command(SevennTraining(processes=2), Path("input.yaml"))
        assert two[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
        assert two[-3:] == ["-d", "--distributed_backend", "nccl"]
    config = _config(cual, tmp_path / "p", training={"epochs": 1, "processes": max(2, gpus + 1)})
    with pytest.raises(ConfigError, match=f"one CUDA GPU each; this machine has {gpus}"):
        train_sevenn(config, progress=False)
    assert not (tmp_path / "p").exists()
