"""Shared fixtures. Reference data are found through one helper,
:func:`equilens.data.reference.reference_path` ($EQUILENS_DATA, else
../shared/data); tests that need them skip with the reason when absent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # the test processes (pytest -n) share the cores: one thread each, and in
    # the processes they start, instead of every process spinning on all cores
    for _name in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "RAYON_NUM_THREADS",
    ):
        os.environ[_name] = "1"

from equilens.data.reference import reference_path  # noqa: E402
from equilens.errors import DatasetNotFoundError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: the most test processes ``-n auto`` starts: one per core, at most 8, and
#: at least 3 GB of memory each (the workflow and fine-tuning tests peak at 4 GB)
MAX_WORKERS = 8


def pytest_xdist_auto_num_workers(config) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return max(1, min(cores or 1, MAX_WORKERS, int(memory_gb // 3)))


def pytest_collection_modifyitems(config, items) -> None:
    """The slow tests first, the longest modules (workflows, side
    environments, fine-tuning) at the very front, so that the test
    processes finish together rather than one running the workflows alone."""
    first = (
        "test_workflows",
        "test_mace",
        "test_sevenn_finetune",
        "test_faults",
        "test_metatrain",
        "test_cluster",
    )

    def key(item) -> tuple:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        front = first.index(module) if module in first else len(first)
        return (front, item.get_closest_marker("slow") is None)

    items.sort(key=key)  # stable: the order within each group is kept


@pytest.fixture(scope="session")
def reference():
    """``reference(name)`` -> local path of a reference dataset, or skip."""

    def locate(name: str):
        try:
            return reference_path(name)
        except DatasetNotFoundError as error:
            pytest.skip(f"reference data not available: {error}")

    return locate


@pytest.fixture(scope="session")
def make_potential():
    """``make_potential(n_components, hidden, seed, **model_options)`` -> an
    untrained Potential (small SOAP, PCA fitted on built-in example frames)."""
    import torch

    from equilens.data.examples import iron_water_example
    from equilens.descriptors import PRESETS, compute_soap
    from equilens.descriptors.compression import SpeciesPCA
    from equilens.models.bpnn.config import BPNNConfig
    from equilens.models.bpnn.model import Potential

    species = (1, 8, 26)
    hypers = PRESETS["small"].to_featomic()

    def build(n_components, hidden, seed=0, fit_frames=4, **model_options):
        frames = iron_water_example(n_frames=fit_frames, seed=1)
        pca = SpeciesPCA(n_components=n_components).fit(compute_soap(frames, species, hypers))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return Potential.build(hypers, pca, BPNNConfig(hidden=hidden, **model_options))

    return build


@pytest.fixture(scope="session")
def chromium():
    """``chromium(page, screenshot)`` -> the page's status JSON after loading
    it in headless Chromium, with a PNG screenshot written to ``screenshot``.

    Skips when no Chromium is installed, unless EQUILENS_REQUIRE_BROWSER=1
    (set by .ci/run, which installs Debian's chromium), where it fails."""
    import json
    import os
    import re
    import shutil
    import subprocess

    binary = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
    )
    if binary is None:
        message = "headless Chromium not installed (apt-get install chromium)"
        if os.environ.get("EQUILENS_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--no-first-run",
        "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader",
        "--virtual-time-budget=30000",
        "--window-size=1200,760",
    ]

    def render(page, screenshot):
        url = page.resolve().as_uri()
        dom = subprocess.run(
            [binary, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180
        )
        match = re.search(r'<pre id="equilens-status">(.*?)</pre>', dom.stdout, re.S)
        assert match, f"no status in the page; chromium said: {dom.stderr[-2000:]}"
        subprocess.run(
            [binary, *flags, f"--screenshot={screenshot}", url],
            capture_output=True,
            timeout=180,
            check=True,
        )
        text = match.group(1).replace("&quot;", '"').replace("&amp;", "&")
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return {"error": f"page status is not JSON: {text[:500]}"}

    return render


@pytest.fixture(scope="session")
def lj_files(tmp_path_factory):
    """Small labelled datasets: the built-in slabs with Lennard-Jones labels."""
    import ase.io
    from ase.calculators.lj import LennardJones
    from ase.calculators.singlepoint import SinglePointCalculator

    from equilens.data.examples import iron_water_example

    folder = tmp_path_factory.mktemp("lj")
    paths = {}
    for name, seed, n in (("train", 10, 24), ("validation", 11, 8)):
        frames = iron_water_example(n_frames=n, seed=seed, rattle=0.05)
        for atoms in frames:
            # smooth, O(1 eV/A) forces: a well-conditioned toy target
            atoms.calc = LennardJones(sigma=0.8, epsilon=0.05, rc=3.0, smooth=True)
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
            atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        paths[name] = folder / f"{name}.extxyz"
        ase.io.write(paths[name], frames)
    return paths


def side_environment(name: str, requirements: List[str]) -> Path:
    """The interpreter of ``<checkout>/<name>``, a virtual environment over
    this one (``--system-site-packages``) with ``requirements`` and this
    torch installed, for packages whose pins conflict with the test extra
    (made once, about a minute; skipped, or failed under
    ``EQUILENS_REQUIRE_TOOLS=1``, when it cannot be made)."""
    import torch
    from filelock import FileLock

    venv = ROOT / name
    python = venv / "bin" / "python"
    wanted = " ".join([f"torch=={torch.__version__.split('+')[0]}", *requirements])
    ready = venv / ".equilens-ready"
    # test processes running in parallel (pytest -n) make it once, one at a time
    with FileLock(str(ROOT / f".{name}.lock")):
        if not (ready.is_file() and ready.read_text() == wanted and python.exists()):
            _make_environment(venv, python, wanted, name)
            ready.write_text(wanted)
    return python


def _make_environment(venv: Path, python: Path, wanted: str, name: str) -> None:
    import subprocess
    import sys

    steps = [
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        [str(python), "-m", "pip", "install", "-q", *wanted.split()],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            message = f"cannot make {name} ({' '.join(step[2:5])}): {done.stderr.strip()[-300:]}"
            if os.environ.get("EQUILENS_REQUIRE_TOOLS") == "1":
                pytest.fail(message)
            pytest.skip(message)


# tests/mace_env runs in the MACE environment only (tests/test_mace.py starts it there)
collect_ignore = [] if os.environ.get("EQUILENS_MACE_ENV") == "1" else ["mace_env"]
