"""Data generators: GFN1-xTB iron/water dynamics (tblite)."""

import ase.io
import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from equilens.data.generate import IronWaterConfig, generate_iron_water
from equilens.data.geometry import check_geometry
from equilens.errors import DataError, EquilensError

TINY = dict(size=(2, 1, 2), n_water=1, starts=2, steps=4, warmup=0, stride=2, vacuum=5.0)


class _Interrupt(Exception):
    pass


class _FailingLJ(LennardJones):
    """Lennard-Jones that dies after ``limit`` calculations (a killed job)."""

    def __init__(self, limit, **kwargs):
        super().__init__(**kwargs)
        self.limit = limit

    def calculate(self, *args, **kwargs):
        self.limit -= 1
        if self.limit < 0:
            raise _Interrupt()
        super().calculate(*args, **kwargs)


def _lj():
    return LennardJones(sigma=1.5, epsilon=0.01, rc=4.0)


def test_resume_reproduces_uninterrupted_run(tmp_path):
    config = IronWaterConfig(**{**TINY, "starts": 3, "steps": 6, "warmup": 1})
    full = generate_iron_water(tmp_path / "full.xyz", config, progress=False, calculator=_lj())
    broken = tmp_path / "broken.xyz"
    with pytest.raises(_Interrupt):
        generate_iron_water(
            broken,
            config,
            progress=False,
            calculator=_FailingLJ(9, sigma=1.5, epsilon=0.01, rc=4.0),
        )
    partial = len(ase.io.read(broken, ":"))
    assert 0 < partial < config.n_frames
    generate_iron_water(broken, config, progress=False, calculator=_lj())
    a, b = ase.io.read(full, ":"), ase.io.read(broken, ":")
    assert len(a) == len(b) == config.n_frames
    for x, y in zip(a, b):
        assert np.allclose(x.positions, y.positions, atol=1e-7)
        assert x.get_potential_energy() == pytest.approx(y.get_potential_energy(), abs=1e-7)
        assert (x.info["start"], x.info["step"]) == (y.info["start"], y.info["step"])
    # a finished run is not extended; other settings are refused
    generate_iron_water(full, config, progress=False, calculator=_lj())
    assert len(ase.io.read(full, ":")) == config.n_frames
    with pytest.raises(EquilensError, match="other settings"):
        generate_iron_water(
            full, IronWaterConfig(**{**TINY, "seed": 5}), progress=False, calculator=_lj()
        )


def test_same_seed_same_frames(tmp_path):
    config = IronWaterConfig(**TINY)
    one = generate_iron_water(tmp_path / "1.xyz", config, progress=False, calculator=_lj())
    two = generate_iron_water(tmp_path / "2.xyz", config, progress=False, calculator=_lj())
    assert one.read_bytes() == two.read_bytes()


def test_broken_geometry_is_a_clear_error():
    from ase.build import molecule

    water = molecule("H2O")
    water.positions[1] = water.positions[0] + [0.1, 0.0, 0.0]
    with pytest.raises(DataError, match=r"atoms 0 \(O\) and 1 \(H\) are 0.100 Å apart"):
        check_geometry(water, "water.xyz: frame 3")


@pytest.fixture(scope="module")
def xtb_frames(tmp_path_factory):
    pytest.importorskip("tblite", reason="tblite not installed (pip install equilens[xtb])")
    config = IronWaterConfig(**TINY)
    path = generate_iron_water(tmp_path_factory.mktemp("xtb") / "fe.xyz", config, progress=False)
    return config, ase.io.read(path, ":")


def test_xtb_frames_match_a_direct_call(xtb_frames):
    from equilens.data.generate.iron_water import xtb_calculator

    config, frames = xtb_frames
    assert len(frames) == config.n_frames
    assert frames[0].info["method"] == "GFN1-xTB" and "version_tblite" in frames[0].info
    frame = frames[-1]
    atoms = frame.copy()
    atoms.calc = xtb_calculator(config.method, config.electronic_temperature)
    assert atoms.get_potential_energy() == pytest.approx(frame.get_potential_energy(), abs=1e-5)
    assert np.allclose(atoms.get_forces(), frame.get_forces(), atol=2e-4)
    # the frames differ: the dynamics moved
    assert not np.allclose(frames[0].positions, frames[1].positions)


def test_xtb_forces_are_minus_the_energy_gradient(xtb_frames):
    from equilens.data.generate.iron_water import xtb_calculator

    config, frames = xtb_frames
    atoms = frames[1].copy()
    atoms.calc = xtb_calculator(config.method, config.electronic_temperature)
    forces = atoms.get_forces()
    h = 1e-3
    for atom in (0, len(atoms) - 3, len(atoms) - 1):  # an Fe, the O, an H
        for axis in range(3):
            positions = atoms.positions.copy()
            energies = []
            for sign in (1, -1):
                shifted = positions.copy()
                shifted[atom, axis] += sign * h
                atoms.positions = shifted
                energies.append(atoms.get_potential_energy())
            atoms.positions = positions
            numeric = -(energies[0] - energies[1]) / (2 * h)
            assert numeric == pytest.approx(forces[atom, axis], abs=3e-4)


def _heo_lj():
    return LennardJones(sigma=2.0, epsilon=0.05, rc=4.5, smooth=True)


def test_heo_generator_relaxes_rattles_and_resumes(tmp_path, monkeypatch):
    """``generate heo`` with a cheap calculator: equimolar cations, relaxation
    frames, the minimum and rattled frames with stress; a run interrupted
    after its first start resumes to the same frames as an uninterrupted run."""
    from equilens.data.generate import heo

    config = heo.HeoConfig(starts=2, relax_steps=6, keep_every=2, rattled=2)
    clean = heo.generate_heo(tmp_path / "clean.extxyz", config, False, _heo_lj())
    frames = ase.io.read(clean, ":")
    kinds = [f.info["kind"] for f in frames]
    assert kinds.count("minimum") == 2 and kinds.count("rattled") == 4
    counts = {s: frames[0].get_chemical_symbols().count(s) for s in config.cations}
    assert set(counts.values()) == {4} and frames[0].get_chemical_symbols().count("O") == 20
    assert frames[0].get_chemical_symbols() != frames[-1].get_chemical_symbols()  # 2 starts
    assert all(f.get_stress().shape == (6,) for f in frames)
    minima = ase.io.read(tmp_path / "clean.minima.extxyz", ":")
    assert len(minima) == 2 and minima[0].get_potential_energy() < frames[0].get_potential_energy()

    original = heo._one_start

    def interrupted(config, start, calc, provenance):
        if start == 1:
            raise KeyboardInterrupt
        return original(config, start, calc, provenance)

    monkeypatch.setattr(heo, "_one_start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        heo.generate_heo(tmp_path / "resumed.extxyz", config, False, _heo_lj())
    monkeypatch.setattr(heo, "_one_start", original)
    resumed = ase.io.read(
        heo.generate_heo(tmp_path / "resumed.extxyz", config, False, _heo_lj()), ":"
    )
    assert len(resumed) == len(frames)
    for a, b in zip(resumed, frames):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-8)
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-8)
    with pytest.raises(EquilensError, match="other settings"):
        heo.generate_heo(tmp_path / "resumed.extxyz", heo.HeoConfig(starts=3), False, _heo_lj())


def test_heo_start_whose_calculation_fails_is_skipped_and_recorded(tmp_path):
    import json

    from ase.calculators.calculator import CalculationFailed

    from equilens.data.generate import heo

    config = heo.HeoConfig(starts=2, relax_steps=4, keep_every=2, rattled=1)
    bad = heo.substituted(config, 1).numbers  # start 1's cations: its "SCF" fails

    class Failing(LennardJones):
        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            if atoms is not None and (atoms.numbers == bad).all():
                raise CalculationFailed("SCF not converged in 250 cycles")
            super().calculate(atoms, properties, system_changes)

    calculator = Failing(sigma=2.0, epsilon=0.05, rc=4.5, smooth=True)
    heo.generate_heo(tmp_path / "h.extxyz", config, False, calculator)
    state = json.loads((tmp_path / "h.extxyz.state").read_text())
    assert state["done"] == 2 and [f["start"] for f in state["failed"]] == [1]
    assert "SCF not converged" in state["failed"][0]["reason"]
    assert len(ase.io.read(tmp_path / "h.minima.extxyz", ":")) == 1
    assert {f.info["start"] for f in ase.io.read(tmp_path / "h.extxyz", ":")} == {0}
    heo.generate_heo(tmp_path / "h.extxyz", config, False, calculator)  # finished: nothing to do
