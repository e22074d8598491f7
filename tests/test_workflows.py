"""Every workflow's quick mode runs end to end, as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

import ase.io
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _step(script, output, *extra):
    command = [sys.executable, str(ROOT / "workflows" / script), "--quick", "--output", str(output)]
    result = subprocess.run(command + list(extra), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_latent_study_quick(tmp_path):
    out = tmp_path / "results"
    assert "report.md" in _step("latent_study/1_study.py", out)
    folder = out / "latent_study_quick"
    assert (folder / "report.md").is_file() and (out / "latent_study_quick.json.gz").is_file()
    printed = _step("latent_study/2_compare.py", out)
    choice = json.loads((folder / "choice.json").read_text())
    assert choice["layer"].startswith(choice["entry"] + "/")
    assert f"# Choice: {choice['layer']}" in (folder / "choice.md").read_text()
    assert (folder / "choice.png").stat().st_size > 10_000 and "CKA with SOAP" in printed
    printed = _step("latent_study/3_train_best.py", out, "--epochs", "2")
    summary = json.loads((folder / "best" / "metrics.json").read_text())
    assert summary["epochs_run"] == 2 and summary["name"] == f"{choice['entry']}-best"
    assert f"layer chosen in step 2: {choice['layer']}" in printed


def test_tensors_quick(tmp_path, reference):
    pytest.importorskip("pyscf", reason="the tensor workflow computes its targets with PySCF")
    reference("water/train")  # the structures come from the reference data (else skip)
    reference("water_molecule/train")
    out = tmp_path / "tensors"
    _step("tensors/1_generate.py", out)
    for target in ("dipole", "polarizability", "density"):
        assert (out / "data" / f"{target}.mts").is_file()
    assert len(ase.io.read(out / "data" / "structures.extxyz", ":")) == 2
    printed = _step("tensors/2_train.py", out)
    assert "dipole:" in printed and "ridge baseline" in printed
    printed = _step("tensors/3_layers_and_export.py", out)
    for target in ("dipole", "polarizability", "density"):
        assert f"{target}: metadata ok, rotation ok, inversion ok" in printed
        assert (out / target / "metatomic.pt").is_file() and (out / f"{target}.json.gz").is_file()
        assert (out / target / "latents" / "equivariant" / "layers.json").is_file()


def test_foundation_heo_quick(tmp_path):
    pytest.importorskip("sevenn", reason="the workflow fine-tunes SevenNet-0")
    out = tmp_path / "heo"
    printed = _step("foundation_heo/1_curate.py", out)
    assert "curated 126 of 522 frames" in printed  # the oxides, none of the random cells
    assert (out / "overview" / "overview.json.gz").is_file()
    for name, count in {"minima": 2, "parents": 2}.items():
        assert len(ase.io.read(out / "data" / f"{name}.extxyz", ":")) == count
    printed = _step("foundation_heo/2_train.py", out)
    errors = json.loads((out / "errors.json").read_text())
    assert set(errors) == {"SevenNet-0", "SevenNet-0 fine-tuned", "BPNN from scratch"}
    assert errors["SevenNet-0"] != errors["SevenNet-0 fine-tuned"]
    assert "configs" in {p.name for p in out.iterdir()} and (out / "configs/sevenn.yaml").is_file()
    printed = _step("foundation_heo/3_relax.py", out)
    assert printed.count("converged") == 6  # 3 models x (rattled minimum, parent crystal)
    printed = _step("foundation_heo/4_drift.py", out)
    summary = (out / "summary.md").read_text()
    assert "relaxes closest to the xTB minima" in summary and "Fine-tuning moved layer" in summary
    assert (out / "drift.png").stat().st_size > 10_000
