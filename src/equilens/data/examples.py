"""A small built-in example: water molecules above an Fe(110) slab.

The structures are built with ASE from a seed (no file, no reference
calculation), so they exist on any machine. They carry no energies: they are
for the descriptor step, smoke tests and demonstrations. Labelled data come
from :mod:`equilens.data.io` and the reference datasets.
"""

from __future__ import annotations

from typing import List

import ase
import numpy as np
from ase.build import bcc110, molecule
from scipy.spatial.transform import Rotation


def iron_water_example(
    n_frames: int = 8,
    n_water: int = 4,
    size: tuple = (3, 3, 3),
    vacuum: float = 8.0,
    rattle: float = 0.05,
    seed: int = 0,
) -> List[ase.Atoms]:
    """Fe(110) slabs with ``n_water`` randomly placed and oriented molecules.

    :param n_frames: number of structures
    :param n_water: water molecules per structure, placed 1.8 to 4.5 Å above the
        top Fe layer, at least 2.2 Å (O-O) apart
    :param size: slab repetitions (a, b, layers) of ``ase.build.bcc110``
    :param vacuum: vacuum above and below the slab, in Å
    :param rattle: standard deviation of a Gaussian displacement of every atom
    :param seed: the structures depend only on this seed and the sizes
    """
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        slab = bcc110("Fe", size=size, vacuum=vacuum, a=2.87)
        top = slab.positions[:, 2].max()
        cell = slab.cell.array
        oxygens: List[np.ndarray] = []
        for _ in range(n_water):
            water = molecule("H2O")
            water.positions -= water.positions[0]  # oxygen at the origin
            water.positions = Rotation.random(random_state=rng).apply(water.positions)
            for _attempt in range(1000):
                fractional = rng.uniform(0, 1, size=2)
                xy = fractional @ cell[:2, :2]
                position = np.array([xy[0], xy[1], top + rng.uniform(1.8, 4.5)])
                if all(_periodic_xy_distance(position, o, cell) > 2.2 for o in oxygens):
                    break
            else:  # pragma: no cover - only with absurd coverages
                raise ValueError(f"could not place {n_water} water molecules")
            oxygens.append(position)
            water.positions += position
            slab += water
        slab.positions += rng.normal(0.0, rattle, size=slab.positions.shape)
        slab.pbc = True
        frames.append(slab)
    return frames


def _periodic_xy_distance(a: np.ndarray, b: np.ndarray, cell: np.ndarray) -> float:
    """Minimum-image distance between two points, periodic in the slab plane."""
    delta = a - b
    fractional = np.linalg.solve(cell[:2, :2].T, delta[:2])
    fractional -= np.round(fractional)
    in_plane = fractional @ cell[:2, :2]
    return float(np.sqrt(in_plane @ in_plane + delta[2] ** 2))
