"""Lazy public names of a subpackage: imported on first use, so that
``import equilens.<subpackage>`` stays cheap (the CLI's ``--help``)."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict


def lazy_getattr(package: str, names: Dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<names[name]>`` when
    ``name`` is first asked for (PEP 562)."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
