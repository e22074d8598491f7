"""The registry is the one place that knows the families: a toy family is
added with its own package (tests/toy_family) and one registry line, and
load, train, the CLI and the contract then know it."""

import sys
from pathlib import Path

import pytest

from equilens.data.examples import iron_water_example
from equilens.errors import ConfigError, ModelError
from equilens.models import load, load_run_config, registry, train
from equilens.testing import check_model

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def toy(monkeypatch):
    """The registry with one more line: the toy family."""
    monkeypatch.syspath_prepend(str(TESTS))
    line = registry.Family(
        "toy",
        "a harmonic pair potential (tests)",
        model="toy_family.model:ToyModel",
        task="toy",
        config="toy_family.config:ToyConfig",
        train="toy_family.task:train_toy",
    )
    monkeypatch.setattr(registry, "FAMILIES", registry.FAMILIES + (line,))
    monkeypatch.setattr(sys.modules["equilens.models.loading"], "FAMILIES", registry.FAMILIES)
    return line


def test_a_family_plugs_in_with_one_registry_line(toy, tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(f"task: toy\nname: spring\nstiffness: 0.8\noutput_dir: {tmp_path / 'out'}\n")
    config = load_run_config(path)
    assert type(config).__name__ == "ToyConfig" and config.stiffness == 0.8
    model, summary = train(config, progress=False)
    assert summary["task"] == "toy"
    reopened = load(tmp_path / "out" / "model.pt")
    assert type(reopened).__name__ == "ToyModel" and reopened.stiffness == 0.8
    frames = iron_water_example(n_frames=2, seed=4, rattle=0.05)
    report = check_model(reopened, frames, skip=["reload", "export"])
    assert report["forces"] == "ok" and report["rotation"] == "ok"


def test_the_command_line_knows_the_new_family(toy, tmp_path, capsys):
    from equilens.cli import main

    config = tmp_path / "toy.yaml"
    config.write_text(f"task: toy\noutput_dir: {tmp_path / 'out'}\n")
    assert main(["train", str(config), "--no-progress"]) == 0
    model, frames = str(tmp_path / "out" / "model.pt"), str(_frames(tmp_path))
    assert main(["export", model, frames, "--output", str(tmp_path / "toy.json.gz")]) == 0
    assert "frames" in capsys.readouterr().out


def _frames(folder: Path) -> Path:
    import ase.io

    from equilens.data.examples import iron_water_example

    frames = iron_water_example(n_frames=2, seed=4, rattle=0.05)
    path = folder / "frames.extxyz"
    ase.io.write(path, frames)
    return path


def test_unknown_tasks_and_kinds_are_named_with_the_known_ones(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("task: potentail\n")
    with pytest.raises(ConfigError, match="expected one of potential, tensor, .*metatrain, got"):
        load_run_config(path)
    from equilens.models.base import write_model_file

    write_model_file(tmp_path / "m.pt", "equilens.perceptron", {})
    with pytest.raises(ModelError, match="unknown model kind 'equilens.perceptron'.*reads"):
        load(tmp_path / "m.pt")


def test_every_registry_reference_resolves():
    for family in registry.FAMILIES:
        # a family whose runs share work can compute it alone (the cluster path)
        assert (family.shares is None) == (family.prepare is None), family.kind
        for field in ("model", "config", "train", "export", "sniff", "shares", "prepare"):
            reference = getattr(family, field)
            if reference is None:
                continue
            if family.kind == "mace" and field == "model":
                continue  # imports mace lazily, but needs e3nn 0.4 to build models
            assert callable(registry.resolve(reference)), (family.kind, field)


def test_a_missing_package_is_named_with_its_install_command():
    missing = registry.Family("x", "x", task="x", requires=("no_such_package_xyz", "pip install x"))
    with pytest.raises(ConfigError, match="task x needs the no_such_package_xyz package: pip"):
        missing.check_requirements()
    registry.Family("y", "y", task="y", requires=("json", "-")).check_requirements()
