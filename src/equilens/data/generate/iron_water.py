"""Labelled iron/water frames from GFN1-xTB Langevin dynamics (tblite).

Sampling scheme (chosen for a default set made in about an hour on 2 cores):
many short trajectories from randomised starts rather than one long one.
Each start is an Fe(110) slab with water molecules placed and oriented at
random 1.8 to 4.5 Å above it (:func:`equilens.data.examples.iron_water_example`,
the same builder as the embedded example), atoms rattled, velocities drawn at
``temperature``; the bottom Fe layer is fixed. Langevin dynamics runs
``steps`` steps and every ``stride``-th step after ``warmup`` is kept with its
energy and forces. Independent starts decorrelate the set far faster than
one trajectory would (water reorientation takes picoseconds), and a small
slab (3x2x3 Fe, 3 waters, 27 atoms: about 1 s per xTB call here against
10 to 25 s for 51 atoms) makes a couple of thousand calls affordable.

Every kept frame is appended to an extended-XYZ file with its provenance in
``info``; after each one the dynamics state (positions, momenta, random
generator) is checkpointed atomically, so an interrupted run continues where
it stopped and produces the same frames as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import ase
import ase.io
import numpy as np
from ase import units
from ase.constraints import FixAtoms
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta
from tqdm.auto import tqdm

from ...errors import ConfigError
from ...provenance import package_versions
from ..examples import iron_water_example
from ..geometry import check_geometry
from .common import Checkpoint, check_size, fingerprint, labelled, state_path, xtb_calculator

#: the surface area (Å^2) one water molecule needs in the 2.7 Å layer the
#: starting structures place them in at random, oxygens at least 2.2 Å apart
#: (random sequential placement jams near 3 Å^2 per molecule there; beyond
#: this the placement retries for minutes before it gives up)
WATER_AREA = 4.0


def _slab_area(size: Tuple[int, int, int]) -> float:
    """The area of the surface cell of an Fe(110) slab of ``size``."""
    from ase.build import bcc110

    cell = bcc110("Fe", size=(size[0], size[1], 1), a=2.87).cell.array
    return float(np.linalg.norm(np.cross(cell[0], cell[1])))


@dataclass
class IronWaterConfig:
    """Settings of ``equilens generate iron-water``.

    :param size: Fe(110) slab repetitions (a, b, layers), ``ase.build.bcc110``
    :param n_water: water molecules per start
    :param vacuum: vacuum above and below the slab (Å)
    :param rattle: Gaussian displacement of the starting positions (Å)
    :param method: tblite method (``GFN1-xTB``; ``GFN2-xTB`` has no Fe
        parameters problem but is slower)
    :param electronic_temperature: Fermi smearing of tblite (K); a metal slab
        converges more easily with some smearing
    :param temperature: Langevin temperature (K)
    :param timestep: MD time step (fs)
    :param friction: Langevin friction (1/fs)
    :param starts: number of independent trajectories
    :param steps: MD steps per trajectory
    :param warmup: steps before the first kept frame
    :param stride: keep every ``stride``-th step after ``warmup``
    :param fix_layers: bottom Fe layers held fixed
    :param seed: everything random (structures, velocities, thermostat)
        derives from it
    """

    size: Tuple[int, int, int] = (3, 2, 3)
    n_water: int = 3
    vacuum: float = 6.0
    rattle: float = 0.05
    method: str = "GFN1-xTB"
    electronic_temperature: float = 1000.0
    temperature: float = 400.0
    timestep: float = 0.5
    friction: float = 0.02
    starts: int = 24
    steps: int = 80
    warmup: int = 10
    stride: int = 8
    fix_layers: int = 1
    seed: int = 0

    def __post_init__(self):
        self.size = tuple(int(s) for s in self.size)
        if len(self.size) != 3 or min(self.size) < 1:
            raise ConfigError(f"size must be three positive integers, got {self.size}")
        for name in ("starts", "steps", "stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if not 0 <= self.warmup < self.steps:
            raise ConfigError("warmup must be in [0, steps)")
        if self.fix_layers >= self.size[2]:
            raise ConfigError("fix_layers must leave at least one free Fe layer")
        if self.timestep <= 0 or self.temperature <= 0:
            raise ConfigError("timestep and temperature must be positive")
        if self.n_water < 0 or not 0 <= self.rattle <= 0.5 or self.vacuum < 0:
            raise ConfigError("n_water and vacuum must be >= 0, rattle in [0, 0.5] Å")
        check_size(int(np.prod(self.size)) + 3 * self.n_water, self.starts, "size, n_water")
        check_size(0, self.steps, "steps")
        area = _slab_area(self.size)
        if self.n_water > area / WATER_AREA:
            raise ConfigError(
                f"n_water: at most {int(area / WATER_AREA)} water molecules fit in the layer "
                f"above a {self.size[0]}x{self.size[1]} slab ({area:.0f} Å^2); "
                "use fewer or a larger slab"
            )

    @property
    def kept_steps(self) -> List[int]:
        """The MD steps (0 = start) whose frames are kept."""
        return list(range(self.warmup, self.steps + 1, self.stride))

    @property
    def n_frames(self) -> int:
        return self.starts * len(self.kept_steps)


def starting_structure(config: IronWaterConfig, start: int) -> ase.Atoms:
    """The randomised slab + water structure of trajectory ``start``."""
    seed = _start_seed(config, start)
    atoms = iron_water_example(
        n_frames=1,
        n_water=config.n_water,
        size=config.size,
        vacuum=config.vacuum,
        rattle=config.rattle,
        seed=seed,
    )[0]
    iron = np.nonzero(atoms.numbers == 26)[0]
    z = atoms.positions[iron, 2]
    layers = np.unique(np.round(z - z.min(), 0))
    fixed = iron[np.round(z - z.min(), 0) < layers[min(config.fix_layers, len(layers)) - 1] + 0.5]
    if config.fix_layers > 0:
        atoms.set_constraint(FixAtoms(indices=fixed))
    return atoms


def generate_iron_water(
    output, config: Optional[IronWaterConfig] = None, progress: bool = True, calculator=None
) -> Path:
    """Run (or resume) the dynamics and append the kept frames to ``output``.

    :param output: extended-XYZ file; ``OUTPUT.state`` holds the checkpoint
    :param config: the settings (default :class:`IronWaterConfig`)
    :param progress: show a progress bar over MD steps
    :param calculator: ASE calculator to use instead of tblite (tests)
    :returns: ``output``
    """
    config = config or IronWaterConfig()
    output = Path(output)
    checkpoint = Checkpoint.open(state_path(output), fingerprint(config), [output])
    calc = (
        calculator
        if calculator is not None
        else xtb_calculator(config.method, config.electronic_temperature)
    )
    provenance = {
        "method": config.method if calculator is None else type(calculator).__name__,
        "electronic_temperature_K": config.electronic_temperature,
        "temperature_K": config.temperature,
        "timestep_fs": config.timestep,
        "friction_per_fs": config.friction,
        "seed": config.seed,
        "versions": package_versions(["equilens", "tblite", "ase", "numpy"]),
    }
    kept = set(config.kept_steps)
    total = config.starts * config.steps
    resume = checkpoint.resume
    done = min(checkpoint.done * config.steps + (resume["step"] if resume else 0), total)
    bar = tqdm(total=total, initial=done, desc="xTB dynamics", unit="step", disable=not progress)
    for start in range(checkpoint.done, config.starts):
        atoms = starting_structure(config, start)
        atoms.calc = calc
        rng = np.random.default_rng([config.seed, start, 1])
        if resume is not None:
            # the frame of this step is written and its state saved
            atoms.positions = np.array(resume["positions"], dtype=np.float64)
            atoms.set_momenta(np.array(resume["momenta"], dtype=np.float64), apply_constraint=False)
            rng.bit_generator.state = resume["rng"]
            step = int(resume["step"])
            resume = None
        else:
            thermalize_momenta(atoms, temperature_K=config.temperature, rng=rng)
            step = 0
            if step in kept:
                _keep(output, checkpoint, atoms, rng, provenance, start, step)
        dynamics = Langevin(
            atoms,
            timestep=config.timestep * units.fs,
            temperature_K=config.temperature,
            friction=config.friction / units.fs,
            rng=rng,
            fixcm=False,
        )
        while step < config.steps:
            check_geometry(atoms, f"{output}: start {start}, step {step}")
            dynamics.run(1)
            step += 1
            bar.update(1)
            if step in kept:
                _keep(output, checkpoint, atoms, rng, provenance, start, step)
    bar.close()
    checkpoint.save(config.starts)
    return output


def _start_seed(config: IronWaterConfig, start: int) -> int:
    return int(np.random.default_rng([config.seed, start, 0]).integers(2**31))


def _keep(output, checkpoint: Checkpoint, atoms, rng, provenance, start, step) -> None:
    """Append the current frame to ``output`` and checkpoint the trajectory."""
    check_geometry(atoms, f"{output}: start {start}, step {step}")
    info = {k: v for k, v in provenance.items() if k != "versions"}
    info.update(start=start, step=step, time_fs=step * provenance["timestep_fs"])
    info.update({f"version_{k}": v for k, v in provenance["versions"].items()})
    frame = labelled(atoms, info, f"{output}: start {start}, step {step}", stress=False)
    checkpoint.append(output, [frame])
    resume = {
        "step": step,
        "positions": atoms.positions.tolist(),
        "momenta": atoms.get_momenta().tolist(),
        "rng": rng.bit_generator.state,
    }
    checkpoint.save(start, resume)
