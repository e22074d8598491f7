"""``task: mace``: a MACE model trained from scratch by mace-torch's own
trainer, in the MACE environment (``tests/test_mace.py`` runs this module
there). Small Cu/Al cells labelled by EMT; the run is interrupted and
resumed, measured against the composition model, opened through the MACE
adapter, and keeps the model contract (its hidden layers carry lambda = 1)."""

from __future__ import annotations

import json

import ase.io
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from equilens.config import from_mapping
from equilens.models import load
from equilens.models.mace.config import MaceConfig
from equilens.models.mace.task import learning_curve, train_mace
from equilens.testing import check_model

MODEL = {"r_max": 4.0, "num_channels": 4, "max_L": 1, "max_ell": 1, "correlation": 2,
         "num_interactions": 2, "num_radial_basis": 4}  # fmt: skip


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(n):
        atoms = bulk("Cu", "fcc", a=3.62, cubic=True).repeat((2, 1, 1))
        atoms.numbers[rng.choice(len(atoms), 1 + index % 4, replace=False)] = 13
        atoms.rattle(0.08, seed=seed * 100 + index)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    return frames


def test_mace_from_scratch_resumes_and_keeps_the_contract(tmp_path):
    ase.io.write(tmp_path / "cual.extxyz", _frames(12))
    config = from_mapping(
        MaceConfig,
        {
            "task": "mace",
            "name": "cual",
            "data": {"train": str(tmp_path / "cual.extxyz"), "validation_fraction": 0.25,
                     "test_fraction": 0.25},
            "model": MODEL,
            "training": {"epochs": 2, "batch_size": 2, "learning_rate": 0.01},
            "output_dir": str(tmp_path / "run"),
        },
    )  # fmt: skip
    assert train_mace(config, progress=False, stop_after=1) == (None, {})
    work = tmp_path / "run" / "mace"
    assert len(learning_curve(work)) == 1 and any(work.glob("checkpoints/*"))

    model, summary = train_mace(config, progress=False)  # resumes from mace's checkpoint
    starts = (work / "mace.out").read_text().split("LOADING INPUT DATA")
    assert len(starts) == 3 and "Loading checkpoint" in starts[2].split("Epoch")[0]
    assert [row["epoch"] for row in learning_curve(work)] == [0, 1]
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["task"] == "mace" and set(written["baselines"]) == {"composition"}
    test = written["metrics"]["test"]
    baseline = written["baselines"]["composition"]["test"]
    assert np.isfinite(test["force_rmse_eV_per_A"])
    assert test["force_rmse_eV_per_A"] != baseline["force_rmse_eV_per_A"]  # it learned something

    loaded = load(f"mace:{tmp_path / 'run' / 'model.model'}")
    assert loaded.species == (13, 29)
    lambdas = {int(x) for t in loaded.layers(_frames(1, seed=5)).values()
               if "o3_lambda" in t.keys.names for x in t.keys.column("o3_lambda")}  # fmt: skip
    assert lambdas == {0, 1}
    report = check_model(loaded, _frames(2, seed=7), atol=1e-6, force_atol=1e-3, fd_step=1e-3,
                         skip=["export"])  # fmt: skip
    ran = {name for name, result in report.items() if result == "ok"}
    # the MACE adapter's calculator gives energies and forces, no stress
    assert {"rotation", "inversion", "forces", "reload", "unknown element"} <= ran, report
