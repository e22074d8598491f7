"""``pip install <checkout>`` then the command in an empty directory: the
embedded data and configurations travel with the package."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_package_runs_from_any_directory(tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    work = tmp_path / "empty"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def equilens(*args):
        return subprocess.run(
            [sys.executable, "-m", "equilens.cli", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import equilens; print(equilens.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(site)), where.stdout  # not the checkout
    listing = equilens("data", "list")
    assert listing.returncode == 0, listing.stderr
    assert (
        "iron_water_xtb.extxyz" in listing.stdout and "water_tensors/dipole.mts" in listing.stdout
    )
    # the built-in study configuration resolves by name, its data from the package
    config = {
        "name": "installed",
        "read": {"index": "0:10", "require_forces": True},
        "compression": {"n_components": 8},
        "training": {"epochs": 1},
        "sweep": [{"name": "tiny", "model": {"hidden": [4]}}],
        "seeds": [0],
        "analysis_frames": 4,
        "autoencoder_epochs": 2,
        "max_samples": 200,
    }
    (work / "study.yaml").write_text(yaml.safe_dump(config))
    study = equilens("study", "study.yaml", "--quiet")
    assert study.returncode == 0, study.stderr[-3000:]
    assert (work / "results" / "installed" / "report.md").is_file()
    assert (work / "chemiscope_out" / "installed.json.gz").is_file()
    trained = equilens("train", "tensor_dipole", "--epochs", "1", "--output", "dipole",
                       "--no-progress")  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (work / "dipole" / "model.pt").is_file()
