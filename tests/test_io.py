"""Reading the reference datasets and rejecting bad input with clear errors."""

from __future__ import annotations

import re
import warnings

import ase
import ase.io
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from equilens.data.io import ReadOptions, read_dataset, validate_frames
from equilens.data.reference import manifest
from equilens.errors import DataError, EquilensError

EXPECTED = {
    # name: (frames, atoms per frame, formula, periodic)
    "iron_water/train": (360, 164, "H88Fe32O44", True),
    "iron_water/test": (41, 164, "H88Fe32O44", True),
    "water/train": (842, 66, "H44O22", True),
    "water/validation": (200, 60, "H40O20", True),
    "water_molecule/train": (150, 3, "H2O", False),
    "water_molecule/validation": (150, 3, "H2O", False),
}


def test_manifest_lists_every_reference_file():
    assert set(manifest()) == set(EXPECTED)
    for entry in manifest().values():
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        assert entry.url.startswith("https://")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_read_reference_dataset(reference, name):
    n_frames, n_atoms, formula, periodic = EXPECTED[name]
    dataset = read_dataset(reference(name), ReadOptions(require_energy=True, require_forces=True))
    assert len(dataset) == n_frames
    assert dataset.n_atoms == n_frames * n_atoms
    assert dataset.energies.shape == (n_frames,)
    assert dataset.energies.dtype == np.float64
    assert len(dataset.forces) == n_frames
    for atoms, forces in zip(dataset.frames, dataset.forces):
        assert atoms.get_chemical_formula() == formula
        assert bool(atoms.pbc.any()) == periodic
        assert forces.shape == (n_atoms, 3)
    np.testing.assert_array_equal(dataset.frame_indices, np.arange(n_frames))
    assert dataset.skipped == ()

    # units: eV and eV/Angstrom. RMS forces of real MD are O(0.1 - 10) eV/A
    # (in Hartree/Bohr or kcal/mol/A they would be 50x smaller or 23x larger),
    # and energies within one set spread by less than 3 eV/atom (the hot
    # iron/water frames reach 2.5 eV/atom; kJ/mol would be ~100x more).
    forces = np.concatenate(dataset.forces)
    assert 0.05 < np.sqrt(np.mean(forces**2)) < 20.0
    per_atom = dataset.energies / n_atoms
    assert np.ptp(per_atom) < 3.0
    # energies agree with what ASE reports directly
    first = ase.io.read(reference(name), index=0)
    assert dataset.energies[0] == first.get_potential_energy()
    np.testing.assert_array_equal(dataset.forces[0], first.get_forces())


def test_water_validation_cell_is_left_handed(reference):
    dataset = read_dataset(reference("water/validation"), ReadOptions(index="0"))
    cell = dataset.frames[0].cell.array
    assert np.linalg.det(cell) < 0
    np.testing.assert_allclose(np.abs(np.diag(cell)), 8.214, atol=1e-3)


def test_index_selection_keeps_file_indices(reference):
    dataset = read_dataset(reference("water/validation"), ReadOptions(index="10:40:10"))
    np.testing.assert_array_equal(dataset.frame_indices, [10, 20, 30])
    subset = dataset.subset([2, 0])
    np.testing.assert_array_equal(subset.frame_indices, [30, 10])
    assert subset.energies[0] == dataset.energies[2]


# --- bad input ------------------------------------------------------------


def _water(energy=-10.0, forces=True, shift=0.0):
    atoms = ase.Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    atoms.positions += shift
    results = {}
    if energy is not None:
        results["energy"] = energy
    if forces is True:
        results["forces"] = np.zeros((3, 3))
    elif forces is not None:
        results["forces"] = forces
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def _write(tmp_path, frames, name="data.extxyz"):
    path = tmp_path / name
    ase.io.write(path, frames)
    return path


def _raises(match, function, *args, **kwargs):
    with pytest.raises(DataError, match=match) as info:
        function(*args, **kwargs)
    assert isinstance(info.value, EquilensError)
    return info.value


def test_missing_file(tmp_path):
    error = _raises("does not exist", read_dataset, tmp_path / "nope.xyz")
    assert "nope.xyz" in str(error)


def test_unreadable_file(tmp_path):
    path = tmp_path / "garbage.xyz"
    path.write_text("this is\nnot an xyz file\n")
    _raises("ASE could not read", read_dataset, path)


def test_missing_energy_names_file_and_frame(tmp_path):
    path = _write(tmp_path, [_water(), _water(), _water(energy=None, forces=None)])
    error = _raises(r"frame 2: missing energy", read_dataset, path)
    assert str(path) in str(error)
    assert error.frame == 2 and error.path == str(path)


def test_missing_energy_allowed_when_not_required(tmp_path):
    path = _write(tmp_path, [_water(), _water(energy=None, forces=None)])
    dataset = read_dataset(path, ReadOptions(require_energy=False))
    assert dataset.energies is None and len(dataset) == 2


def test_missing_forces_when_required(tmp_path):
    path = _write(tmp_path, [_water(), _water(forces=None)], name="data.traj")
    _raises(r"frame 1: missing forces", read_dataset, path, ReadOptions(require_forces=True))


def test_energy_from_info_key_and_hint(tmp_path):
    frames = [_water(energy=None, forces=None) for _ in range(2)]
    for i, atoms in enumerate(frames):
        atoms.info["dft_energy"] = -5.0 - i
        atoms.arrays["dft_forces"] = np.full((3, 3), 0.1 * i)
    path = _write(tmp_path, frames)
    error = _raises("available info keys: dft_energy", read_dataset, path)
    assert "energy_key" in str(error)
    dataset = read_dataset(
        path, ReadOptions(energy_key="dft_energy", forces_key="dft_forces", require_forces=True)
    )
    np.testing.assert_allclose(dataset.energies, [-5.0, -6.0])
    np.testing.assert_allclose(dataset.forces[1], 0.1)


def test_nan_energy(tmp_path):
    path = _write(tmp_path, [_water(), _water(energy=np.nan)], name="data.traj")
    _raises(r"frame 1: energy .* is nan", read_dataset, path)


def test_inf_forces(tmp_path):
    forces = np.zeros((3, 3))
    forces[2, 1] = np.inf
    path = _write(tmp_path, [_water(forces=forces)], name="data.traj")
    _raises(r"frame 0: forces .* NaN or inf for atoms 2", read_dataset, path)


def test_nan_positions():
    _raises(r"frame 0: non-finite positions", validate_frames, [_water(shift=np.nan)])


def test_wrong_force_shape():
    frames = [_water(), _water(forces=np.zeros((2, 3)))]
    _raises(r"frame 1: forces .* shape \(2, 3\), expected \(3, 3\)", validate_frames, frames)


def test_frame_without_atoms(tmp_path):
    empty = ase.Atoms()
    empty.calc = SinglePointCalculator(empty, energy=0.0)
    path = _write(tmp_path, [_water(), empty], name="data.traj")
    _raises(r"frame 1: the frame has no atoms", read_dataset, path)


def test_species_outside_list(tmp_path):
    frames = [_water(), _water()]
    frames[1].numbers[0] = 26
    path = _write(tmp_path, frames)
    error = _raises(
        r"frame 1: species Fe \(Z=26\) not in the allowed species \[H, O\]",
        read_dataset,
        path,
        ReadOptions(species=(1, 8)),
    )
    assert str(path) in str(error)


def test_singular_periodic_cell():
    atoms = _water()
    atoms.pbc = True
    atoms.cell = [[5, 0, 0], [10, 0, 0], [0, 0, 5]]
    _raises("linearly dependent", validate_frames, [atoms])


def test_empty_selection(tmp_path):
    path = _write(tmp_path, [_water(), _water()])
    _raises("contains no frames", read_dataset, path, ReadOptions(index="5:"))
    _raises("out of range", read_dataset, path, ReadOptions(index="7"))
    _raises("invalid frame selection", read_dataset, path, ReadOptions(index="a:b"))
    _raises("invalid frame selection", read_dataset, path, ReadOptions(index="::0"))


def test_skip_reports_how_many_and_which(tmp_path):
    frames = [_water(), _water(energy=np.nan), _water(), _water(energy=None, forces=None)]
    path = _write(tmp_path, frames, name="data.traj")
    with pytest.warns(UserWarning, match=r"skipped 2 of 4 frames \(frames 1, 3\)"):
        dataset = read_dataset(path, ReadOptions(on_error="skip"))
    assert len(dataset) == 2
    np.testing.assert_array_equal(dataset.frame_indices, [0, 2])
    assert [s.frame for s in dataset.skipped] == [1, 3]
    assert "nan" in dataset.skipped[0].reason and "missing energy" in dataset.skipped[1].reason


def test_skip_everything_is_an_error(tmp_path):
    path = _write(tmp_path, [_water(energy=None, forces=None)] * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _raises(
            "all 2 selected frames are invalid", read_dataset, path, ReadOptions(on_error="skip")
        )


def test_read_options_validation():
    with pytest.raises(ValueError):
        ReadOptions(on_error="ignore")
    with pytest.raises(ValueError):
        ReadOptions(species=(0, 1))
    assert ReadOptions(species=(8, 1, 8)).species == (1, 8)
