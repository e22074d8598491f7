"""Random periodic cells of many elements labelled with GFN1-xTB (tblite).

The default set, ``equilens generate elements``: 200 compositions of 2 to 4
distinct elements of a pool of 60 (:data:`POOL`), 8 to 24 atoms per cell,
three frames each. Many compositions with few frames each, rather than the
reverse: per-element energies are only identifiable (by the model's and the
baseline's least squares) when the training compositions outnumber the
elements; 64 compositions of 5 frames for 58 elements gave a composition
baseline 14.6 eV/atom off on held-out compositions.
The elements of a composition are the first ones not yet in it of a stream
of random permutations of the pool, so every element is drawn once the
compositions have drawn as many elements as the pool has (the first 18 by
default); later passes pair them anew. Each composition is

1. packed at random into a cubic or (half of them) triclinic cell (lengths
   within 20 %, angles 70 to 110 degrees) of volume the sum of the atoms'
   covalent spheres (``ase.data.covalent_radii``) over ``packing``, times
   0.9 to 1.2, no two atoms (or images) closer than ``min_distance`` times
   the sum of their covalent radii (the cell grows 5 % when one does not fit);
2. relaxed ``relax_steps`` BFGS steps (positions and cell, ASE's
   ``FrechetCellFilter``), every ``keep_every``-th step kept (``kind =
   relax``, step 0 the packing);
3. rattled ``rattled`` times around the last step (``rattle`` Å, ``kind =
   rattled``).

Every frame has energy, forces, stress and its provenance (method,
composition, kind, step, seed, versions) in ``info``. Frames are appended and
a JSON checkpoint written after each composition: an interrupted run resumes
at the next one with the same frames. A composition whose xTB calculation
fails (no SCF convergence, an overlap matrix that is not positive definite,
any tblite error) or is absurd (a force above ``max_force``, a charge above
``max_charge``) is skipped with a printed line and listed in the checkpoint's
``failed``: about a third of the default ones, so an element can be missing.

What GFN1-xTB gets wrong here: it was fitted to molecules, not to solids or
alloys, so cohesive energies, volumes and elastic properties are off by
amounts that vary from element to element; tblite samples the Brillouin zone
at Gamma only, far from converged in cells of 8 to 24 atoms (metals above
all); it is spin-restricted (no magnetism for Cr, Mn, Fe, Co, Ni; fractional
occupations at 1000 K instead) without spin-orbit coupling (5d, 6p). In
dense cells it often fails outright: no SCF convergence with alkaline-earth
and early transition metals (bulk fcc Sr already), a singular overlap with
Ga, In, Sn (bulk Ga already), charge collapse (a Ti atom taking 26
electrons), and 10^5 eV per Cl, Br or I atom from the periodic halogen-bond
correction at close contacts (the same positions in a larger box are fine).
Reproducible labels over many elements for testing potentials and the
workflow, not a model of real materials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Type

import ase
import ase.io
import numpy as np
from ase.calculators.calculator import CalculationFailed, CalculatorError
from ase.data import atomic_numbers, covalent_radii
from ase.filters import FrechetCellFilter
from ase.geometry import cellpar_to_cell, get_distances
from ase.optimize import BFGS
from tqdm.auto import tqdm

from ...errors import ConfigError, EquilensError
from ...provenance import package_versions
from .common import Checkpoint, check_size, fingerprint, labelled, state_path, xtb_calculator

_SYMBOLS = """H Li Be B C N O F Na Mg Al Si P S Cl K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se
Br Rb Sr Y Zr Nb Mo Ru Rh Pd Ag Cd In Sn Sb Te I Cs Ba Hf Ta W Re Os Ir Pt Au Pb Bi"""
#: the default pool: 60 elements GFN1-xTB parametrises, H to Bi (no noble
#: gases, lanthanides, Tc, Po)
POOL = tuple(_SYMBOLS.split())
METHODS = ("GFN1-xTB", "GFN2-xTB", "IPEA1-xTB")


@dataclass(frozen=True)
class ElementsConfig:
    """Settings of ``equilens generate elements`` (see the module docstring).

    :param elements: the pool of element symbols (GFN-xTB covers H to Rn)
    :param compositions: number of random compositions (cells)
    :param elements_per_cell: (fewest, most) distinct elements in a cell
    :param atoms: (fewest, most) atoms in a cell
    :param packing: covalent-sphere volume over cell volume at the start
    :param min_distance: closest approach at the start, in sums of covalent radii
    :param relax_steps: BFGS steps from the random packing
    :param keep_every: keep every ``keep_every``-th relaxation step (0 included)
    :param relax_cell: relax the cell too (``FrechetCellFilter``)
    :param rattled: rattled copies of the last relaxation step
    :param rattle: standard deviation of the rattling displacements (Å)
    :param max_force: a larger force component (eV/Å) rejects the composition
    :param max_charge: a larger atomic partial charge (e) rejects the composition
    :param method: tblite method
    :param electronic_temperature: Fermi smearing of tblite (K)
    :param seed: everything random (compositions, cells, rattles) derives from it
    """

    elements: Tuple[str, ...] = POOL
    compositions: int = 200
    elements_per_cell: Tuple[int, int] = (2, 4)
    atoms: Tuple[int, int] = (8, 24)
    packing: float = 0.65
    min_distance: float = 0.8
    relax_steps: int = 4
    keep_every: int = 4
    relax_cell: bool = True
    rattled: int = 1
    rattle: float = 0.05
    max_force: float = 100.0
    max_charge: float = 5.0
    method: str = "GFN1-xTB"
    electronic_temperature: float = 1000.0
    seed: int = 0

    def __post_init__(self):
        for name in ("elements", "elements_per_cell", "atoms"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        pool = self.elements
        fewest, most = self.elements_per_cell
        rules = {  # field: (valid, what it must be)
            "elements": (
                len(pool) == len(set(pool)) > 0
                and all(0 < atomic_numbers.get(e, 0) <= 86 for e in pool),
                "distinct element symbols from H to Rn",
            ),
            "elements_per_cell": (
                1 <= fewest <= most <= len(pool),
                f"(fewest, most) with 1 <= fewest <= most <= {len(pool)} (the pool)",
            ),
            "atoms": (
                most <= self.atoms[0] <= self.atoms[1],
                f"(fewest, most) with {most} (elements_per_cell[1]) <= fewest <= most",
            ),
            "compositions": (self.compositions >= 1, ">= 1"),
            "relax_steps": (self.relax_steps >= 1, ">= 1"),
            "keep_every": (self.keep_every >= 1, ">= 1"),
            "rattled": (self.rattled >= 0, ">= 0"),
            "rattle": (self.rattle >= 0, ">= 0 Å"),
            "packing": (0 < self.packing <= 1, "in (0, 1]"),
            "min_distance": (0 < self.min_distance <= 1.2, "in (0, 1.2]"),
            "max_force": (self.max_force > 0, "> 0 eV/Å"),
            "max_charge": (self.max_charge > 0, "> 0 e"),
            "method": (self.method in METHODS, f"one of {', '.join(METHODS)}"),
            "electronic_temperature": (self.electronic_temperature > 0, "> 0 K"),
        }
        for name, (valid, rule) in rules.items():
            if not valid:
                raise ConfigError(f"{name} must be {rule}, got {getattr(self, name)!r}")
        check_size(self.atoms[1], self.compositions * (1 + self.rattled), "atoms, compositions")
        check_size(0, self.relax_steps, "relax_steps")

    @property
    def frames_per_composition(self) -> int:
        """Frames of a composition whose calculations all succeed."""
        return len(range(0, self.relax_steps + 1, self.keep_every)) + self.rattled


def composition_plan(config: ElementsConfig) -> List[Tuple[str, ...]]:
    """The distinct elements of every composition: the first ones of a stream
    of random permutations of the pool not yet in the composition."""
    rng = np.random.default_rng([config.seed, 0])
    queue: List[str] = []
    plan = []
    for _ in range(config.compositions):
        count = int(rng.integers(config.elements_per_cell[0], config.elements_per_cell[1] + 1))
        if len(queue) < len(config.elements) + count:
            queue.extend(rng.permutation(config.elements).tolist())
        chosen = list(dict.fromkeys(queue))[:count]  # the first distinct ones
        for element in chosen:
            queue.remove(element)
        plan.append(tuple(chosen))
    return plan


def random_cell(config: ElementsConfig, index: int, elements: Tuple[str, ...]) -> ase.Atoms:
    """The random packing of composition ``index`` (of ``elements``)."""
    rng = np.random.default_rng([config.seed, index, 1])
    n_atoms = int(rng.integers(config.atoms[0], config.atoms[1] + 1))
    counts = 1 + rng.multinomial(n_atoms - len(elements), np.ones(len(elements)) / len(elements))
    symbols = [e for e, c in zip(elements, counts) for _ in range(c)]
    symbols = [symbols[i] for i in rng.permutation(n_atoms)]
    radii = covalent_radii[[atomic_numbers[s] for s in symbols]]
    volume = 4 / 3 * np.pi * np.sum(radii**3) / config.packing * rng.uniform(0.9, 1.2)
    if rng.random() < 0.5:
        cell = np.eye(3)
    else:
        lengths = np.exp(rng.uniform(-0.2, 0.2, 3))
        cell = cellpar_to_cell([*lengths, *rng.uniform(70.0, 110.0, 3)])
    cell *= (volume / abs(np.linalg.det(cell))) ** (1 / 3)
    for _ in range(100):
        positions = _placed(cell, radii * config.min_distance, rng)
        if positions is not None:
            return ase.Atoms(symbols, positions, cell=cell, pbc=True)
        cell = cell * 1.05 ** (1 / 3)
    raise EquilensError(f"composition {index}: could not place {n_atoms} atoms")


def _placed(cell: np.ndarray, radii: np.ndarray, rng, tries: int = 200) -> Optional[np.ndarray]:
    """Random positions in ``cell`` with atoms i, j (and periodic images) at
    least ``radii[i] + radii[j]`` apart; ``None`` when one does not fit."""
    shifts = np.array([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)])
    shortest = np.linalg.norm(shifts[shifts.any(axis=1)] @ cell, axis=1).min()
    if shortest < 2 * radii.max():
        return None
    positions = rng.random((1, 3)) @ cell
    for radius in radii[1:]:
        candidates = rng.random((tries, 3)) @ cell
        _, distances = get_distances(candidates, positions, cell=cell, pbc=True)
        fits = (distances >= radius + radii[: len(positions)]).all(axis=1)
        if not fits.any():
            return None
        positions = np.vstack([positions, candidates[np.argmax(fits)]])
    return positions


def generate_elements(
    output, config: Optional[ElementsConfig] = None, progress: bool = True, calculator=None
) -> Path:
    """Run (or resume) the compositions; append their frames to ``output``.

    :param output: extended-XYZ file; ``OUTPUT.state`` holds the checkpoint
    :param config: the settings (default :class:`ElementsConfig`)
    :param progress: show a progress bar over compositions
    :param calculator: an ASE calculator instead of tblite (tests)
    :returns: ``output``
    """
    config = config or ElementsConfig()
    output = Path(output)
    checkpoint = Checkpoint.open(state_path(output), fingerprint(config), [output])

    def fresh():  # a new tblite calculator per composition: no SCF guess from another cell
        if calculator is not None:
            return calculator
        return xtb_calculator(config.method, config.electronic_temperature)

    provenance = {
        "method": config.method if calculator is None else type(calculator).__name__,
        "electronic_temperature_K": config.electronic_temperature,
        "seed": config.seed,
        **{f"version_{k}": v for k, v in package_versions(["equilens", "tblite", "ase"]).items()},
    }
    plan = composition_plan(config)
    bar = tqdm(total=config.compositions, initial=checkpoint.done, desc="compositions",
               unit="cell", disable=not progress)  # fmt: skip
    with bar:
        for index in range(checkpoint.done, config.compositions):
            try:
                frames = _one_composition(config, index, plan[index], fresh(), provenance)
            except _failures() as error:
                reason = f"{type(error).__name__}: {str(error).strip()}".splitlines()[0][:200]
                bar.write(f"composition {index} ({'-'.join(plan[index])}) skipped: {reason}")
                frames = []
                failure = {"composition": index, "elements": list(plan[index]), "reason": reason}
                checkpoint.failed.append(failure)
            checkpoint.append(output, frames)
            checkpoint.save(index + 1)
            bar.update(1)
    return output


def _one_composition(
    config: ElementsConfig, index: int, elements: Tuple[str, ...], calc, provenance: dict
) -> List[ase.Atoms]:
    """The kept relaxation steps and the rattled copies of composition ``index``."""
    atoms = random_cell(config, index, elements)
    atoms.calc = calc
    info = {**provenance, "composition": index}
    frames: List[ase.Atoms] = []
    target = FrechetCellFilter(atoms) if config.relax_cell else atoms
    optimizer = BFGS(target, logfile=None)  # type: ignore[arg-type]
    for step, _ in enumerate(optimizer.irun(fmax=0.0, steps=config.relax_steps)):
        _check_sane(atoms, config, f"relax {step}")
        if step % config.keep_every == 0:
            where = f"composition {index}, relax {step}"
            frames.append(labelled(atoms, {**info, "kind": "relax", "step": step}, where))
    rng = np.random.default_rng([config.seed, index, 2])
    for copy in range(config.rattled):
        moved = ase.Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
        moved.positions += rng.normal(0.0, config.rattle, moved.positions.shape)
        moved.calc = calc
        _check_sane(moved, config, f"rattled {copy}")
        where = f"composition {index}, rattled {copy}"
        frames.append(labelled(moved, {**info, "kind": "rattled", "step": copy}, where))
    return frames


def _check_sane(atoms: ase.Atoms, config: ElementsConfig, where: str) -> None:
    """Reject the charge collapses and runaway energies that GFN1-xTB falls
    into in dense random cells (a Ti atom taking 26 electrons, 10^6 eV/Å)."""
    energy = float(atoms.get_potential_energy())
    force = float(np.abs(atoms.get_forces()).max())
    charges = atoms.calc.results.get("charges")  # none from test calculators
    charge = 0.0 if charges is None else float(np.abs(charges).max())
    if not (np.isfinite(energy) and force <= config.max_force and charge <= config.max_charge):
        raise CalculationFailed(
            f"{where}: absurd xTB result, max |F| {force:.3g} eV/Å (max_force "
            f"{config.max_force}), max |q| {charge:.3g} e (max_charge {config.max_charge})"
        )


def _failures() -> Tuple[Type[BaseException], ...]:
    """The exceptions of a failed xTB calculation: ASE's calculator errors
    (``CalculationFailed``: no SCF convergence), runtime errors, tblite's own."""
    try:
        from tblite import exceptions
    except ImportError:
        return (CalculatorError, RuntimeError)
    return (CalculatorError, RuntimeError, exceptions.TBLiteTypeError, exceptions.TBLiteValueError)
