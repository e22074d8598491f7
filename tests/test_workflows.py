"""Every workflow's quick mode runs end to end, as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

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
