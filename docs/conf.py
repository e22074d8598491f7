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
from module_index import write_module_index  # noqa: E402

import equilens  # noqa: E402


def materialise_lazy_names() -> None:
    """Import the lazy public names of every subpackage (``equilens._lazy``)
    into it, so that autodoc, which lists what a module holds, sees them."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(equilens.__path__, "equilens."):
        if not info.ispkg:
            continue
        package = importlib.import_module(info.name)
        for name in getattr(package, "__all__", ()):
            setattr(package, name, getattr(package, name))


materialise_lazy_names()

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
# every cross-reference must resolve (sphinx-build -n, as the test suite
# builds), except into packages whose inventories cannot be fetched offline
nitpicky = True
EXTERNAL = (
    "numpy", "np", "ase", "metatensor", "torch", "pathlib", "os", "abc", "typing",
    "collections", "argparse", "matplotlib", "sklearn", "skmatter", "chemiscope",
    "featomic", "dask", "yaml", "scipy", "metatomic", "sevenn", "mace", "metatrain",
)  # fmt: skip
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(EXTERNAL)}|importlib)(\..*)?"),
    # type aliases and the bare names of external classes in signatures
    (r"py:.*", r"PathLike|ArrayLike|Path|Module|TensorMap|TensorBlock|Labels|Calculator"),
    (r"py:.*", r"<torch\.ScriptClass.*|.*\.T"),  # a TorchScript default; TypeVars
    (r"py:class", r".*\._\w+"),  # private base classes named in signatures
]


def skip_generated_request_methods(app, what, name, obj, skip, options):
    """scikit-learn generates ``set_*_request`` methods on estimators, with
    docstrings that refer to its own documentation."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def resolve_by_name(app, env, node, contnode):
    """A Python reference that names a documented object by another path
    (its defining module when it is documented under its public name, or a
    bare name in a docstring) resolves to the one documented object of that
    name, the nearest to the module of the reference when there are several;
    one that names nothing documented stays a broken reference."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    parts = target.split(".")
    domain = env.get_domain("py")
    candidates: list = []
    for start in range(len(parts)):  # the longest dotted ending that names something
        ending = ".".join(parts[start:])
        candidates = [
            (name, entry)
            for name, entry in domain.objects.items()
            if name == ending or name.endswith("." + ending)
        ]
        if candidates:
            break
    if not candidates:
        return None
    # nearest: to the path the reference gives, else to the module it is in
    near = (target if len(parts) > 1 else node.get("py:module") or "").split(".")

    def shared(name: str) -> int:
        return len(os.path.commonprefix([name.split("."), near]))

    best = max(shared(name) for name, _ in candidates)
    nearest = [(name, entry) for name, entry in candidates if shared(name) == best]
    if len(nearest) > 1:
        return None
    name, entry = nearest[0]
    from sphinx.util.nodes import make_refnode

    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name)


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
    app.connect("missing-reference", resolve_by_name)
    app.connect("autodoc-skip-member", skip_generated_request_methods)
    write_cli_reference(HERE / "_generated" / "cli.rst")
    write_module_index(HERE / "_generated" / "modules.rst", HERE / "api.rst")
