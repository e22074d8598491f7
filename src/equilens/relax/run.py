"""Run the relaxation benchmark of a :class:`~equilens.relax.config.RelaxConfig`.

For every calculator and every selected reference minimum:

- **in distribution**: ``rattle.copies`` copies of the minimum with seeded
  Gaussian displacements, relaxed (BFGS; the cell too when
  ``optimizer.cell_in_distribution``);
- **out of distribution**: the parent crystal of the same index (when
  ``parents`` is given), relaxed (the cell too by default).

Each relaxation is scored against the reference minimum: RMSD of the
positions (fractional coordinates mapped onto the minimum's cell, minimum
image, mean displacement removed), volume change, the reference
calculator's energy of the result minus the reference minimum's energy (per
atom; when ``reference`` is set), steps, converged or not, wall time and
time per step. Results go to ``relaxations.csv``, ``summary.json`` (median
and 90th percentile of the RMSD, median energy error, convergence rate,
median steps and time per step, per calculator and task),
``relaxed.extxyz`` and the figures and chemiscope file of
:mod:`equilens.relax.report`. Finished relaxations are recorded in
``relaxations.jsonl`` as they end, so a rerun skips them.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any, Dict, List, Optional

import ase
import ase.io
import numpy as np

from ..config import to_mapping
from ..data.io import read_frames
from ..errors import ConfigError, DataError, EquilensError
from ..storage import atomic_write, check_outputs, hash_json, save_json
from .config import RelaxConfig, make_calculator


def rmsd(moved: ase.Atoms, reference: ase.Atoms) -> float:
    """RMSD (Å) of ``moved`` to ``reference``: fractional coordinates mapped
    onto the reference cell, minimum image, mean displacement removed."""
    if len(moved) != len(reference) or (moved.numbers != reference.numbers).any():
        raise DataError("the relaxed structure and its reference have different atoms")
    delta = moved.get_scaled_positions(wrap=False) - reference.get_scaled_positions(wrap=False)
    delta -= np.round(delta)
    cartesian = delta @ reference.cell.array
    cartesian -= cartesian.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(cartesian**2, axis=1))))


class NonFiniteResult(EquilensError):
    """The calculator returned NaN or inf during a relaxation."""


def relax(atoms: ase.Atoms, calculator, cell: bool, fmax: float, steps: int):
    """``atoms`` relaxed with BFGS; returns (structure, converged, steps, seconds).

    :raises NonFiniteResult: when the calculator returns NaN or inf forces
        (checked before every step: BFGS would otherwise fail in its linear
        algebra or walk on with NaN positions)
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.calc = calculator
    target: Any = FrechetCellFilter(atoms) if cell else atoms
    optimizer = BFGS(target, logfile=None)

    def check() -> None:
        if not np.all(np.isfinite(target.get_forces())):
            raise NonFiniteResult(f"NaN or inf forces at step {optimizer.nsteps}")

    start = time.perf_counter()
    check()
    optimizer.attach(check, interval=1)
    try:
        converged = bool(optimizer.run(fmax=fmax, steps=steps))
    except np.linalg.LinAlgError as error:
        raise NonFiniteResult(f"BFGS failed at step {optimizer.nsteps} ({error})") from None
    return atoms, converged, int(optimizer.nsteps), time.perf_counter() - start


def tasks(config: RelaxConfig, minima: List[ase.Atoms], parents: Optional[List[ase.Atoms]]):
    """``(task, index, structure, relax the cell)`` for every relaxation."""
    rng = np.random.default_rng(config.rattle.seed)
    out = []
    for index, minimum in enumerate(minima):
        for copy in range(config.rattle.copies):
            moved = minimum.copy()
            moved.positions += rng.normal(0.0, config.rattle.amplitude, moved.positions.shape)
            out.append((f"rattled {copy}", index, moved, config.optimizer.cell_in_distribution))
        if parents is not None:
            parent = parents[index]
            out.append(("parent", index, parent, config.optimizer.cell_out_of_distribution))
    return out


def run_relax(config: RelaxConfig, progress: bool = True, overwrite: bool = False) -> Dict:
    """Run every relaxation (resuming finished ones) and write the outputs."""
    from tqdm.auto import tqdm

    minima = read_frames(config.minima, config.select)
    parents = read_frames(config.parents, config.select) if config.parents else None
    if parents is not None and len(parents) != len(minima):
        raise ConfigError(f"parents: {len(parents)} structures for {len(minima)} minima")
    output = config.output
    minima_hash = hash_json([m.positions.tolist() for m in minima])
    identity = to_mapping(config)
    identity.pop("device")  # a run resumes on another device
    fingerprint = {"config": identity, "minima": minima_hash}
    outputs = [output / "relaxations.jsonl"]
    record = check_outputs(output / "run.json", fingerprint, outputs, overwrite, str(output))
    structures = minima + (parents or [])
    # every calculator made (and its elements checked) before any relaxation
    calculators = {
        label: make_calculator(spec, f"calculators.{label}", structures, config.device)
        for label, spec in config.calculators.items()
    }
    reference = None
    if config.reference is not None:
        reference = make_calculator(config.reference, "reference", structures, config.device)
    record()  # claimed once everything is checked: a refused config can be corrected
    e_min = [m.get_potential_energy() if reference is not None else np.nan for m in minima]
    done = _done(output / "relaxations.jsonl")
    jobs = tasks(config, minima, parents)
    rows: List[Dict[str, Any]] = []
    bar = tqdm(total=len(jobs) * len(config.calculators), desc="relax", disable=not progress)
    with bar:
        for label, calculator in calculators.items():
            for task, index, structure, cell in jobs:
                key = f"{label}|{task}|{index}"
                if key in done:
                    rows.append(done[key])
                    bar.update(1)
                    continue
                try:
                    result, converged, steps, seconds = relax(
                        structure, calculator, cell, config.optimizer.fmax, config.optimizer.steps
                    )
                except NonFiniteResult as error:
                    raise EquilensError(
                        f"calculators.{label}: the {task} relaxation of structure {index}: "
                        f"{error}; non-finite, nothing recorded for it"
                    ) from None
                row = _score(label, task, index, result, minima[index], converged, steps, seconds)
                if reference is not None:
                    check = result.copy()
                    check.calc = reference
                    row["reference_energy_above_minimum_meV_per_atom"] = (
                        1000 * (check.get_potential_energy() - e_min[index]) / len(result)
                    )
                row["positions"] = result.positions.tolist()
                row["cell"] = result.cell.array.tolist()
                with open(output / "relaxations.jsonl", "a") as handle:
                    handle.write(json.dumps({"key": key, **row}) + "\n")
                rows.append(row)
                bar.update(1)
    return _write(config, rows, minima, output)


def _score(label, task, index, result, minimum, converged, steps, seconds) -> Dict[str, Any]:
    return {
        "calculator": label,
        "task": "in distribution" if task.startswith("rattled") else "out of distribution",
        "copy": task,
        "structure": index,
        "converged": converged,
        "steps": steps,
        "seconds": seconds,
        "seconds_per_step": seconds / max(steps, 1),
        "rmsd_A": rmsd(result, minimum),
        "volume_change_percent": 100 * (result.get_volume() / minimum.get_volume() - 1),
    }


def _done(path) -> Dict[str, Dict[str, Any]]:
    """The relaxations recorded in ``path``: a last line cut short by an
    interruption is redone (with a warning); any other unreadable line, or a
    record with a non-finite number, is a :class:`DataError` naming the line."""
    if not path.is_file():
        return {}
    rows = {}
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = row.pop("key")
        except (ValueError, KeyError, AttributeError):
            if number == len(lines):
                warnings.warn(
                    f"{path}: line {number} was cut short; that relaxation is redone", stacklevel=2
                )
                with atomic_write(path, "w") as handle:  # the next record starts on a new line
                    handle.write("".join(f"{kept}\n" for kept in lines[:-1]))
                continue
            raise DataError(f"line {number} is not a relaxation record", path=path) from None
        numbers = [v for v in row.values() if isinstance(v, float)]
        if not np.all(np.isfinite(numbers)) or not np.all(np.isfinite(row.get("positions", []))):
            raise DataError(
                f"line {number} ({key}) holds NaN or inf; delete the line to redo it", path=path
            )
        rows[key] = row
    return rows


def _write(config: RelaxConfig, rows, minima, output) -> Dict:
    from .report import plot_relaxations, relaxation_chemiscope, summarise

    structures = []
    for row in rows:
        numbers = minima[row["structure"]].numbers
        atoms = ase.Atoms(numbers, row["positions"], cell=row["cell"], pbc=True)
        atoms.info.update({k: v for k, v in row.items() if k not in ("positions", "cell")})
        structures.append(atoms)
    with atomic_write(output / "relaxed.extxyz", "w") as handle:
        ase.io.write(handle, structures, format="extxyz")
    table = [{k: v for k, v in r.items() if k not in ("positions", "cell")} for r in rows]
    with atomic_write(output / "relaxations.csv", "w") as handle:
        names = list(dict.fromkeys(k for r in table for k in r))
        handle.write(",".join(names) + "\n")
        for r in table:
            handle.write(",".join(str(r.get(n, "")) for n in names) + "\n")
    summary = summarise(table)
    save_json(output / "summary.json", summary)
    plot_relaxations(table, output / "relaxation.png", config.name)
    relaxation_chemiscope(structures, table, output / "relaxed.json.gz", config.name)
    return summary
