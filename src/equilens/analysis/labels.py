"""Physical labels per atom for iron/water interfaces (and water in general).

:func:`atom_labels` returns one array per label over all atoms of a list of
frames (frame order, then atom order), computed from ASE neighbour lists
(vectorised; periodic cells respected):

- ``species``: atomic number;
- ``cn_fe_o``, ``cn_o_h``, ``cn_fe_fe``, ...: smooth coordination numbers
  ``sum_j s(r_ij)`` with the rational switching function
  ``s(r) = (1 - (r/r0)^6) / (1 - (r/r0)^12)`` (1 well inside ``r0``, 1/2 at
  ``r0``, and cut at ``2 r0``); set ``smooth=False`` for integer counts
  within ``r0``. Defaults: Fe-O 2.5 Å, O-H 1.25 Å, Fe-Fe 2.8 Å, Fe-H 2.0 Å;
- ``height``: distance above the top metal layer (mean z of the metal atoms
  within 1 Å of the highest one), NaN-free: 0 for frames without metal;
- ``hbonds``: hydrogen bonds of each O as donor or acceptor with the
  geometric criterion O···O < 3.5 Å and angle H-O_donor···O_acceptor < 30°;
- ``o_state``: 0 not an oxygen, 1 water (2 H within 1.25 Å), 2 hydroxyl
  (1 H), 3 O adatom (0 H), 4 other (3 H or more);
- ``adsorbed``: 1 for an O within ``adsorption_cutoff`` (2.5 Å) of a metal
  atom, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Sequence

import ase
import numpy as np
from ase.neighborlist import neighbor_list

from ..errors import ConfigError

O_STATES = {0: "not O", 1: "water", 2: "hydroxyl", 3: "O adatom", 4: "other"}
CATEGORICAL = ("species", "o_state", "adsorbed")


@dataclass
class LabelConfig:
    """Cutoffs (Å) of the physical labels (the ``labels:`` section).

    :param pairs: ``"A-B"`` -> ``r0`` of the coordination numbers ``cn_a_b``
    :param smooth: smooth coordination numbers (rational switching function,
        1/2 at ``r0``, cut at ``2 r0``); ``false`` for integer counts within ``r0``
    :param metal: the element of the surface (heights and adsorption are
        measured from it)
    :param oh_bond: an H within this distance of an O is bonded to it (water,
        hydroxyl, O adatom)
    :param hbond_distance: the largest O···O distance of a hydrogen bond
    :param hbond_angle: the largest H-O_donor···O_acceptor angle of a hydrogen
        bond (degrees)
    :param adsorption_cutoff: an O within this distance of a metal atom is adsorbed
    """

    pairs: Dict[str, float] = field(
        default_factory=lambda: {"Fe-O": 2.5, "O-H": 1.25, "Fe-Fe": 2.8, "Fe-H": 2.0}
    )
    smooth: bool = True
    metal: str = "Fe"
    oh_bond: float = 1.25
    hbond_distance: float = 3.5
    hbond_angle: float = 30.0
    adsorption_cutoff: float = 2.5

    def __post_init__(self):
        for pair, r0 in self.pairs.items():
            if len(pair.split("-")) != 2 or r0 <= 0:
                raise ConfigError(f"label pair {pair!r}: expected 'A-B' with a positive cutoff")


def switching(r: np.ndarray, r0: float) -> np.ndarray:
    """Rational switching function ``(1 - x^6) / (1 - x^12)``, ``x = r / r0``."""
    x = np.asarray(r, dtype=np.float64) / r0
    near = np.isclose(x, 1.0)
    x6 = np.where(near, 0.5, x**6)
    value = np.where(near, 0.5, 1.0 / (1.0 + x6))  # (1 - x^6)/(1 - x^12) = 1/(1 + x^6)
    return np.where(x < 2.0, value, 0.0)


def atom_labels(frames: Sequence[ase.Atoms], config: LabelConfig = None) -> Dict[str, np.ndarray]:
    """Labels of every atom of ``frames``; see the module documentation."""
    config = config or LabelConfig()
    per_frame = [_frame_labels(atoms, config) for atoms in frames]
    return {name: np.concatenate([f[name] for f in per_frame]) for name in per_frame[0]}


def _frame_labels(atoms: ase.Atoms, config: LabelConfig) -> Dict[str, np.ndarray]:
    numbers = atoms.numbers
    n = len(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    reach = max(
        [2 * r0 if config.smooth else r0 for r0 in config.pairs.values()]
        + [config.hbond_distance, config.adsorption_cutoff, config.oh_bond]
    )
    i, j, d, vectors = neighbor_list("ijdD", atoms, reach)
    labels: Dict[str, np.ndarray] = {"species": numbers.astype(np.int64)}
    for pair, r0 in config.pairs.items():
        a, b = pair.split("-")
        mask = (symbols[i] == a) & (symbols[j] == b)
        weights = switching(d[mask], r0) if config.smooth else (d[mask] < r0).astype(float)
        cn = np.bincount(i[mask], weights=weights, minlength=n)
        cn[symbols != a] = 0.0
        labels[f"cn_{a.lower()}_{b.lower()}"] = cn

    metal = symbols == config.metal
    z = atoms.positions[:, 2]
    if metal.any():
        top = z[metal].max()
        surface = z[metal & (z > top - 1.0)].mean()
        labels["height"] = z - surface
    else:
        labels["height"] = np.zeros(n)

    oxygen = symbols == "O"
    oh = oxygen[i] & (symbols[j] == "H") & (d < config.oh_bond)
    n_h = np.bincount(i[oh], minlength=n)
    state = np.zeros(n, dtype=np.int64)
    state[oxygen] = np.select(
        [n_h[oxygen] == 2, n_h[oxygen] == 1, n_h[oxygen] == 0], [1, 2, 3], default=4
    )
    labels["o_state"] = state
    near_metal = oxygen[i] & metal[j] & (d < config.adsorption_cutoff)
    labels["adsorbed"] = (np.bincount(i[near_metal], minlength=n) > 0).astype(np.int64)
    labels["hbonds"] = _hbonds(i, j, d, vectors, oxygen, oh, n, config)
    return labels


def _hbonds(i, j, d, vectors, oxygen, oh, n, config) -> np.ndarray:
    """Donor + acceptor H-bond count of each oxygen."""
    counts = np.zeros(n, dtype=np.int64)
    oo = oxygen[i] & oxygen[j] & (d < config.hbond_distance)
    if not oo.any() or not oh.any():
        return counts
    cos_max = np.cos(np.radians(config.hbond_angle))
    # the O-H unit vectors of each oxygen, padded with zeros (at most 4 per O)
    donors, units = i[oh], vectors[oh] / d[oh][:, None]
    slot = np.zeros(len(donors), dtype=np.int64)
    order = np.argsort(donors, kind="stable")
    first = np.searchsorted(donors[order], donors[order])
    slot[order] = np.arange(len(donors)) - first
    keep = slot < 4
    hydrogens = np.zeros((n, 4, 3))
    hydrogens[donors[keep], slot[keep]] = units[keep]
    donor, acceptor = i[oo], j[oo]
    to_acceptor = vectors[oo] / d[oo][:, None]
    cosines = np.einsum("kse,ke->ks", hydrogens[donor], to_acceptor)
    bonded = cosines.max(axis=1) >= cos_max
    np.add.at(counts, donor[bonded], 1)
    np.add.at(counts, acceptor[bonded], 1)
    return counts
