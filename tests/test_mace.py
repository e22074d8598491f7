"""The MACE adapter in its own environment: mace-torch pins e3nn 0.4, while
SevenNet (in the test extra) needs e3nn >= 0.5. This test makes
``.venv-mace`` beside the checkout (``--system-site-packages`` plus
mace-torch and e3nn 0.4.4; about a minute the first time) and runs
``tests/mace_env`` in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MACE = "mace-torch==0.3.16"
E3NN = "e3nn==0.4.4"


def _unavailable(message: str):
    if os.environ.get("EQUILENS_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mace_python() -> Path:
    """The interpreter of the MACE environment, made if missing."""
    import torch

    venv = Path(os.environ.get("EQUILENS_MACE_VENV", ROOT / ".venv-mace"))
    python = venv / "bin" / "python"
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    ready = venv / ".equilens-ready"
    wanted = " ".join([torch_pin, MACE, E3NN])
    if ready.is_file() and ready.read_text() == wanted and python.exists():
        return python
    steps = [
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        [str(python), "-m", "pip", "install", "-q", torch_pin, MACE, E3NN],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            _unavailable(
                f"cannot make the MACE environment ({' '.join(step[:4])}): "
                + done.stderr.strip()[-300:]
            )
    ready.write_text(wanted)
    return python


def test_mace_adapter_in_its_environment(mace_python):
    environment = dict(os.environ, EQUILENS_MACE_ENV="1", OMP_WAIT_POLICY="PASSIVE")
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), environment.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    done = subprocess.run(
        [
            str(mace_python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore",
            str(ROOT / "tests" / "mace_env"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]
