"""The MACE adapter in its own environment: mace-torch pins e3nn 0.4, while
SevenNet (in the test extra) needs e3nn >= 0.5. ``.venv-mace`` is made beside
the checkout (:func:`conftest.side_environment`) and ``tests/mace_env`` runs
in it."""

from __future__ import annotations

import os
import subprocess

from conftest import ROOT, side_environment


def test_mace_adapter_in_its_environment():
    python = side_environment(".venv-mace", ["mace-torch==0.3.16", "e3nn==0.4.4"])
    environment = dict(os.environ, EQUILENS_MACE_ENV="1", OMP_WAIT_POLICY="PASSIVE")
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), environment.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    command = [str(python), "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
               "-W", "ignore"]  # fmt: skip
    done = subprocess.run(
        [*command, str(ROOT / "tests" / "mace_env")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]
