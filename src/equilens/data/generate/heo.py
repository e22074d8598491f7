"""Rock-salt high-entropy oxides labelled with GFN1-xTB (tblite).

The default set, ``equilens generate heo``: the cation sublattice of a
rock-salt supercell of ``formula_units`` primitive cells (20: 40 atoms, 4 of
each of Mg, Co, Ni, Cu, Zn; the most cubic supercell of that size, from
ASE's ``find_optimal_cell_shape``, so that the substitution is random in all
three directions) filled by a random permutation of an equimolar cation list,
one per start. The starting lattice constant, 4.47 Å, is GFN1-xTB's volume
per formula unit found in a first attempt (about 22.4 Å^3; experiment 19.1).
Each start is

1. relaxed (positions and cell, BFGS on ASE's ``FrechetCellFilter``) to
   ``fmax`` or ``relax_steps``; every ``keep_every``-th step is kept
   (``kind = relax``) and the last one is the reference minimum
   (``kind = minimum``, also written to ``OUTPUT.minima.extxyz``);
2. rattled ``rattled`` times around its minimum (Gaussian displacements of
   ``rattle`` Å and a random symmetric strain of up to ``strain``;
   ``kind = rattled``).

Every frame has energy, forces and stress (xTB with Ewald sums), and its
provenance (method, start, kind, step, seed, package versions) in ``info``.
After each finished start the frames are appended and a JSON checkpoint is
written, so an interrupted run resumes at the next start (the relaxation of
the start in progress is redone). A start whose xTB calculation fails (an SCF
that does not converge) is skipped with a printed line and recorded in the
checkpoint's ``failed`` list.

What GFN1-xTB gets wrong here: it is a spin-restricted tight-binding method,
so the open-shell Co(II) d7, Ni(II) d8 and Cu(II) d9 ions of (Mg,Co,Ni,Cu,Zn)O
are treated as non-magnetic, with fractional occupations from the electronic
temperature (1000 K) instead of their antiferromagnetic order; there is no
Hubbard-like correction of d-electron self-interaction (the DFT+U that
oxide studies use), the Jahn-Teller distortion around Cu(II) is not reliably
reproduced, and its lattice constants and formation energies for transition-
metal oxides are not those of DFT or experiment. It is a cheap, offline,
deterministic level of theory for testing the workflow (curation, fine-
tuning, relaxation), not a model of the real material.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import ase
import ase.io
import numpy as np
from ase.build import bulk
from ase.calculators.calculator import CalculationFailed
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS
from tqdm.auto import tqdm

from ...errors import ConfigError
from ...provenance import package_versions
from .common import Checkpoint, check_size, fingerprint, labelled, state_path, xtb_calculator


@dataclass
class HeoConfig:
    """Settings of ``equilens generate heo`` (see the module docstring).

    :param cations: the cations, equimolar on the cation sublattice
    :param anion: the anion
    :param formula_units: primitive rock-salt cells in the supercell
    :param lattice: starting cubic lattice constant (Å)
    :param starts: random cation arrangements, each relaxed
    :param fmax: relaxation converged below this force (eV/Å)
    :param relax_steps: the most BFGS steps of a relaxation
    :param keep_every: every this-many relaxation steps a frame is kept
    :param rattled: rattled copies of each minimum
    :param rattle: standard deviation of the rattling displacements (Å)
    :param strain: the largest random symmetric strain of a rattled copy
    :param method: tblite method (``GFN1-xTB`` or ``GFN2-xTB``)
    :param electronic_temperature: tblite's electronic temperature (K)
    :param seed: seeds the arrangements and the rattling
    """

    cations: Tuple[str, ...] = ("Mg", "Co", "Ni", "Cu", "Zn")
    anion: str = "O"
    formula_units: int = 20
    lattice: float = 4.47
    starts: int = 5
    fmax: float = 0.05
    relax_steps: int = 200
    keep_every: int = 5
    rattled: int = 6
    rattle: float = 0.08
    strain: float = 0.02
    method: str = "GFN1-xTB"
    electronic_temperature: float = 1000.0
    seed: int = 0

    def __post_init__(self):
        if self.formula_units % len(self.cations):
            raise ConfigError(
                f"{self.formula_units} cation sites cannot hold {len(self.cations)} cations "
                "in equal numbers"
            )
        if self.starts < 1 or self.relax_steps < 1 or self.keep_every < 1:
            raise ConfigError("starts, relax_steps and keep_every must be >= 1")
        if self.rattled < 0 or not 0 <= self.rattle <= 0.5 or not 0 <= self.strain < 0.2:
            raise ConfigError("rattled must be >= 0, rattle in [0, 0.5] Å, strain in [0, 0.2)")
        if not (self.lattice > 0 and self.fmax > 0 and self.electronic_temperature > 0):
            raise ConfigError("lattice, fmax and electronic_temperature must be > 0")
        check_size(2 * self.formula_units, self.starts * (1 + self.rattled), "formula_units")
        check_size(0, self.relax_steps, "relax_steps")


def substituted(config: HeoConfig, start: int) -> ase.Atoms:
    """The rock-salt supercell of ``start`` with its random equimolar cations."""
    from ase.build import make_supercell
    from ase.build.supercells import find_optimal_cell_shape

    primitive = bulk("MgO", "rocksalt", a=config.lattice)
    shape = find_optimal_cell_shape(primitive.cell, config.formula_units, "sc", verbose=False)
    atoms = make_supercell(primitive, shape)
    sites = np.nonzero(atoms.numbers == 12)[0]
    cations = np.repeat(config.cations, len(sites) // len(config.cations))
    order = np.random.default_rng([config.seed, start]).permutation(len(sites))
    symbols = np.array(atoms.get_chemical_symbols(), dtype=object)
    symbols[sites[order]] = cations
    symbols[atoms.numbers == 8] = config.anion
    atoms.set_chemical_symbols(list(symbols))
    return atoms


def generate_heo(
    output, config: Optional[HeoConfig] = None, progress: bool = True, calculator=None
) -> Path:
    """Run (or resume) the relaxations and rattles; append frames to ``output``.

    :param calculator: an ASE calculator instead of tblite (tests)
    """
    config = config or HeoConfig()
    output = Path(output)
    minima_path = output.with_name(output.stem + ".minima.extxyz")
    outputs = [output, minima_path]
    checkpoint = Checkpoint.open(state_path(output), fingerprint(config), outputs)
    calc = calculator or xtb_calculator(config.method, config.electronic_temperature)
    provenance = {
        "method": config.method if calculator is None else type(calculator).__name__,
        "electronic_temperature_K": config.electronic_temperature,
        "seed": config.seed,
        **{f"version_{k}": v for k, v in package_versions(["equilens", "tblite", "ase"]).items()},
    }
    bar = tqdm(total=config.starts, initial=checkpoint.done, desc="HEO starts", unit="start",
               disable=not progress)  # fmt: skip
    with bar:
        for start in range(checkpoint.done, config.starts):
            try:
                frames, minimum = _one_start(config, start, calc, provenance)
            except CalculationFailed as error:  # e.g. an SCF that does not converge
                reason = str(error).strip().splitlines()[0][:200]
                bar.write(f"HEO start {start} skipped: {reason}")
                frames, minimum = [], None
                checkpoint.failed.append({"start": start, "reason": reason})
            checkpoint.append(output, frames)
            checkpoint.append(minima_path, [minimum] if minimum is not None else [])
            checkpoint.save(start + 1)
            bar.update(1)
    return output


def _one_start(config: HeoConfig, start: int, calc, provenance):
    """The kept frames of one start, and its minimum."""
    atoms = substituted(config, start)
    atoms.calc = calc
    frames: List[ase.Atoms] = []
    optimizer = BFGS(FrechetCellFilter(atoms), logfile=None)  # type: ignore[arg-type]
    step = 0
    for step, _ in enumerate(optimizer.irun(fmax=config.fmax, steps=config.relax_steps)):
        if step % config.keep_every == 0:
            frames.append(_labelled(atoms, provenance, start, "relax", step))
    minimum = _labelled(atoms, provenance, start, "minimum", step)
    frames.append(minimum)
    rng = np.random.default_rng([config.seed, start, 2])
    for index in range(config.rattled):
        moved = minimum.copy()
        strain = rng.uniform(-config.strain, config.strain, (3, 3))
        moved.set_cell(moved.cell @ (np.eye(3) + 0.5 * (strain + strain.T)), scale_atoms=True)
        moved.positions += rng.normal(0.0, config.rattle, moved.positions.shape)
        moved.calc = calc
        frames.append(_labelled(moved, provenance, start, "rattled", index))
    return frames, minimum


def _labelled(atoms: ase.Atoms, provenance: dict, start: int, kind: str, step: int) -> ase.Atoms:
    info = {**provenance, "start": start, "kind": kind, "step": step}
    return labelled(atoms, info, f"HEO start {start}, {kind} {step}")


def held_out_starts(
    frames: Sequence[ase.Atoms],
    minima: Sequence[ase.Atoms],
    n_test: int,
    config: Optional[HeoConfig] = None,
) -> Dict[str, List[ase.Atoms]]:
    """Split a generated set by start, so that no held-out arrangement of
    the cations was seen in training: the frames of the last ``n_test``
    starts are ``test``, the others ``train``; ``minima`` are the held-out
    starts' minima and ``parents`` their unrelaxed substituted rock salts
    (:func:`substituted` with ``config``, the generator's settings), the
    out-of-distribution starting points of a relaxation benchmark."""
    config = config or HeoConfig()

    def start_of(atoms: ase.Atoms, where: str) -> int:
        if "start" not in atoms.info:
            raise ConfigError(f"{where}: a frame without the 'start' of equilens generate heo")
        return int(atoms.info["start"])

    starts = sorted({start_of(atoms, "frames") for atoms in frames})
    if not 0 < n_test < len(starts):
        raise ConfigError(f"cannot hold out {n_test} of {len(starts)} starts (0 < n < starts)")
    held = set(starts[-n_test:])
    return {
        "train": [atoms for atoms in frames if start_of(atoms, "frames") not in held],
        "test": [atoms for atoms in frames if start_of(atoms, "frames") in held],
        "minima": [atoms for atoms in minima if start_of(atoms, "minima") in held],
        "parents": [substituted(config, start) for start in sorted(held)],
    }
