"""Fine-tuning SevenNet-0 through sevenn's own trainer (``task: sevenn``).

The frames are small Cu cells labelled by SevenNet-0 itself, with every
energy moved by a known 4 eV per atom (another level of theory) and the
forces perturbed by EMT forces (something to learn): the refitted offset must
recover the shift, the starting checkpoint must reproduce the zero-shot model
plus that offset, an interrupted run resumes, and the result loads through
``equilens.models.load``.
"""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

pytest.importorskip("sevenn")

from equilens.config import from_mapping  # noqa: E402
from equilens.errors import ModelError  # noqa: E402
from equilens.models import energies_and_forces, load  # noqa: E402
from equilens.models.sevenn.config import SevennConfig  # noqa: E402
from equilens.models.sevenn.model import SevenNetModel  # noqa: E402
from equilens.models.sevenn.task import train_sevenn  # noqa: E402

SHIFT = 4.0  # eV per Cu atom


@pytest.fixture(scope="module")
def base():
    return SevenNetModel("7net-0")


@pytest.fixture(scope="module")
def copper(base, tmp_path_factory):
    rng = np.random.default_rng(3)
    frames = []
    for index in range(8):
        atoms = bulk("Cu", "fcc", a=3.62, cubic=True)
        atoms.set_cell(atoms.cell * (1 + 0.01 * rng.standard_normal()), scale_atoms=True)
        atoms.rattle(0.05, seed=index)
        frames.append(atoms)
    energies, forces = energies_and_forces(base.predict(frames))
    for atoms, energy, force in zip(frames, energies, forces):
        emt = atoms.copy()
        emt.calc = EMT()
        perturbed = force + 0.3 * emt.get_forces()
        atoms.calc = SinglePointCalculator(
            atoms, energy=energy + SHIFT * len(atoms), forces=perturbed
        )
    path = tmp_path_factory.mktemp("sevenn-data") / "cu.extxyz"
    ase.io.write(path, frames)
    return path


def _config(data, output, **training):
    return from_mapping(
        SevennConfig,
        {
            "task": "sevenn",
            "name": "cu",
            "data": {"train": str(data), "validation_fraction": 0.25, "test_fraction": 0.25},
            "base_model": "sevenn:7net-0",
            "training": {"epochs": 2, "batch_size": 2, "checkpoint_every": 1, **training},
            "output_dir": str(output),
        },
    )


def test_finetune_refits_offsets_resumes_and_loads(base, copper, tmp_path):
    config = _config(copper, tmp_path / "run", learning_rate=0.001)
    model, summary = train_sevenn(config, progress=False, stop_after=1)
    work = tmp_path / "run" / "sevenn"
    assert model is None and (work / "checkpoint_1.pth").is_file()
    assert not (tmp_path / "run" / "model.pth").exists()

    # the starting checkpoint is the base model plus the refitted offset
    start = SevenNetModel(str(work / "start.pth"))
    frames = ase.io.read(work / "train.extxyz", ":")
    e_start, f_start = energies_and_forces(start.predict(frames))
    e_base, f_base = energies_and_forces(base.predict(frames))
    n_atoms = np.array([len(a) for a in frames])
    np.testing.assert_allclose(e_start - e_base, SHIFT * n_atoms, atol=2e-3)
    np.testing.assert_allclose(np.concatenate(f_start), np.concatenate(f_base), atol=1e-5)

    model, summary = train_sevenn(config, progress=False)  # resumes after epoch 1
    assert [row["epoch"] for row in _history(tmp_path / "run")] == [1.0, 2.0]
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["energy_offsets_eV"] == summary["energy_offsets_eV"]
    assert len(list(work.glob("lc*.csv"))) == 2  # one learning curve per start
    assert summary["task"] == "sevenn" and summary["epochs_run"] == 2
    assert summary["energy_offsets_eV"]["29"] == pytest.approx(SHIFT, abs=1e-3)
    zero_shot = summary["baselines"]["zero_shot"]
    for split in ("train", "validation", "test"):
        assert zero_shot[split]["energy_rmse_meV_per_atom"] < 0.5
        assert np.isfinite(summary["metrics"][split]["force_rmse_eV_per_A"])
    assert zero_shot["train"]["force_rmse_eV_per_A"] > 0.01  # the EMT part to learn

    loaded = load(f"sevenn:{tmp_path / 'run' / 'model.pth'}")
    assert loaded.layer_names == base.layer_names
    trained = dict(loaded.model.named_parameters())
    changed = [
        name
        for name, value in base.model.named_parameters()
        if not np.allclose(value.detach().numpy(), trained[name].detach().numpy())
    ]
    assert changed, "fine-tuning changed no weight"
    e_loaded, _ = energies_and_forces(loaded.predict(frames))
    e_model, _ = energies_and_forces(model.predict(frames))
    np.testing.assert_allclose(e_loaded, e_model, rtol=1e-6)
    for name in ("log.csv", "learning_curve.png", "parity_test.png"):
        assert (tmp_path / "run" / name).is_file()


def _history(folder):
    lines = (folder / "log.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, map(float, line.split(",")))) for line in lines[1:]]


def test_unknown_element_is_named(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.62, cubic=True)
    atoms.numbers[0] = 100  # fermium: not among SevenNet-0's 89 elements
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((4, 3)))
    path = tmp_path / "fm.extxyz"
    ase.io.write(path, [atoms] * 4)
    with pytest.raises(ModelError, match="Fm"):
        train_sevenn(_config(path, tmp_path / "run"), progress=False)


def test_ase_calculator_stress_and_forces_are_derivatives(base):
    """The SevenNet ASE calculator (used for relaxations): forces and stress
    equal finite differences of its energy (float32 model: loose tolerances)."""
    atoms = bulk("Cu", "fcc", a=3.5, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=4)
    atoms.calc = base.calculator()
    stress, forces = atoms.get_stress(voigt=False), atoms.get_forces()

    def energy(cell_map=None, index=None, delta=0.0):
        moved = atoms.copy()
        if cell_map is not None:
            moved.set_cell(atoms.cell @ cell_map, scale_atoms=True)
        if index is not None:
            moved.positions[index] += delta
        moved.calc = base.calculator()
        return moved.get_potential_energy()

    step = 2e-3
    strain = np.eye(3)
    strain[0, 0] += step
    squeeze = np.eye(3)
    squeeze[0, 0] -= step
    numeric = (energy(strain) - energy(squeeze)) / (2 * step) / atoms.get_volume()
    assert numeric == pytest.approx(stress[0, 0], rel=0.05, abs=2e-3)
    numeric_force = -(energy(index=(1, 2), delta=2e-3) - energy(index=(1, 2), delta=-2e-3)) / 4e-3
    assert numeric_force == pytest.approx(forces[1, 2], rel=0.05, abs=0.02)
