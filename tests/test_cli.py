"""The `equilens` command, run as users run it."""

import json
import os
import subprocess
import sys

import ase.io
import metatensor
import numpy as np

from equilens.cli import configure_process, main
from equilens.data.examples import iron_water_example


def test_help_lists_subcommands():
    result = subprocess.run(
        [sys.executable, "-m", "equilens.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "descriptors" in result.stdout and "data" in result.stdout


def test_help_imports_nothing_heavy():
    """``equilens --help`` (and every verb's help) only needs argparse: the
    heavy libraries are imported inside the handlers (benchmarks/cli_startup.py
    times it)."""
    script = (
        "import sys\n"
        "from equilens.cli import build_parser\n"
        "build_parser()\n"
        "heavy = ['torch', 'featomic', 'metatensor', 'matplotlib', 'sklearn', 'ase', 'numpy']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported at --help: {result.stdout}"


def test_descriptors_on_a_file(tmp_path, capsys):
    frames = iron_water_example(n_frames=3)
    path = tmp_path / "slab.extxyz"
    ase.io.write(path, frames)
    out = tmp_path / "out"
    code = main(
        [
            "descriptors",
            str(path),
            "--preset",
            "small",
            "--species",
            "1,8,26",
            "--lambda-max",
            "1",
            "--output",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-progress",
        ]
    )
    assert code == 0
    soap = metatensor.load(str(out / "slab-soap.mts"))
    lsoap = metatensor.load(str(out / "slab-lambda_soap.mts"))
    assert soap.keys.names == ["center_type"]
    assert set(lsoap.keys.column("o3_lambda").tolist()) == {0, 1}
    assert sum(b.values.shape[0] for b in soap.blocks()) == sum(len(f) for f in frames)
    summary = json.loads((out / "slab.json").read_text())
    assert summary["n_frames"] == 3
    assert (out / "slab-soap-pca.png").stat().st_size > 10_000
    assert "slab-soap.mts" in capsys.readouterr().out


def test_bad_input_gives_a_clean_error(tmp_path, capsys):
    path = tmp_path / "bad.extxyz"
    frames = iron_water_example(n_frames=2)
    frames[1].positions[0, 0] = np.nan
    ase.io.write(path, frames)
    code = main(["descriptors", str(path), "--output", str(tmp_path), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.extxyz: frame 1: non-finite positions" in err


def test_data_info_and_verify(reference, capsys):
    path = reference("water_molecule/validation")
    assert main(["data", "info", str(path), "--require-forces"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_frames"] == 150 and info["species"] == [1, 8]
    assert main(["data", "verify"]) == 0
    assert main(["data", "list"]) == 0


def test_descriptors_with_gradients_use_the_sparse_layout(tmp_path):
    path = tmp_path / "slab.extxyz"
    ase.io.write(path, iron_water_example(n_frames=2))
    out = tmp_path / "out"
    code = main(
        [
            "descriptors",
            str(path),
            "--kind",
            "soap",
            "--preset",
            "small",
            "--gradients",
            "--output",
            str(out),
            "--cache-dir",
            "none",
            "--no-progress",
        ]
    )
    assert code == 0
    soap = metatensor.load(str(out / "slab-soap.mts"))
    assert soap.keys.names == ["center_type", "neighbor_1_type", "neighbor_2_type"]
    assert soap.block(0).gradients_list() == ["positions"]
    assert (out / "slab-soap-pca.png").is_file()


def test_train_seed_makes_another_member(lj_files, tmp_path, capsys):
    """``equilens train --seed N`` trains the configuration with ``training.seed``
    N (recorded with the model), other weights than the configuration's seed,
    and the same weights again for the same N."""
    import torch
    import yaml

    from equilens.models import load

    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "potential",
                "name": "tiny",
                "data": {
                    "train": str(lj_files["train"]),
                    "validation": str(lj_files["validation"]),
                },
                "descriptor": {"preset": "small", "species": [1, 8, 26]},
                "compression": {"n_components": 8},
                "model": {"hidden": [4]},
                "training": {"epochs": 1, "seed": 0},
                "cache_dir": None,
            }
        )
    )
    weights = {}
    for name, seed in (("zero", None), ("three", "3"), ("three_again", "3")):
        output = tmp_path / name
        arguments = ["train", str(config), "--output", str(output), "--no-progress"]
        assert main(arguments + ([] if seed is None else ["--seed", seed])) == 0
        model = load(output / "model.pt")
        recorded = model.describe().provenance["config"]["training"]["seed"]
        assert recorded == (0 if seed is None else 3)
        weights[name] = torch.cat([p.detach().flatten() for p in model.module.parameters()])
    assert not torch.equal(weights["zero"], weights["three"])
    assert torch.equal(weights["three"], weights["three_again"])


def test_the_command_asks_torch_for_huge_pages_before_importing_it(monkeypatch):
    """``THP_MEM_ALLOC_ENABLE`` only works if it is set before torch is
    imported: the command sets it first (keeping a user's own value), and
    building its parser imports no torch."""
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    configure_process()
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    configure_process()
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "0"
    code = "import sys, equilens.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
