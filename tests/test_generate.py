"""Data generators: GFN1-xTB iron/water dynamics (tblite)."""

import json

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


def test_checkpoint_drops_frames_it_does_not_know_even_half_written(tmp_path):
    """A generator killed anywhere resumes: before its first save (the fresh
    checkpoint exists from the start), after frames appended past the last
    save, or in the middle of writing one."""
    from ase.build import molecule

    from equilens.data.generate.common import Checkpoint, state_path

    output = tmp_path / "x.extxyz"
    frames = [molecule("H2O"), molecule("CH4"), molecule("NH3")]
    checkpoint = Checkpoint.open(state_path(output), "s", [output])
    assert state_path(output).is_file()
    checkpoint.append(output, frames[:1])  # killed here: nothing saved yet
    assert Checkpoint.open(state_path(output), "s", [output]).n_frames == 0
    assert output.stat().st_size == 0
    checkpoint = Checkpoint.open(state_path(output), "s", [output])
    checkpoint.append(output, frames[:2])
    checkpoint.save(1)
    checkpoint.append(output, frames[2:])
    with open(output, "a") as handle:  # a frame cut in the middle of its writing
        handle.write('3\nProperties=species:S:1:pos:R:3 pbc="F F F"\nO 0.0 0.0')
    resumed = Checkpoint.open(state_path(output), "s", [output])
    assert (resumed.done, resumed.n_frames) == (1, 2)
    assert [a.get_chemical_formula() for a in ase.io.read(output, ":")] == ["H2O", "CH4"]
    with pytest.raises(EquilensError, match="other settings"):
        Checkpoint.open(state_path(output), "other", [output])
    # a checkpoint of an earlier equilens counts frames only: they are kept
    old = json.loads(state_path(output).read_text())
    del old["sizes"]
    state_path(output).write_text(json.dumps(old))
    with open(output, "a") as handle:
        handle.write('3\nProperties=species:S:1:pos:R:3 pbc="F F F"\nO 0.0 0.0')
    resumed = Checkpoint.open(state_path(output), "s", [output])
    assert resumed.sizes == {"x.extxyz": output.stat().st_size}
    assert [a.get_chemical_formula() for a in ase.io.read(output, ":")] == ["H2O", "CH4"]
    resumed.save(resumed.done)  # the next save writes the sizes
    output.write_text("")
    with pytest.raises(EquilensError, match=r"x\.extxyz has 0 bytes"):
        Checkpoint.open(state_path(output), "s", [output])


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
    from equilens.data.generate.common import xtb_calculator

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
    from equilens.data.generate.common import xtb_calculator

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


ELEMENTS_TINY = dict(
    elements=("H", "C", "O", "Mg", "Si"),
    compositions=3,
    elements_per_cell=(2, 2),
    atoms=(6, 10),
    relax_steps=2,
    keep_every=1,
    rattled=1,
)


def _elements_lj():
    return LennardJones(sigma=0.8, epsilon=0.01, rc=3.0, smooth=True)


@pytest.fixture(scope="module")
def elements_xtb_run(tmp_path_factory):
    """The tiny ``generate elements`` set with real GFN1-xTB (a few seconds)."""
    pytest.importorskip("tblite", reason="tblite not installed (pip install equilens[xtb])")
    from equilens.data.generate import elements

    config = elements.ElementsConfig(**ELEMENTS_TINY)
    path = tmp_path_factory.mktemp("elements") / "el.extxyz"
    elements.generate_elements(path, config, progress=False)
    return config, path


def test_elements_xtb_frames_are_labelled_and_cover_the_pool(elements_xtb_run):
    import json

    from equilens.data.generate.common import xtb_calculator

    config, path = elements_xtb_run
    frames = ase.io.read(path, ":")
    state = json.loads(path.with_name(path.name + ".state").read_text())
    assert state["failed"] == [], "the tiny set's seed was chosen so that every SCF converges"
    assert len(frames) == config.compositions * config.frames_per_composition == 12
    assert {s for f in frames for s in f.get_chemical_symbols()} == set(config.elements)
    assert all(6 <= len(f) <= 10 and f.pbc.all() for f in frames)
    kinds = [(f.info["composition"], f.info["kind"], f.info["step"]) for f in frames]
    assert kinds[:4] == [(0, "relax", 0), (0, "relax", 1), (0, "relax", 2), (0, "rattled", 0)]
    for frame in frames:
        assert frame.info["method"] == "GFN1-xTB" and frame.info["seed"] == 0
        assert frame.info["version_tblite"] != "missing" and "version_ase" in frame.info
        assert np.isfinite(frame.get_potential_energy())
        assert frame.get_forces().shape == (len(frame), 3) and frame.get_stress().shape == (6,)
    assert frames[0].get_potential_energy() > frames[2].get_potential_energy()  # BFGS went down
    frame = frames[-1]  # a rattled frame, computed after a restart from the relaxed one
    atoms = frame.copy()
    atoms.calc = xtb_calculator(config.method, config.electronic_temperature)
    assert atoms.get_potential_energy() == pytest.approx(frame.get_potential_energy(), abs=1e-5)
    np.testing.assert_allclose(atoms.get_forces(), frame.get_forces(), atol=2e-4)
    np.testing.assert_allclose(atoms.get_stress(), frame.get_stress(), atol=1e-5)


def test_elements_xtb_interrupted_run_resumes_to_the_same_frames(
    elements_xtb_run, tmp_path, monkeypatch
):
    from equilens.data.generate import elements

    config, clean = elements_xtb_run
    original = elements._one_composition

    def interrupted(config, index, chosen, calc, provenance):
        if index == 1:
            raise KeyboardInterrupt
        return original(config, index, chosen, calc, provenance)

    monkeypatch.setattr(elements, "_one_composition", interrupted)
    with pytest.raises(KeyboardInterrupt):
        elements.generate_elements(tmp_path / "r.extxyz", config, progress=False)
    assert {f.info["composition"] for f in ase.io.read(tmp_path / "r.extxyz", ":")} == {0}
    monkeypatch.setattr(elements, "_one_composition", original)
    resumed = ase.io.read(elements.generate_elements(tmp_path / "r.extxyz", config, False), ":")
    frames = ase.io.read(clean, ":")
    assert len(resumed) == len(frames)
    for a, b in zip(resumed, frames):
        assert a.get_chemical_symbols() == b.get_chemical_symbols()
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-8)
        np.testing.assert_allclose(a.cell[:], b.cell[:], atol=1e-8)
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-7)
    with pytest.raises(EquilensError, match="other settings"):
        elements.generate_elements(
            tmp_path / "r.extxyz", elements.ElementsConfig(**{**ELEMENTS_TINY, "seed": 1}), False
        )


def test_elements_failed_and_absurd_compositions_are_skipped_and_recorded(tmp_path):
    import json

    from ase.calculators.calculator import CalculationFailed

    from equilens.data.generate import elements

    config = elements.ElementsConfig(
        **{**ELEMENTS_TINY, "elements": ("C", "O", "Mg", "Si"), "compositions": 3}
    )
    plan = elements.composition_plan(config)
    assert {e for chosen in plan for e in chosen} == set(config.elements)  # cycled, not by chance
    bad = sorted(elements.random_cell(config, 1, plan[1]).numbers)  # composition 1's SCF fails

    class FailingLJ(LennardJones):
        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            if atoms is not None and sorted(atoms.numbers) == bad:
                raise CalculationFailed("SCF not converged in 250 cycles")
            super().calculate(atoms, properties, system_changes)

    calculator = FailingLJ(sigma=0.8, epsilon=0.01, rc=3.0, smooth=True)
    path = elements.generate_elements(tmp_path / "e.extxyz", config, False, calculator)
    state = json.loads((tmp_path / "e.extxyz.state").read_text())
    assert state["done"] == 3 and [f["composition"] for f in state["failed"]] == [1]
    assert "SCF not converged" in state["failed"][0]["reason"]
    assert {f.info["composition"] for f in ase.io.read(path, ":")} == {0, 2}
    assert state["n_frames"] == 2 * config.frames_per_composition
    elements.generate_elements(path, config, False, calculator)  # finished: nothing to do
    assert len(ase.io.read(path, ":")) == state["n_frames"]
    # a force above max_force is an absurd result: the composition is skipped too
    strict = elements.ElementsConfig(**{**ELEMENTS_TINY, "max_force": 1e-9})
    elements.generate_elements(tmp_path / "s.extxyz", strict, False, _elements_lj())
    state = json.loads((tmp_path / "s.extxyz.state").read_text())
    assert len(state["failed"]) == 3 and "absurd" in state["failed"][0]["reason"]


def test_elements_random_cells_keep_atoms_apart(tmp_path):
    from ase.data import covalent_radii
    from ase.geometry import get_distances

    from equilens.data.generate import elements

    config = elements.ElementsConfig(compositions=8)
    for index, chosen in enumerate(elements.composition_plan(config)):
        atoms = elements.random_cell(config, index, chosen)
        assert 8 <= len(atoms) <= 24 and set(atoms.get_chemical_symbols()) == set(chosen)
        assert 2 <= len(chosen) <= 4
        _, distances = get_distances(atoms.positions, cell=atoms.cell, pbc=True)
        radii = covalent_radii[atoms.numbers]
        closest = 0.8 * (radii[:, None] + radii[None, :])
        off_diagonal = ~np.eye(len(atoms), dtype=bool)
        assert (distances[off_diagonal] >= closest[off_diagonal] - 1e-9).all()
        again = elements.random_cell(config, index, chosen)
        assert np.array_equal(atoms.positions, again.positions)  # the seed decides


@pytest.mark.parametrize(
    "field, value",
    [
        ("elements", ("H", "Xx")),
        ("elements", ("H", "H")),
        ("elements_per_cell", (3, 2)),
        ("atoms", (2, 24)),
        ("relax_steps", 0),
        ("rattle", -0.1),
        ("packing", 1.5),
        ("method", "GFN3-xTB"),
        ("electronic_temperature", 0.0),
    ],
)
def test_elements_bad_config_names_the_field(field, value):
    from equilens.config import from_mapping
    from equilens.data.generate.elements import ElementsConfig
    from equilens.errors import ConfigError

    with pytest.raises(ConfigError, match=f"^{field} must be"):
        ElementsConfig(**{field: value})
    with pytest.raises(ConfigError, match=f"gen.yaml: {field} must be"):
        from_mapping(ElementsConfig, {field: list(value) if isinstance(value, tuple) else value},
                     where="gen.yaml")  # fmt: skip
