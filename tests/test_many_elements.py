"""Many elements: the potential switches to the alchemical SOAP and a shared
network, says so, and keeps exact forces, symmetries and its TorchScript path."""

from __future__ import annotations

import ase.build
import ase.io
import numpy as np
import pytest
import torch

from equilens.config import from_mapping
from equilens.models.bpnn.config import PotentialConfig
from equilens.models.bpnn.model import Potential
from equilens.models.bpnn.task import train_potential
from equilens.so3 import random_rotation

#: every element of ASE's EMT: 11, one more than the switch (10)
EMT_ELEMENTS = (1, 6, 7, 8, 13, 28, 29, 46, 47, 78, 79)


@pytest.fixture(scope="module")
def emt_mixed_files(tmp_path_factory):
    """Random 8-atom fcc cells of the 11 EMT elements, rattled, EMT labels."""
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    folder = tmp_path_factory.mktemp("emt_mixed")
    rng = np.random.default_rng(4)
    paths = {}
    for name, count in (("train", 40), ("validation", 10)):
        frames = []
        for index in range(count):
            atoms = ase.build.bulk("Cu", "fcc", a=3.7, cubic=True) * (2, 1, 1)
            atoms.numbers = rng.choice(EMT_ELEMENTS, len(atoms))
            if index < len(EMT_ELEMENTS):  # every element in the training set
                atoms.numbers[0] = EMT_ELEMENTS[index]
            atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
            atoms.calc = EMT()
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
            atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
            frames.append(atoms)
        paths[name] = folder / f"{name}.extxyz"
        ase.io.write(paths[name], frames)
    return paths


@pytest.fixture(scope="module")
def many_element_run(emt_mixed_files, tmp_path_factory):
    folder = tmp_path_factory.mktemp("many_run")
    config = from_mapping(
        PotentialConfig,
        {
            "name": "emt",
            "data": {
                "train": str(emt_mixed_files["train"]),
                "validation": str(emt_mixed_files["validation"]),
            },
            "descriptor": {"preset": "small"},
            "compression": {"n_components": 16},
            "model": {"hidden": [16, 16], "embedding": 4},
            "training": {"epochs": 60, "batch_size": 8, "learning_rate": 0.01},
            "output_dir": str(folder / "run"),
            "cache_dir": str(folder / "cache"),
        },
    )
    potential, summary = train_potential(config, progress=False)
    return potential, summary, config


def test_many_elements_switch_and_say_so(many_element_run):
    potential, summary, config = many_element_run
    architecture = summary["architecture"]
    assert architecture["n_species"] == len(EMT_ELEMENTS)
    assert architecture["shared"] and architecture["alchemical"]["pseudo_species"] == 2
    assert "shared network" in architecture["summary"]
    assert "pseudo-species" in architecture["summary"]
    assert len(potential.module.nets) == 1 and potential.module.shared
    assert potential.pca.shared and not potential.per_species_coordinates
    # it learns: the training energies are fitted far beyond the
    # composition baseline (40 frames of 11 elements: the test is not about
    # generalisation, benchmarks/many_elements.py is)
    fitted = summary["metrics"]["train"]["energy_rmse_meV_per_atom"]
    baseline = summary["baselines"]["composition"]["train"]["energy_rmse_meV_per_atom"]
    assert fitted < 0.5 * baseline
    # the same model file reads back with the same predictions
    reloaded = Potential.load(config.output / "model.pt")
    frames = ase.io.read(config.data.validation, ":3")
    first = potential.energies_and_forces(frames)
    second = reloaded.energies_and_forces(frames)
    np.testing.assert_allclose(second[0], first[0], rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def shared64(many_element_run):
    potential = many_element_run[0]
    potential.module.double()
    return potential


def test_shared_forces_are_finite_differences(shared64, emt_mixed_files):
    frame = ase.io.read(emt_mixed_files["validation"], 0)
    _, forces = shared64.energies_and_forces([frame])
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (6, 2)]:
        moved = [frame.copy(), frame.copy()]
        moved[0].positions[atom, axis] += h
        moved[1].positions[atom, axis] -= h
        (plus,), _ = shared64.energies_and_forces([moved[0]], forces=False)
        (minus,), _ = shared64.energies_and_forces([moved[1]], forces=False)
        numeric = -(plus - minus) / (2 * h)
        assert abs(numeric - forces[0][atom, axis]) <= 1e-6 * max(1.0, abs(numeric))
    assert np.abs(forces[0]).max() > 1e-3


def test_shared_energy_is_invariant_and_torchscript_agrees(shared64, emt_mixed_files):
    frame = ase.io.read(emt_mixed_files["validation"], 1)
    (energy,), forces = shared64.energies_and_forces([frame])
    rotation = random_rotation(seed=2)
    turned = frame.copy()
    turned.positions = frame.positions @ rotation.T
    turned.cell = frame.cell.array @ rotation.T
    permuted = frame[np.random.default_rng(0).permutation(len(frame))]
    for other in (turned, permuted):
        (value,), _ = shared64.energies_and_forces([other], forces=False)
        assert abs(value - energy) < 1e-8 * max(1.0, abs(energy))
    # the TorchScript module (ASE calculator, metatomic export) computes the
    # alchemical SOAP and the shared network itself: same numbers
    atoms = frame.copy()
    atoms.calc = shared64.calculator(torch.float64)
    assert abs(atoms.get_potential_energy() - energy) < 1e-9 * max(1.0, abs(energy))
    np.testing.assert_allclose(atoms.get_forces(), forces[0], rtol=0, atol=1e-8)
    layers = shared64.layers([frame])
    assert set(layers) == set(shared64.layer_names)
    assert layers["hidden_1"].block(0).values.shape[1] == 16


def test_shared_alchemical_module_scripts(shared64, emt_mixed_files):
    """The exported form (TorchScript, metatomic) of the alchemical, shared
    potential gives the energies of the Python model."""
    from metatomic.torch import ModelOutput, systems_to_torch

    frame = ase.io.read(emt_mixed_files["validation"], 2)
    (energy,), _ = shared64.energies_and_forces([frame], forces=False)
    module = torch.jit.script(shared64.torch_module())
    system = systems_to_torch(frame, dtype=torch.float64)
    outputs = {"energy": ModelOutput(quantity="energy", unit="eV", sample_kind="system")}
    value = module([system], outputs, None)["energy"].block().values.item()
    assert abs(value - energy) < 1e-9 * max(1.0, abs(energy))


def test_shared_model_exports_to_metatomic_and_refuses_finetuning(
    many_element_run, emt_mixed_files, tmp_path
):
    """The exported metatomic file of the alchemical, shared potential gives
    its energy through metatomic's ASE calculator; fine-tuning (which starts
    from per-element networks) says in one line that it cannot start from it."""
    from metatomic.torch.ase_calculator import MetatomicCalculator

    from equilens.errors import ConfigError
    from equilens.export.metatomic import export_metatomic
    from equilens.models.bpnn.config import FinetuneConfig
    from equilens.models.bpnn.finetune import load_base

    potential, _, config = many_element_run
    potential.module.double()
    frame = ase.io.read(emt_mixed_files["validation"], 3)
    (energy,), _ = potential.energies_and_forces([frame], forces=False)
    path = export_metatomic(potential, tmp_path / "shared.pt")
    atoms = frame.copy()
    atoms.calc = MetatomicCalculator(str(path), extensions_directory=str(tmp_path / "extensions"))
    assert abs(atoms.get_potential_energy() - energy) < 1e-8 * max(1.0, abs(energy))
    with pytest.raises(ConfigError, match="shared by its elements"):
        load_base(FinetuneConfig(base_model=str(config.output / "model.pt")))
