"""Fine-tuning equilens potentials: a base model trained on water only (H, O)
is fine-tuned on iron/water frames (a new species, Fe) whose energies carry
per-species shifts, as between two levels of theory."""

from __future__ import annotations

import json
import subprocess
import sys

import ase.io
import numpy as np
import pytest
import torch
import yaml
from ase.calculators.singlepoint import SinglePointCalculator

from equilens.config import from_mapping
from equilens.errors import ConfigError
from equilens.models.bpnn.config import PotentialConfig
from equilens.models.bpnn.task import train_potential

SHIFTS = {1: -0.3, 8: 0.7, 26: -1.1}  # eV per atom: another level of theory


def _relabelled(frames, keep_iron: bool):
    result = []
    for atoms in frames:
        atoms = atoms.copy() if keep_iron else atoms[atoms.numbers != 26]
        from ase.calculators.lj import LennardJones

        atoms.calc = LennardJones(sigma=0.8, epsilon=0.05, rc=3.0, smooth=True)
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        if keep_iron:
            energy += sum(SHIFTS[int(z)] for z in atoms.numbers)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        result.append(atoms)
    return result


@pytest.fixture(scope="module")
def datasets(lj_files, tmp_path_factory):
    folder = tmp_path_factory.mktemp("finetune-data")
    paths = {}
    for name in ("train", "validation"):
        frames = ase.io.read(lj_files[name], ":")
        for label, keep in (("water", False), ("new", True)):
            paths[f"{label}_{name}"] = folder / f"{label}_{name}.extxyz"
            ase.io.write(paths[f"{label}_{name}"], _relabelled(frames, keep))
    return paths


def _mapping(datasets, label, output, cache, **extra):
    return {
        "task": "potential",
        "name": label,
        "data": {
            "train": str(datasets[f"{label}_train"]),
            "validation": str(datasets[f"{label}_validation"]),
        },
        "descriptor": {"preset": "small", **({"species": [1, 8]} if label == "water" else {})},
        "compression": {"n_components": 16},
        "model": {"hidden": [12, 8]},
        "training": {"epochs": 3, "batch_size": 4, "learning_rate": 0.01},
        "output_dir": str(output),
        "cache_dir": str(cache),
        **extra,
    }


@pytest.fixture(scope="module")
def base(datasets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    config = from_mapping(PotentialConfig, _mapping(datasets, "water", folder / "run", folder))
    model, _ = train_potential(config, progress=False)
    return model, folder / "run" / "model.pt"


def _finetuned(datasets, base_path, folder, **finetune):
    mapping = _mapping(
        datasets, "new", folder / "run", folder, finetune={"base_model": str(base_path), **finetune}
    )
    mapping["descriptor"] = {"preset": "small"}
    return train_potential(from_mapping(PotentialConfig, mapping), progress=False)


def test_last_layer_keeps_the_base_and_adds_the_new_species(datasets, base, tmp_path):
    base_model, base_path = base
    model, summary = _finetuned(datasets, base_path, tmp_path, mode="last_layer")
    assert model.species == (1, 8, 26) and base_model.species == (1, 8)
    for z in (1, 8):
        old = base_model.module.nets[base_model.species.index(z)]
        new = model.module.nets[model.species.index(z)]
        for a, b in zip(old.hidden.parameters(), new.hidden.parameters()):
            assert torch.equal(a, b)  # frozen
        assert not torch.equal(old.output.weight, new.output.weight)  # trained
    # the offsets follow the new level of theory (water-only offsets would not)
    shift = model.module.baseline[:2] - base_model.module.baseline
    assert torch.all(shift.abs() > 0.05)
    # compression kept: water-only environments have the base's coordinates
    water = ase.io.read(datasets["water_validation"], "0")
    ours, theirs = model.layers([water])["input"], base_model.layers([water])["input"]
    for key, block in theirs.items():
        np.testing.assert_allclose(ours.block(key).values, block.values, atol=1e-10)
    assert np.isfinite(summary["metrics"]["validation"]["energy_rmse_meV_per_atom"])
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_run"] == 3


def test_frozen_layers_and_full(datasets, base, tmp_path):
    base_model, base_path = base
    frozen, _ = _finetuned(datasets, base_path, tmp_path / "frozen", mode="frozen")
    full, _ = _finetuned(datasets, base_path, tmp_path / "full", mode="full", compression="refit")
    index = base_model.species.index(8)
    old = base_model.module.nets[index].hidden
    assert torch.equal(old[0][0].weight, frozen.module.nets[index].hidden[0][0].weight)
    assert not torch.equal(old[1][0].weight, frozen.module.nets[index].hidden[1][0].weight)
    assert not torch.equal(old[0][0].weight, full.module.nets[index].hidden[0][0].weight)


def test_bad_finetune_configs_are_named(datasets, base, tmp_path):
    _, base_path = base
    with pytest.raises(ConfigError, match="finetune.frozen_layers: 5, but .* has 2 hidden"):
        _finetuned(datasets, base_path, tmp_path / "a", mode="frozen", frozen_layers=5)
    with pytest.raises(ConfigError, match="finetune.base_model: no such model file"):
        _finetuned(datasets, tmp_path / "missing.pt", tmp_path / "b")
    mapping = _mapping(datasets, "new", tmp_path / "c", tmp_path, finetune={"base_model": "x"})
    mapping["descriptor"] = {"preset": "small", "hypers": {"cutoff": 3.0}}
    mapping["finetune"]["base_model"] = str(base_path)
    with pytest.raises(ConfigError, match="keeps its base model's SOAP"):
        train_potential(from_mapping(PotentialConfig, mapping), progress=False)


def test_finetune_command_line(datasets, base, tmp_path):
    _, base_path = base
    mapping = _mapping(datasets, "new", tmp_path / "run", tmp_path)
    mapping["descriptor"] = {"preset": "small"}
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(mapping))
    command = [sys.executable, "-m", "equilens.cli", "finetune", str(path), "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 2 and "no 'finetune' section" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    mapping["finetune"] = {"base_model": str(base_path), "mode": "last_layer"}
    path.write_text(yaml.safe_dump(mapping))
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "model.pt").is_file()
