"""Physical labels against hand-computed values on small built structures."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bcc110

from equilens.analysis.labels import LabelConfig, atom_labels, switching


def _slab_with(adsorbate_positions, symbols):
    slab = bcc110("Fe", size=(2, 2, 2), vacuum=6.0, a=2.87)
    top = slab.positions[:, 2].max()
    ads = Atoms(symbols, positions=np.array(adsorbate_positions) + [1.0, 1.0, top])
    slab += ads
    slab.pbc = True
    return slab, top


def test_switching_function():
    assert switching(np.array([0.0]), 2.0)[0] == pytest.approx(1.0)
    assert switching(np.array([2.0]), 2.0)[0] == pytest.approx(0.5)
    assert switching(np.array([4.5]), 2.0)[0] == 0.0
    assert np.all(np.diff(switching(np.linspace(0.1, 3.9, 50), 2.0)) < 0)


def test_water_on_a_slab():
    # O 2.1 Å above the top layer, H's in a plane above it (1.0 Å O-H)
    slab, top = _slab_with([[0, 0, 2.1], [0.8, 0, 2.7], [-0.8, 0, 2.7]], "OHH")
    labels = atom_labels([slab], LabelConfig(smooth=False))
    o, h1 = len(slab) - 3, len(slab) - 2
    assert labels["o_state"][o] == 1 and labels["o_state"][h1] == 0
    assert labels["cn_o_h"][o] == 2
    assert labels["height"][o] == pytest.approx(2.1, abs=1e-9)
    distances = slab.get_distances(o, np.nonzero(slab.numbers == 26)[0], mic=True)
    # Fe-O counts sit on the Fe atoms: one per Fe within 2.5 Å of the O
    assert labels["cn_fe_o"].sum() == np.sum(distances < 2.5) > 0
    fe_o = LabelConfig(pairs={"O-Fe": 2.5}, smooth=False)
    assert atom_labels([slab], fe_o)["cn_o_fe"][o] == np.sum(distances < 2.5)
    assert labels["adsorbed"][o] == (distances.min() < 2.5)
    # smooth counts are the sum of switching functions
    smooth = atom_labels([slab], LabelConfig(pairs={"O-Fe": 2.5}))
    iron = slab.positions[slab.numbers == 26]
    shifts = [
        a * slab.cell[0] + b * slab.cell[1] for a in (-2, -1, 0, 1, 2) for b in (-2, -1, 0, 1, 2)
    ]
    images = np.concatenate([iron + shift for shift in shifts])
    all_distances = np.linalg.norm(images - slab.positions[o], axis=1)
    expected = switching(all_distances[all_distances < 5.0], 2.5).sum()
    assert smooth["cn_o_fe"][o] == pytest.approx(expected)


def test_iron_coordination_in_bulk_and_at_the_surface():
    slab = bcc110("Fe", size=(4, 4, 4), vacuum=6.0, a=2.87)
    slab.pbc = True
    cn = atom_labels([slab], LabelConfig(smooth=False))["cn_fe_fe"]
    z = np.round(slab.positions[:, 2] - slab.positions[:, 2].min(), 3)
    layers = np.unique(z)
    assert np.all(cn[z == layers[1]] == 8)  # bcc: 8 nearest neighbours at 2.485 Å
    assert np.all(cn[z == layers[-1]] == 6)  # (110) surface: 2 missing above


def test_hydroxyl_and_adatom():
    slab, _ = _slab_with([[0, 0, 1.9], [0, 0, 2.87], [1.5, 1.2, 1.8]], "OHO")
    labels = atom_labels([slab])
    hydroxyl, adatom = len(slab) - 3, len(slab) - 1
    assert labels["o_state"][hydroxyl] == 2
    assert labels["o_state"][adatom] == 3
    assert labels["adsorbed"][hydroxyl] == 1


def test_hydrogen_bonded_dimer():
    # donor O at the origin, its H pointing at the acceptor O 2.9 Å away along x
    dimer = Atoms(
        "OHHOHH",
        positions=[
            [0, 0, 0],
            [0.96, 0, 0],
            [-0.24, 0.93, 0],
            [2.9, 0, 0],
            [3.2, 0.0, 0.92],
            [3.2, 0.0, -0.92],
        ],
    )
    labels = atom_labels([dimer])
    assert labels["hbonds"].tolist() == [1, 0, 0, 1, 0, 0]
    assert labels["o_state"].tolist() == [1, 0, 0, 1, 0, 0]
    assert np.all(labels["height"] == 0)  # no metal
    # bend the donor H away by 60 degrees: no bond with a 30 degree criterion
    bent = dimer.copy()
    bent.positions[1] = [0.96 * np.cos(np.radians(60)), 0.96 * np.sin(np.radians(60)), 0]
    bent.positions[2] = [-0.24, -0.93, 0]
    assert atom_labels([bent])["hbonds"].tolist() == [0] * 6
    # labels of several frames are concatenated in order
    both = atom_labels([dimer, bent])
    assert both["hbonds"].tolist() == [1, 0, 0, 1, 0, 0] + [0] * 6
