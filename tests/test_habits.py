"""House rules checked on every run: lint, format, types, the layer contract,
and the size of modules and functions.

The tools come with the ``test`` extra. Where they are missing the tests skip,
unless EQUILENS_REQUIRE_TOOLS=1 (set by .ci/run), where they fail.
"""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["src", "tests", "benchmarks", "workflows", "docs"]


def _tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(path).exists():
        message = f"{name} is not installed (pip install -e '.[test]')"
        if os.environ.get("EQUILENS_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint_and_format():
    ruff = _tool("ruff")
    lint = _run(ruff, "check", *SOURCES)
    assert lint.returncode == 0, lint.stdout[-4000:]
    form = _run(ruff, "format", "--check", *SOURCES)
    assert form.returncode == 0, form.stdout[-4000:]


@pytest.mark.slow
def test_mypy_on_the_package():
    result = _run(_tool("mypy"))
    assert result.returncode == 0, result.stdout[-4000:]


def test_imports_only_point_down_the_flow():
    result = _run(_tool("lint-imports"))
    assert result.returncode == 0, result.stdout[-4000:]


def test_modules_and_functions_stay_small():
    """No module over 420 lines, no function body over 80 lines of code after
    its signature and docstring (the guide: about 400 and 80)."""
    too_long = []
    for path in sorted((ROOT / "src" / "equilens").rglob("*.py")):
        text = path.read_text()
        lines = text.count("\n")
        if lines > 420:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                    body = body[1:] or body  # the docstring
                length = node.end_lineno - body[0].lineno + 1
                if length > 80:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length}")
    assert not too_long, "\n".join(too_long)


def test_docstring_references_resolve():
    """Every ``:mod:`` / ``:class:`` / ``:func:`` ... reference to an equilens
    object names something that exists (moved modules leave no stale docs)."""
    import importlib
    import re

    pattern = re.compile(r":(?:mod|class|func|meth|attr|data|exc):`~?(equilens[\w.]*)`")
    stale = []
    for path in sorted((ROOT / "src" / "equilens").rglob("*.py")):
        for match in pattern.finditer(path.read_text()):
            parts = match.group(1).split(".")
            found = None
            for cut in range(len(parts), 0, -1):
                try:
                    found, rest = importlib.import_module(".".join(parts[:cut])), parts[cut:]
                    break
                except ImportError:
                    continue
            for name in rest if found is not None else []:
                found = getattr(found, name, None)
            if found is None:
                stale.append(f"{path.relative_to(ROOT)}: {match.group(1)}")
    assert not stale, "\n".join(stale)
