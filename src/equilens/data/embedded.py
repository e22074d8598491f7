"""Datasets that ship inside the package (made by ``equilens generate``).

They are found with :mod:`importlib.resources`, so they work from an
installed package in any directory, not only from a checkout. In configs and
on the command line they are named ``embedded:NAME``:

- ``embedded:iron_water_xtb.extxyz``: 216 GFN1-xTB frames of Fe(110)/water
  (the default study's data);
- ``embedded:water_tensors/structures.extxyz`` with ``dipole.mts``,
  ``polarizability.mts``, ``density.mts``: PySCF tensors of water clusters.

``README.md`` next to them gives the commands, times and checksums.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import List

from ..errors import DatasetNotFoundError

EMBEDDED_PREFIX = "embedded:"


def _root() -> Path:
    return Path(str(resources.files("equilens.data").joinpath("embedded")))


def embedded_path(name: str) -> Path:
    """The installed path of the embedded file ``name`` (e.g.
    ``water_tensors/dipole.mts``)."""
    path = _root() / name
    if not path.is_file():
        raise DatasetNotFoundError(
            f"'{EMBEDDED_PREFIX}{name}' is not an embedded dataset; embedded files are: "
            + ", ".join(embedded_names())
        )
    return path


def embedded_names() -> List[str]:
    """Every embedded data file, relative to the embedded folder."""
    root = _root()
    return sorted(
        str(p.relative_to(root)).replace("\\", "/")
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (".extxyz", ".mts", ".xyz", ".traj")
    )
