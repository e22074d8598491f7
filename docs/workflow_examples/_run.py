"""What the workflow examples share: run a workflow's scripts as a user
does and show the figures they leave (not an example itself)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def run_quick(workflow: str, scripts: Sequence[str]) -> Path:
    """Run ``workflows/<workflow>/<script> --quick`` for each script in order
    into a fresh folder; print each script's output; return the folder."""
    output = Path(tempfile.mkdtemp()) / workflow
    for script in scripts:
        command = [sys.executable, str(WORKFLOWS / workflow / script), "--quick"]
        done = subprocess.run(
            [*command, "--output", str(output)], capture_output=True, text=True, check=False
        )
        print(f"$ python workflows/{workflow}/{script} --quick\n{done.stdout.strip()}\n")
        if done.returncode:
            raise RuntimeError(f"{script} failed:\n{done.stderr[-3000:]}")
    return output


def show(path: Path, title: str = "") -> None:
    """One figure the workflow wrote, as the gallery's image."""
    image = plt.imread(path)
    height, width = image.shape[:2]
    figure, axis = plt.subplots(figsize=(10, 10 * height / width))
    axis.imshow(image)
    axis.set_axis_off()
    axis.set_title(title)
    figure.tight_layout()
