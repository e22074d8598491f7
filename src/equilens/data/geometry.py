"""Geometry checks of structures: overlapping atoms."""

from __future__ import annotations

import ase
import numpy as np

from ..errors import DataError


def check_geometry(atoms: ase.Atoms, where: str, min_distance: float = 0.5) -> None:
    """Fail with a clear error when two atoms overlap (closer than ``min_distance`` Å).

    Quantum-chemistry codes can spin for minutes on such geometries before
    failing, or return nonsense; descriptors get NaN gradients. The check is
    cheap (minimum-image distances).

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


def closest_pair(atoms: ase.Atoms, cutoff: float):
    """``(i, j, distance)`` of the closest pair of atoms under ``cutoff`` (Å,
    minimum image), or ``None``."""
    from ase.neighborlist import neighbor_list

    probe = atoms
    if not np.any(atoms.pbc):  # no cell needed for an isolated structure
        probe = ase.Atoms(atoms.numbers, atoms.positions)
    # a search radius of at least 1 Å keeps ASE's cell list coarse: bins of
    # the size of a tiny cutoff make ~1e6-bin arrays per frame (measured to
    # slow the whole process down afterwards, through the allocator)
    i, j, d = neighbor_list("ijd", probe, max(cutoff, 1.0), self_interaction=False)
    mask = (i != j) & (d < cutoff)
    if not np.any(mask):
        return None
    k = int(np.argmin(np.where(mask, d, np.inf)))
    return int(i[k]), int(j[k]), float(d[k])
