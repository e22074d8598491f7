"""Sphinx configuration of the equilens documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (the test suite does,
with warnings as errors). The CLI reference is generated from the argument
parser at every build (``_generated/cli.rst``), so it cannot go stale; the
configuration reference (``configuration.md``) is generated from the
dataclasses by ``equilens config reference`` and checked against them by
``tests/test_config_reference.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cli_reference import write_cli_reference  # noqa: E402

import equilens  # noqa: E402

project = "equilens"
author = "the equilens developers"
release = equilens.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "examples/*.md", "examples/README.rst", "workflow_examples/*"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports = ["sevenn", "mace", "metatrain", "tblite", "pyscf", "datasets", "umap"]
autosummary_generate = False
nitpicky = False


# EQUILENS_DOCS_WORKFLOWS=0 renders the workflow examples without running
# them (the test suite runs the same quick modes in tests/test_workflows.py)
RUN_WORKFLOWS = os.environ.get("EQUILENS_DOCS_WORKFLOWS") != "0"
sphinx_gallery_conf = {
    "examples_dirs": ["examples", "workflow_examples"],
    "gallery_dirs": ["gallery", "workflow_gallery"],
    "filename_pattern": r"/plot_" if RUN_WORKFLOWS else r"/plot_\d",
    "ignore_pattern": r"(__init__|_run)\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    # EQUILENS_DOCS_NO_EXAMPLES=1 builds the pages without running them;
    # EQUILENS_DOCS_RERUN=1 runs them even when unchanged since the last build
    "plot_gallery": os.environ.get("EQUILENS_DOCS_NO_EXAMPLES") != "1",
    "run_stale_examples": os.environ.get("EQUILENS_DOCS_RERUN") == "1",
}

html_theme = "alabaster"
html_title = f"equilens {release}"


def setup(app):
    write_cli_reference(HERE / "_generated" / "cli.rst")
