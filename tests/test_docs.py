"""The documentation builds with warnings as errors (``sphinx-build -W``),
its gallery examples run, and its generated pages are current."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def _text(path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def test_documentation_builds_without_warnings(tmp_path):
    try:
        import myst_parser  # noqa: F401
        import sphinx  # noqa: F401
        import sphinx_gallery  # noqa: F401
    except ImportError as error:
        message = f"the documentation tools are not installed ({error}): pip install -e .[docs]"
        if os.environ.get("EQUILENS_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q"]
    # run every example now, but not the workflows' quick modes (test_workflows runs them)
    environment = {**os.environ, "EQUILENS_DOCS_RERUN": "1", "EQUILENS_DOCS_WORKFLOWS": "0"}
    done = subprocess.run(
        [*command, "docs", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    # the gallery ran: the examples' printed results are in their pages
    gfre = _text(out / "gallery" / "plot_01_gfre_between_layers.html")
    assert "['input', 'hidden_1', 'hidden_2', 'output']" in gfre
    uncertainty = _text(out / "gallery" / "plot_02_uncertainty.html")
    assert re.search(r"LLPR: scale [0-9.e+-]+, miscalibration area 0\.\d+", uncertainty)
    assert (out / "_images").is_dir() and len(list((out / "_images").glob("sphx_glr_*"))) >= 2
    # every module has its section (the module reference, generated at this build)
    modules = _text(out / "_generated" / "modules.html")
    for name in ("equilens.uncertainty.selection", "equilens.models.bpnn.module"):
        assert name in modules, name
    # every workflow has its page (rendered, run in a full build)
    for name in ("1_latent_study", "2_tensors", "3_foundation_heo"):
        assert (out / "workflow_gallery" / f"plot_workflow_{name}.html").is_file(), name
    # generated from the parser at this build: every verb is there
    cli = _text(out / "_generated" / "cli.html")
    from equilens.cli import VERBS

    for verb in VERBS:
        assert f"equilens {verb.replace('_', '-')}" in cli, verb
    # the API reference documents the public names
    api = _text(out / "api.html")
    for name in ("LLPR", "LatentDistance", "compare_by_species", "check_model", "load"):
        assert name in api, name
