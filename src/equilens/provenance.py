"""Provenance: the versions of the packages that made a file."""

from __future__ import annotations

from importlib import metadata
from typing import Dict, Sequence

#: the packages recorded in equilens files by default
CORE_PACKAGES = ("equilens", "torch", "featomic", "metatensor-core", "numpy")


def package_versions(names: Sequence[str] = CORE_PACKAGES) -> Dict[str, str]:
    """Installed versions of ``names`` (``"missing"`` when not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions
