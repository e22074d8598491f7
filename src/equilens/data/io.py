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
from typing import List, Optional, Sequence, Tuple, Union

import ase
import ase.io
import numpy as np
from numpy.typing import ArrayLike

from ..errors import DataError
from .validation import ReadOptions, check_frames, validate_frame

PathLike = Union[str, "os.PathLike[str]"]


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
            energy, force = validate_frame(atoms, options, path_str, int(index))
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
