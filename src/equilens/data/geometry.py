"""Geometry checks of structures: overlapping atoms, found with vesin's
neighbour list (its cell list holds at most about one cell per atom, so a
frame in a huge periodic box costs what its atoms cost; ASE's cell list makes
one bin per cutoff-sized box and took 15 GB for one frame in a 10^6 Å cell)."""

from __future__ import annotations

from typing import Optional, Tuple

import ase
import numpy as np

from ..errors import DataError
from ..neighbors import neighbor_pairs


def check_geometry(atoms: ase.Atoms, where: str, min_distance: float = 0.5) -> None:
    """Fail with a clear error when two atoms overlap (closer than ``min_distance`` Å).

    Quantum-chemistry codes can spin for minutes on such geometries before
    failing, or return nonsense; descriptors get NaN gradients.

    :param where: names the file and frame in the error message
    """
    pair = closest_pair(atoms, min_distance)
    if pair is not None:
        i, j, d = pair
        raise DataError(
            f"{where}: atoms {i} ({atoms[i].symbol}) and {j} ({atoms[j].symbol}) are "
            f"{d:.3f} Å apart (less than {min_distance} Å): broken geometry"
        )


def closest_pair(atoms: ase.Atoms, cutoff: float) -> Optional[Tuple[int, int, float]]:
    """``(i, j, distance)`` of the closest pair of atoms under ``cutoff`` (Å,
    periodic images included, an atom and its own image too), or ``None``."""
    if len(atoms) < 2 and not np.any(atoms.pbc):
        return None
    i, j, d = neighbor_pairs(atoms, cutoff)
    if not len(d):
        return None
    k = int(np.argmin(d))
    return int(i[k]), int(j[k]), float(d[k])
