"""The one validation of frames every reader and writer of equilens shares
(:func:`check_frames`, ``validate_frame``) and the options of reading
(:class:`ReadOptions`): atoms present, finite positions and cell, independent
periodic cell vectors, no overlapping atoms, allowed species, and finite,
well-shaped energies and forces (required or where present)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Optional, Sequence, Tuple, Union

import ase
import numpy as np
from ase.data import chemical_symbols
from numpy.typing import ArrayLike

from ..config import validate_species
from ..errors import DataError
from .geometry import closest_pair

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class ReadOptions:
    """How to read and validate a dataset file.

    :param index: which frames to read, in ASE's slice syntax (``":"``,
        ``"0:100"``, ``"::10"``, ``"-1"``)
    :param energy_key: where the total energy (eV) is: ``None`` for the
        calculator results attached to each frame (what ``.traj`` files and
        extxyz files with an ``energy`` key give), or the name of a key of
        ``atoms.info``
    :param forces_key: where the forces (eV/Å) are: ``None`` for the
        calculator results, or the name of a per-atom array in ``atoms.arrays``
    :param require_energy: fail on frames without an energy
    :param require_forces: fail on frames without forces
    :param species: the atomic numbers allowed in the data; ``None`` allows all
    :param on_error: ``"raise"`` stops at the first bad frame; ``"skip"``
        leaves bad frames out and reports them in ``Dataset.skipped``
    :param min_distance: atoms closer than this (Å, minimum image) make the
        frame invalid (overlapping atoms give NaN descriptor gradients); well
        under any bond length
    :param format: ASE file format, when it cannot be guessed from the name
    """

    index: str = ":"
    energy_key: Optional[str] = None
    forces_key: Optional[str] = None
    require_energy: bool = True
    require_forces: bool = False
    species: Optional[Tuple[int, ...]] = None
    on_error: Literal["raise", "skip"] = "raise"
    format: Optional[str] = None
    min_distance: float = 0.1

    def __post_init__(self):
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}")
        if self.species is not None:
            object.__setattr__(self, "species", validate_species(self.species, "species"))
        if not 0 <= self.min_distance < 1.0:
            raise ValueError(f"min_distance must be in [0, 1) Å, got {self.min_distance}")


#: what every frame equilens reads or writes satisfies
LENIENT = ReadOptions(require_energy=False, require_forces=False)


def check_frames(
    frames: Sequence[ase.Atoms],
    *,
    path: Optional[PathLike] = None,
    frame_indices: Optional[ArrayLike] = None,
) -> None:
    """The one validation every reader and writer of frames shares: atoms
    present, finite positions and cell, independent periodic cell vectors,
    no overlapping atoms, and finite, well-shaped energies and forces where
    the frame has them; a :class:`DataError` names the file and frame.

    :param path: the file the frames come from or go to, for the message
    :param frame_indices: the index of each frame there
    """
    where = None if path is None else os.fspath(path)
    indices = np.arange(len(frames)) if frame_indices is None else np.asarray(frame_indices)
    for atoms, index in zip(frames, indices):
        validate_frame(atoms, LENIENT, where, int(index))


def validate_frame(
    atoms: ase.Atoms, options: ReadOptions, path: Optional[str], index: int
) -> Tuple[Optional[float], Optional[np.ndarray]]:
    def fail(problem: str) -> DataError:
        return DataError(problem, path=path, frame=index)

    n_atoms = len(atoms)
    if n_atoms == 0:
        raise fail("the frame has no atoms")

    positions = atoms.positions
    if not np.all(np.isfinite(positions)):
        bad = np.unique(np.nonzero(~np.isfinite(positions))[0])
        raise fail(f"non-finite positions (NaN or inf) for atoms {_short(bad)}")

    if np.any(atoms.pbc):
        cell = atoms.cell.array
        if not np.all(np.isfinite(cell)):
            raise fail("the cell contains NaN or inf")
        periodic = cell[atoms.pbc]
        if np.linalg.matrix_rank(periodic) < len(periodic):
            raise fail(
                f"the cell vectors along the periodic directions {atoms.pbc.tolist()} "
                "are zero or linearly dependent"
            )

    if options.min_distance > 0 and n_atoms > 1:
        pair = closest_pair(atoms, options.min_distance)
        if pair is not None:
            i, j, d = pair
            raise fail(
                f"atoms {i} ({atoms[i].symbol}) and {j} ({atoms[j].symbol}) are {d:.3f} Å "
                f"apart (less than min_distance {options.min_distance} Å): overlapping atoms"
            )

    if options.species is not None:
        unknown = sorted(set(int(z) for z in atoms.numbers) - set(options.species))
        if unknown:
            names = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in unknown)
            allowed = ", ".join(chemical_symbols[z] for z in options.species)
            raise fail(
                f"species {names} not in the allowed species [{allowed}]; "
                "add them to the species list or remove these frames"
            )

    energy = _energy(atoms, options, fail)
    forces = _forces(atoms, options, fail)
    return energy, forces


def _lookup(atoms: ase.Atoms, name: str, key: Optional[str], per_atom: bool):
    """The raw value of a target and a description of where it was looked for:
    the calculator results when ``key`` is None, else ``atoms.arrays`` (for
    per-atom targets) or ``atoms.info``."""
    if key is None:
        results = {} if atoms.calc is None else getattr(atoms.calc, "results", {})
        return results.get(name), "the calculator results"
    if per_atom and key in atoms.arrays:
        return atoms.arrays[key], f"atoms.arrays[{key!r}]"
    return atoms.info.get(key), f"atoms.{'arrays' if per_atom else 'info'}[{key!r}]"


def _energy(atoms: ase.Atoms, options: ReadOptions, fail) -> Optional[float]:
    value, source = _lookup(atoms, "energy", options.energy_key, per_atom=False)
    if value is None:
        if not options.require_energy:
            return None
        hint = _keys_hint(atoms.info, "info", "energy_key")
        raise fail(f"missing energy: nothing in {source}{hint}")
    try:
        value = float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise fail(f"energy in {source} is not a single number: {value!r}") from None
    if not np.isfinite(value):
        raise fail(f"energy in {source} is {value}")
    return value


def _forces(atoms: ase.Atoms, options: ReadOptions, fail) -> Optional[np.ndarray]:
    value, source = _lookup(atoms, "forces", options.forces_key, per_atom=True)
    if value is None:
        if not options.require_forces:
            return None
        hint = _keys_hint(atoms.arrays, "arrays", "forces_key")
        raise fail(f"missing forces: nothing in {source}{hint}")
    try:
        value = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(f"forces in {source} are not numeric") from None
    expected = (len(atoms), 3)
    if value.shape != expected:
        raise fail(
            f"forces in {source} have shape {value.shape}, expected {expected} "
            "(one 3-vector per atom)"
        )
    if not np.all(np.isfinite(value)):
        bad = np.unique(np.nonzero(~np.isfinite(value))[0])
        raise fail(f"forces in {source} contain NaN or inf for atoms {_short(bad)}")
    return value


def _keys_hint(mapping: dict, name: str, option: str) -> str:
    keys = [k for k in mapping if k not in ("numbers", "positions")]
    if not keys:
        return ""
    return f" (available {name} keys: {', '.join(map(str, keys))}; set {option})"


def _short(indices: np.ndarray, limit: int = 10) -> str:
    listed = ", ".join(str(int(i)) for i in indices[:limit])
    return listed + (f" and {len(indices) - limit} more" if len(indices) > limit else "")
