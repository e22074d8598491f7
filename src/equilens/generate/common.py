"""Shared pieces of the data generators: geometry checks and provenance."""

from __future__ import annotations

from importlib import metadata
from typing import Dict, Sequence

import ase
import numpy as np

from ..errors import DataError


def check_geometry(atoms: ase.Atoms, where: str, min_distance: float = 0.5) -> None:
    """Fail with a clear error when two atoms overlap (closer than ``min_distance`` Å).

    Quantum-chemistry codes can spin for minutes on such geometries before
    failing, or return nonsense; this check is cheap (minimum-image
    distances).

    :param where: names the file and frame in the error message
    """
    if len(atoms) < 2:
        return
    distances = atoms.get_all_distances(mic=bool(np.any(atoms.pbc)))
    np.fill_diagonal(distances, np.inf)
    i, j = np.unravel_index(np.argmin(distances), distances.shape)
    if distances[i, j] < min_distance:
        raise DataError(
            f"{where}: atoms {i} ({atoms[i].symbol}) and {j} ({atoms[j].symbol}) are "
            f"{distances[i, j]:.3f} Å apart (less than {min_distance} Å): broken geometry"
        )


def package_versions(names: Sequence[str]) -> Dict[str, str]:
    """Installed versions of ``names`` (``"missing"`` when not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions
