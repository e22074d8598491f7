"""The relaxation benchmark (equilens relax) with ASE's EMT as model and
reference: rattled EMT minima relax back to them (known answer), parent
crystals relax to the minima's cells, finished relaxations are not redone."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from equilens.cli import main


@pytest.fixture(scope="module")
def structures(tmp_path_factory):
    """Two Cu/Ni fcc minima (EMT, positions and cell) and their parent crystals."""
    folder = tmp_path_factory.mktemp("relax")
    minima, parents = [], []
    for seed in range(2):
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))
        numbers = atoms.numbers.copy()
        numbers[np.random.default_rng(seed).permutation(len(atoms))[:4]] = 28  # Ni
        atoms.numbers = numbers
        parents.append(atoms.copy())
        atoms.calc = EMT()
        BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-4, steps=500)
        energy = atoms.get_potential_energy()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=atoms.get_forces())
        minima.append(atoms)
    ase.io.write(folder / "minima.extxyz", minima)
    ase.io.write(folder / "parents.extxyz", parents)
    return folder


def test_emt_relaxes_back_to_its_minima(structures, tmp_path, capsys):
    config = tmp_path / "relax.yaml"
    config.write_text(
        f"name: cuni\nminima: {structures / 'minima.extxyz'}\n"
        f"parents: {structures / 'parents.extxyz'}\n"
        "calculators: {EMT: emt}\nreference: emt\n"
        "rattle: {amplitude: 0.05, copies: 2, seed: 1}\n"
        "optimizer: {fmax: 0.001, steps: 500}\n"
        f"output_dir: {tmp_path / 'out'}\n"
    )
    assert main(["relax", str(config), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    inside = summary["EMT"]["in distribution"]
    assert inside["relaxations"] == 4 and inside["converged_fraction"] == 1.0
    assert inside["rmsd_p90_A"] < 1e-3
    assert abs(inside["energy_above_minimum_median_meV_per_atom"]) < 0.01
    outside = summary["EMT"]["out of distribution"]
    assert outside["relaxations"] == 2 and outside["converged_fraction"] == 1.0
    assert abs(outside["volume_change_median_percent"]) < 0.1  # the cell relaxes too
    assert outside["energy_above_minimum_median_meV_per_atom"] > -0.01
    for name in ("relaxation.png", "relaxed.json.gz", "relaxed.extxyz", "relaxations.csv"):
        assert (tmp_path / "out" / name).is_file()
    lines = (tmp_path / "out" / "relaxations.jsonl").read_text().splitlines()
    assert main(["relax", str(config), "--no-progress"]) == 0  # nothing redone
    assert (tmp_path / "out" / "relaxations.jsonl").read_text().splitlines() == lines
    # the device is not part of the run's identity: another one resumes it
    assert main(["relax", str(config), "--no-progress", "--device", "cpu"]) == 0
    assert (tmp_path / "out" / "relaxations.jsonl").read_text().splitlines() == lines
    from equilens.export.chemiscope import validate_chemiscope

    assert len(validate_chemiscope(tmp_path / "out" / "relaxed.json.gz")["structures"]) == 6


def test_bad_relax_configs_are_named(structures, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(
        f"minima: {structures / 'minima.extxyz'}\ncalculators: {{EMT: emt}}\nreference: nope\n"
        f"output_dir: {tmp_path / 'bad'}\n"
    )
    assert main(["relax", str(config)]) == 2
    assert "nope" in capsys.readouterr().err
    config.write_text(f"minima: {tmp_path / 'none.extxyz'}\ncalculators: {{EMT: emt}}\n")
    assert main(["relax", str(config)]) == 2
    assert "none.extxyz" in capsys.readouterr().err
    config.write_text(
        f"minima: {structures / 'minima.extxyz'}\ncalculators: {{EMT: emt}}\ndevice: gpu\n"
        f"output_dir: {tmp_path / 'bad'}\n"
    )
    assert main(["relax", str(config)]) == 2
    assert "device must be auto, cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["relax", str(config), "--device", "cuda"]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and "torch sees no CUDA GPU" in error[0]
    assert not (tmp_path / "bad").exists()  # refused before anything was claimed


def _write_config(path, structures, output, **sections):
    text = (
        f"name: cuni\nminima: {structures / 'minima.extxyz'}\ncalculators: {{EMT: emt}}\n"
        "rattle: {amplitude: 0.05, copies: 1, seed: 1}\n"
        f"optimizer: {sections.get('optimizer', '{fmax: 0.01, steps: 50}')}\n"
        f"output_dir: {output}\n"
    )
    path.write_text(text)
    return path


def test_damaged_records_are_redone_or_named(structures, tmp_path, capsys):
    """A last record cut short by an interruption is redone; a record with
    NaN in the middle is named with its line; nothing ends in 'median nan'."""
    config = _write_config(tmp_path / "r.yaml", structures, tmp_path / "out")
    assert main(["relax", str(config), "--no-progress"]) == 0
    records = tmp_path / "out" / "relaxations.jsonl"
    lines = records.read_text().splitlines()
    assert len(lines) == 2
    records.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # killed mid-write
    with pytest.warns(UserWarning, match="line 2 was cut short"):
        assert main(["relax", str(config), "--no-progress"]) == 0
    again = records.read_text().splitlines()
    assert len(again) == 2 and json.loads(again[1])["key"] == json.loads(lines[1])["key"]

    row = json.loads(again[0])
    row["rmsd_A"] = float("nan")
    records.write_text(json.dumps(row) + "\n" + again[1] + "\n")
    capsys.readouterr()
    assert main(["relax", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "relaxations.jsonl" in err and "line 1" in err


def test_a_calculator_returning_nan_is_named(structures, tmp_path, capsys, monkeypatch):
    from ase.calculators.calculator import Calculator, all_changes

    class Broken(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results = {"energy": float("nan"), "forces": np.full((len(atoms), 3), np.nan)}

    monkeypatch.setattr("equilens.relax.run.make_calculator", lambda *args: Broken())
    config = _write_config(tmp_path / "r.yaml", structures, tmp_path / "out")
    assert main(["relax", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "calculators.EMT" in err and "non-finite" in err
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize(
    "optimizer, message",
    [("{fmax: -0.05}", "optimizer.fmax"), ("{fmax: .nan}", "optimizer.fmax"),
     ("{steps: 0}", "optimizer.steps")],
)  # fmt: skip
def test_optimizer_limits_are_checked(structures, tmp_path, capsys, optimizer, message):
    config = _write_config(tmp_path / "r.yaml", structures, tmp_path / "out", optimizer=optimizer)
    assert main(["relax", str(config), "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_an_equilens_potential_and_its_metatomic_export_side_by_side(make_potential, tmp_path):
    """Both documented calculator kinds in one relax config: featomic's
    TorchScript library is registered once (it aborted the process before)
    and the export relaxes like the native model."""
    from equilens.data.examples import iron_water_example

    model = make_potential(8, (8,), seed=3).save(tmp_path / "model.pt")
    exported = tmp_path / "exported" / "model.pt"
    assert main(["export-metatomic", str(model), str(exported)]) == 0
    minimum = iron_water_example(n_frames=1, seed=3)[0]
    minimum.calc = SinglePointCalculator(minimum, energy=0.0, forces=np.zeros((len(minimum), 3)))
    ase.io.write(tmp_path / "minima.extxyz", minimum)
    config = tmp_path / "r.yaml"
    config.write_text(
        f"minima: {tmp_path / 'minima.extxyz'}\n"
        f"calculators: {{native: {model}, exported: {exported}}}\n"
        f"rattle: {{copies: 1}}\noptimizer: {{steps: 3}}\noutput_dir: {tmp_path / 'out'}\n"
    )
    import subprocess
    import sys

    # a fresh process: the library registration is per process
    done = subprocess.run([sys.executable, "-m", "equilens.cli", "relax", str(config),
                           "--no-progress", "--device", "auto"], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "out" / "relaxations.jsonl").open()]
    native, export = (next(r for r in rows if r["calculator"] == n) for n in ("native", "exported"))
    np.testing.assert_allclose(export["positions"], native["positions"], atol=1e-6)


def test_a_calculator_without_the_elements_is_named_before_any_relaxation(tmp_path, capsys):
    from equilens.data.examples import iron_water_example

    minimum = iron_water_example(n_frames=1, seed=3)[0]  # H, O, Fe: EMT has no Fe
    minimum.calc = SinglePointCalculator(minimum, energy=0.0, forces=np.zeros((len(minimum), 3)))
    ase.io.write(tmp_path / "minima.extxyz", minimum)
    config = tmp_path / "r.yaml"
    config.write_text(
        f"minima: {tmp_path / 'minima.extxyz'}\ncalculators: {{a: xtb, b: emt}}\n"
        f"output_dir: {tmp_path / 'out'}\n"
    )
    assert main(["relax", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "calculators.b: emt has no parameters for Fe" in err
    assert not (tmp_path / "out").exists()  # nothing claimed: the corrected config may run
