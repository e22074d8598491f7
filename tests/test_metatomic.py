"""Potentials as metatomic models: the torch module agrees with the potential,
the ASE calculator's forces and stress are derivatives of its energy, and the
exported file gives the same numbers in a fresh process through metatomic-ase
and feeds chemiscope's featurizer."""

import json
import subprocess
import sys

import ase
import ase.io
import numpy as np
import pytest
import torch
from ase.build import molecule

from equilens.data.examples import iron_water_example


@pytest.fixture(scope="module")
def potential(make_potential):
    """An untrained float64 potential with non-trivial weights, H/O/Fe."""
    model = make_potential(16, (12, 8), seed=2, bottleneck=4, activation="tanh")
    model.module.double()
    model.module.scale.fill_(0.8)
    model.module.baseline.copy_(torch.tensor([-0.5, -1.5, -2.5], dtype=torch.float64))
    return model


@pytest.fixture(scope="module")
def structures():
    slab = iron_water_example(n_frames=1, seed=11, rattle=0.05)[0]
    water = molecule("H2O")
    water.positions += 0.1
    return {"slab": slab, "water": water}


def test_module_agrees_with_the_potential(potential, structures):
    """Two independent implementations: featomic-torch + autograd in the
    module, precomputed projected gradients in the potential."""
    for atoms in structures.values():
        energies, forces = potential.energies_and_forces([atoms])
        atoms = atoms.copy()
        atoms.calc = potential.calculator()
        assert atoms.get_potential_energy() == pytest.approx(energies[0], rel=1e-10, abs=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), forces[0], atol=1e-8)
        np.testing.assert_allclose(atoms.get_potential_energies().sum(), energies[0], rtol=1e-12)
        layers = potential.layers([atoms])
        from metatomic.torch import ModelOutput

        from equilens.models.calculator import atoms_to_system

        module = potential.torch_module()
        system = atoms_to_system(atoms, module, torch.float64)
        out = module([system], {"feature/hidden_1": ModelOutput(sample_kind="atom")}, None)
        values = out["feature/hidden_1"].block().values.detach().numpy()
        native = np.concatenate([b.values for b in layers["hidden_1"].blocks()])
        order = np.concatenate([b.samples.column("atom") for b in layers["hidden_1"].blocks()])
        np.testing.assert_allclose(values[order], native, atol=1e-6)


def test_forces_and_stress_are_derivatives_of_the_energy(potential, structures):
    atoms = structures["slab"].copy()
    atoms.calc = potential.calculator()
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=False)
    h = 1e-5
    for i, c in [(0, 0), (5, 2), (20, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, c] += h
        minus.positions[i, c] -= h
        plus.calc = minus.calc = potential.calculator()
        numeric = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        assert numeric == pytest.approx(forces[i, c], abs=1e-6)
    volume = atoms.get_volume()
    for a, b in [(0, 0), (1, 2), (2, 2), (0, 1)]:
        energies = []
        for sign in (1, -1):
            strained = atoms.copy()
            strain = np.eye(3)
            strain[a, b] += sign * h / 2
            strain[b, a] += sign * h / 2
            strained.set_cell(atoms.cell.array @ strain, scale_atoms=True)
            strained.calc = potential.calculator()
            energies.append(strained.get_potential_energy())
        numeric = (energies[0] - energies[1]) / (2 * h) / volume
        assert numeric == pytest.approx(stress[a, b], abs=1e-7)
    assert np.abs(stress).max() > 1e-5  # not trivially zero
    water = structures["water"].copy()
    water.calc = potential.calculator()
    with pytest.raises(Exception, match="periodic"):
        water.get_stress()


def test_exported_model_in_a_fresh_process(potential, structures, tmp_path):
    from equilens.export.metatomic import export_metatomic

    path = export_metatomic(potential, tmp_path / "model.pt")
    assert (tmp_path / "extensions").is_dir()
    reference = {}
    for name, atoms in structures.items():
        atoms = atoms.copy()
        atoms.calc = potential.calculator()
        reference[name] = {
            "energy": atoms.get_potential_energy(),
            "forces": atoms.get_forces().tolist(),
            "energies": atoms.get_potential_energies().tolist(),
        }
        if atoms.pbc.all():
            reference[name]["stress"] = atoms.get_stress().tolist()
        ase.io.write(tmp_path / f"{name}.extxyz", atoms)
    extensions = str(tmp_path / "extensions")
    script = f"""
import json, ase.io
from metatomic_ase import MetatomicCalculator
out = {{}}
for name in {list(structures)!r}:
    atoms = ase.io.read({str(tmp_path)!r} + f"/{{name}}.extxyz")
    atoms.calc = MetatomicCalculator({str(path)!r}, extensions_directory={extensions!r})
    out[name] = {{"energy": atoms.get_potential_energy(), "forces": atoms.get_forces().tolist(),
                 "energies": atoms.get_potential_energies().tolist()}}
    if atoms.pbc.all():
        out[name]["stress"] = atoms.get_stress().tolist()
print(json.dumps(out))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = json.loads(result.stdout.strip().splitlines()[-1])
    for name, values in reference.items():
        got = fresh[name]
        assert got["energy"] == pytest.approx(values["energy"], rel=1e-6)
        np.testing.assert_allclose(got["forces"], values["forces"], atol=1e-5)
        np.testing.assert_allclose(got["energies"], values["energies"], atol=1e-6)
        if "stress" in values:
            np.testing.assert_allclose(got["stress"], values["stress"], atol=1e-5)


def test_chemiscope_featurizer_reads_two_layers(potential, tmp_path):
    chemiscope = pytest.importorskip("chemiscope")
    from equilens.export.chemiscope import validate_chemiscope
    from equilens.export.metatomic import export_metatomic

    path = export_metatomic(potential, tmp_path / "model.pt")
    frames = iron_water_example(n_frames=4, seed=6)
    for layer in ("hidden_1", "bottleneck"):
        output = tmp_path / f"{layer}.json.gz"
        featurizer = chemiscope.metatomic_featurizer(
            str(path), extensions_directory=str(tmp_path / "extensions"), variant=layer
        )
        with pytest.warns(Warning):  # chemiscope still asks for the plural 'features'
            chemiscope.explore(frames, featurizer=featurizer, write_input=str(output))
        data = validate_chemiscope(output)
        assert len(data["structures"]) == len(frames)
        assert any(layer in name or "feature" in name for name in data["properties"])


def test_exported_file_read_back_by_the_metatomic_adapter(potential, tmp_path):
    """equilens's adapter for metatomic models reads the export: the same
    layers as the native model, and the same energies and forces."""
    from equilens.export.metatomic import export_metatomic
    from equilens.models import energies_and_forces, load
    from equilens.models.metatomic.model import MetatomicModel

    path = export_metatomic(potential, tmp_path / "model.pt")
    model = load(path)
    assert isinstance(model, MetatomicModel) and model.species == potential.species
    assert model.layer_names == potential.layer_names
    # declared for a GPU whatever machine exported it, the CPU as the fallback
    assert model.supported_devices == ("cuda", "cpu")
    assert model.to("cpu") is model and model.device.type == "cpu"
    frames = iron_water_example(n_frames=3, seed=8)
    native, read = potential.layers(frames), model.layers(frames)
    for name in potential.layer_names:
        for key, block in native[name].items():
            np.testing.assert_allclose(read[name].block(key).values, block.values, atol=1e-5)
    energies, forces = energies_and_forces(model.predict(frames))
    reference, reference_forces = potential.energies_and_forces(frames)
    np.testing.assert_allclose(energies, reference, rtol=1e-8)
    for a, b in zip(forces, reference_forces):
        np.testing.assert_allclose(a, b, atol=1e-6)
