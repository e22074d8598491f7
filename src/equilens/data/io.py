"""Read ASE-readable datasets and validate every frame.

:func:`read_dataset` is the one entry point for files (``.traj``, extxyz and
anything else ASE reads); :func:`validate_frames` does the same checks on
frames already in memory. Problems raise :class:`~equilens.errors.DataError`
with the file and the frame index in the message. With
``on_error="skip"`` bad frames are left out instead, and the returned
:class:`Dataset` lists which ones and why (a warning says how many).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal, Optional, Sequence, Tuple, Union

import ase
import ase.io
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
        leaves bad frames out and reports them in :attr:`Dataset.skipped`
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


@dataclass(frozen=True)
class SkippedFrame:
    """A frame left out with ``on_error="skip"``: its index in the file and why."""

    frame: int
    reason: str


@dataclass
class Dataset:
    """Validated frames with their targets.

    :param frames: the structures (positions in Å)
    :param energies: total energy of each frame in eV, or ``None`` when the
        energies were not requested and are not all present
    :param forces: forces of each frame in eV/Å (arrays of shape
        ``(n_atoms, 3)``), or ``None``
    :param path: the file the frames came from, ``None`` for in-memory frames
    :param frame_indices: index of each frame in the source file, used in
        error messages and provenance
    :param skipped: frames left out with ``on_error="skip"``
    """

    frames: List[ase.Atoms]
    energies: Optional[np.ndarray]
    forces: Optional[List[np.ndarray]]
    path: Optional[str] = None
    frame_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    skipped: Tuple[SkippedFrame, ...] = ()

    def __post_init__(self):
        if len(self.frame_indices) != len(self.frames):
            self.frame_indices = np.arange(len(self.frames))

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def n_atoms(self) -> int:
        """Total number of atoms over all frames."""
        return int(sum(len(frame) for frame in self.frames))

    @property
    def species(self) -> Tuple[int, ...]:
        """Sorted atomic numbers present in the frames."""
        numbers: set = set()
        for frame in self.frames:
            numbers.update(int(z) for z in np.unique(frame.numbers))
        return tuple(sorted(numbers))

    def subset(self, indices: ArrayLike) -> Dataset:
        """The frames at positions ``indices`` (positions in this dataset)."""
        positions = np.asarray(indices, dtype=int)
        return dataclasses.replace(
            self,
            frames=[self.frames[i] for i in positions],
            energies=None if self.energies is None else self.energies[positions],
            forces=None if self.forces is None else [self.forces[i] for i in positions],
            frame_indices=self.frame_indices[positions],
            skipped=(),
        )

    def summary(self) -> dict:
        """Counts and ranges, for logs and provenance."""
        out = {
            "path": self.path,
            "n_frames": len(self),
            "n_atoms": self.n_atoms,
            "species": list(self.species),
            "n_skipped": len(self.skipped),
        }
        if self.energies is not None and len(self) > 0:
            per_atom = self.energies / np.array([len(f) for f in self.frames])
            out["energy_per_atom_eV"] = [float(per_atom.min()), float(per_atom.max())]
        if self.forces is not None and len(self) > 0:
            out["max_force_eV_per_A"] = float(max(np.abs(f).max() for f in self.forces))
        return out


def with_species(options: ReadOptions, species) -> ReadOptions:
    """``options`` that also reject frames with elements outside ``species``
    (when given and when ``options`` has no list of its own), so that such a
    frame is named by its index in the file."""
    if species is None or options.species is not None:
        return options
    return dataclasses.replace(options, species=tuple(species))


def read_dataset(path: PathLike, options: Optional[ReadOptions] = None) -> Dataset:
    """Read and validate the frames of an ASE-readable file.

    :param path: a ``.traj``, extxyz, or any other file ASE can read
    :param options: what to read and how strictly; defaults to
        :class:`ReadOptions()` (energies required, forces optional)
    :raises DataError: for a missing or unreadable file, an empty selection and
        any invalid frame (unless ``options.on_error == "skip"``)
    """
    options = options or ReadOptions()
    path = Path(path)
    all_frames = _read_all(path, options.format)
    selection = _select(len(all_frames), options.index, path)
    frames = [all_frames[i] for i in selection]
    return validate_frames(frames, options, path=path, frame_indices=selection)


def read_frames(path: PathLike, index: str = ":", format: Optional[str] = None) -> List[ase.Atoms]:
    """The frames ``index`` (ASE slice syntax) of any ASE-readable file, as
    they are (calculator results kept; energies and forces not required),
    each checked by :func:`check_frames`; a missing or unreadable file, an
    empty selection or a broken frame is a :class:`DataError` naming it."""
    path = Path(path)
    all_frames = _read_all(path, format)
    selection = _select(len(all_frames), index, path)
    frames = [all_frames[i] for i in selection]
    check_frames(frames, path=path, frame_indices=selection)
    return frames


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
        _validate_frame(atoms, LENIENT, where, int(index))


def _read_all(path: Path, format: Optional[str]) -> List[ase.Atoms]:
    if not path.exists():
        raise DataError("file does not exist", path=path)
    try:
        all_frames = ase.io.read(path, index=":", format=format)
    except Exception as error:  # ASE raises many different types here
        raise DataError(
            f"ASE could not read the file ({type(error).__name__}: {error})", path=path
        ) from error
    return [all_frames] if isinstance(all_frames, ase.Atoms) else list(all_frames)


def validate_frames(
    frames: Sequence[ase.Atoms],
    options: Optional[ReadOptions] = None,
    *,
    path: Optional[PathLike] = None,
    frame_indices: Optional[ArrayLike] = None,
) -> Dataset:
    """Validate in-memory frames and extract their energies and forces.

    :param frames: the structures
    :param options: as for :func:`read_dataset` (``index`` and ``format`` are
        ignored here)
    :param path: the file the frames came from, for error messages
    :param frame_indices: the index of each frame in that file
    """
    options = options or ReadOptions()
    path_str = None if path is None else os.fspath(path)
    frame_indices = np.asarray(
        np.arange(len(frames)) if frame_indices is None else frame_indices, dtype=int
    )
    if len(frames) == 0:
        raise DataError(f"the selection index={options.index!r} contains no frames", path=path_str)

    kept, energies, forces, skipped = [], [], [], []
    for atoms, index in zip(frames, frame_indices):
        try:
            energy, force = _validate_frame(atoms, options, path_str, int(index))
        except DataError as error:
            if options.on_error == "raise":
                raise
            skipped.append(SkippedFrame(int(index), error.problem))
            continue
        kept.append((atoms, int(index)))
        energies.append(energy)
        forces.append(force)

    if skipped:
        listed = ", ".join(str(s.frame) for s in skipped[:20])
        more = "" if len(skipped) <= 20 else f" and {len(skipped) - 20} more"
        warnings.warn(
            f"{path_str or '<in-memory frames>'}: skipped {len(skipped)} of "
            f"{len(frames)} frames (frames {listed}{more}); first reason: "
            f"{skipped[0].reason}",
            stacklevel=2,
        )
    if not kept:
        raise DataError(
            f"all {len(frames)} selected frames are invalid; first problem: frame "
            f"{skipped[0].frame}: {skipped[0].reason}",
            path=path_str,
        )

    all_energies = all(e is not None for e in energies)
    all_forces = all(f is not None for f in forces)
    return Dataset(
        frames=[atoms for atoms, _ in kept],
        energies=np.array(energies, dtype=np.float64) if all_energies else None,
        forces=forces if all_forces else None,
        path=path_str,
        frame_indices=np.array([index for _, index in kept], dtype=int),
        skipped=tuple(skipped),
    )


def _select(n_frames: int, index: str, path: Path) -> np.ndarray:
    """Turn an ASE-style index string into positions in a file of n_frames."""
    text = str(index).strip()
    try:
        parts = [int(p) if p.strip() else None for p in text.split(":")]
    except ValueError:
        parts = []
    if (
        not 1 <= len(parts) <= 3
        or (len(parts) == 1 and parts[0] is None)
        or (len(parts) == 3 and parts[2] == 0)
    ):
        raise DataError(
            f"invalid frame selection {index!r}: use ASE's slice syntax, "
            "e.g. ':', '0:100' or '::10'",
            path=path,
        )
    if len(parts) > 1:
        selection = np.arange(n_frames)[slice(*parts)]
    else:
        position = parts[0]
        if not -n_frames <= position < n_frames:
            raise DataError(
                f"frame index {position} is out of range: the file has {n_frames} frames",
                path=path,
            )
        selection = np.array([position % n_frames])
    if len(selection) == 0:
        raise DataError(
            f"the selection index={index!r} contains no frames (the file has {n_frames} frames)",
            path=path,
        )
    return selection


def _validate_frame(
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
