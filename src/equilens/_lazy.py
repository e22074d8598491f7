"""Lazy public names of a subpackage: imported on first use, so that
``import equilens.<subpackage>`` stays cheap (the CLI's ``--help``).

A lazy name must not be the name of a submodule of its package: once the
submodule is imported (by anyone), Python binds the submodule to that
attribute and the module ``__getattr__`` is never asked again, so ``from
package import name`` would give the module instead of the function, or the
function, depending on what else was imported. :func:`lazy_getattr` refuses
such a name; export it eagerly instead.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
from typing import Any, Callable, Dict


def lazy_getattr(package: str, names: Dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<names[name]>`` when
    ``name`` is first asked for (PEP 562).

    :raises ValueError: when a lazy name is also a submodule of ``package``
    """
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for name in names:
        for folder in folders:
            if importlib.machinery.PathFinder.find_spec(name, [folder]) is not None:
                raise ValueError(
                    f"{package}.{name} is a submodule: it cannot also be a lazy name of {package}"
                )

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
