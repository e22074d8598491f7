"""What the data generators share: the xTB calculator, labelled frames, and
one resume checkpoint.

Every generator works in units (a trajectory, a relaxation start, a
composition, a structure) and keeps its progress in one
:class:`Checkpoint`: a JSON file written atomically after each unit (or step)
with the fingerprint of the settings, the units done, the failed units and
why, how many frames each output file holds, and the state of the unit in
progress for generators that checkpoint inside a unit (the dynamics). A
rerun with the same settings cuts the outputs back to what the checkpoint
knows and continues; other settings are refused in one line. Nothing in a
checkpoint is unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import ase
import ase.io
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator

from ...errors import EquilensError
from ...storage import atomic_write, hash_json, save_json

#: the most atoms of one structure a generator computes: GFN-xTB's dense
#: matrices grow as the square of the basis (about 9 functions per Fe) and
#: its diagonalisation as the cube; 2,000 atoms is hours per step on a laptop
MAX_ATOMS = 2000
#: the most structures (starts, compositions) one generator run holds
MAX_UNITS = 100_000


def check_size(n_atoms: int, units: int, what: str) -> None:
    """Refuse, before anything is built, structures of more than
    :data:`MAX_ATOMS` atoms or runs of more than :data:`MAX_UNITS` units.

    :param what: names the settings in the message (e.g. ``"size, n_water"``)
    """
    from ...errors import ConfigError

    if n_atoms > MAX_ATOMS:
        raise ConfigError(
            f"{what}: {n_atoms:,} atoms per structure, more than the {MAX_ATOMS:,} GFN-xTB "
            "handles in reasonable time and memory; make the structures smaller"
        )
    if units > MAX_UNITS:
        raise ConfigError(f"{what}: {units:,} structures in one run (at most {MAX_UNITS:,})")


def xtb_calculator(method: str = "GFN1-xTB", electronic_temperature: float = 1000.0):
    """A tblite ASE calculator (``pip install equilens[xtb]``)."""
    try:
        from tblite.ase import TBLite
    except ImportError as error:
        raise EquilensError("GFN-xTB needs tblite: pip install 'equilens[xtb]'") from error
    return TBLite(method=method, electronic_temperature=electronic_temperature, verbosity=0)


def labelled(atoms: ase.Atoms, info: dict, where: str, stress: bool = True) -> ase.Atoms:
    """A copy of ``atoms`` with its calculator's energy, forces (unconstrained)
    and, with ``stress``, stress frozen in a ``SinglePointCalculator``, and
    ``info`` in its info; a non-finite result is an error naming ``where``."""
    results: Dict[str, Any] = {
        "energy": float(atoms.get_potential_energy()),
        "forces": atoms.get_forces(apply_constraint=False),
    }
    if stress:
        results["stress"] = atoms.get_stress()
    if not all(np.isfinite(value).all() for value in results.values()):
        raise EquilensError(f"{where}: non-finite xTB result")
    frame = ase.Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    frame.info.update(info)
    frame.calc = SinglePointCalculator(frame, **results)
    return frame


def fingerprint(config) -> str:
    """The hash of a generator's settings (a dataclass)."""
    return hash_json(dataclasses.asdict(config))


def state_path(output: Path) -> Path:
    """Where the checkpoint of a generator writing ``output`` lives: ``OUTPUT.state``."""
    output = Path(output)
    return output.with_name(output.name + ".state")


class Checkpoint:
    """The progress of a generator, in a JSON file ``path``: ``done``
    units finished, ``failed`` units (dictionaries with the reason),
    ``resume`` the state of the unit in progress (or None), and
    ``counts`` and ``sizes`` the frames and bytes of every output file it
    appends to (the bytes let a resume drop a frame cut in the middle of its
    writing without parsing it).
    """

    def __init__(self, path: Path, settings: str, outputs: Sequence[Path]):
        self.path = Path(path)
        self.settings = settings
        self.outputs = [Path(p) for p in outputs]
        self.done = 0
        self.failed: List[dict] = []
        self.resume: Optional[dict] = None
        self.counts: Dict[str, int] = {p.name: 0 for p in self.outputs}
        self.sizes: Dict[str, int] = {p.name: 0 for p in self.outputs}

    @property
    def n_frames(self) -> int:
        """Frames in the first output file (0 without one)."""
        return self.counts[self.outputs[0].name] if self.outputs else 0

    @classmethod
    def open(cls, path: Path, settings: str, outputs: Sequence[Path] = ()) -> Checkpoint:
        """The checkpoint ``path`` of a run with the fingerprint ``settings``,
        with the ``outputs`` cut back to the frames it knows; a fresh one
        (saved at once) when there is none and no output exists. Another
        run's or an unreadable checkpoint is an error naming the file."""
        checkpoint = cls(path, settings, outputs)
        first = checkpoint.outputs[0].name if checkpoint.outputs else "the outputs"
        if not checkpoint.path.is_file():
            existing = [p.name for p in checkpoint.outputs if p.exists()]
            if existing:
                raise EquilensError(
                    f"{' and '.join(existing)} exist without the checkpoint "
                    f"{checkpoint.path.name}: remove them or choose another output"
                )
            # written before the first frame: a run killed between its first
            # append and its first save resumes (and cuts the frames back)
            checkpoint.save(0)
            return checkpoint
        try:
            state = json.loads(checkpoint.path.read_text())
            checkpoint.done = int(state["done"])
            checkpoint.failed = list(state["failed"])
            checkpoint.resume = state["resume"]
            counts = {name: int(state["counts"][name]) for name in checkpoint.counts}
            # checkpoints of equilens before 2026-12-06 count frames only
            known = state.get("sizes")
            sizes = {name: int(known[name]) if known else -1 for name in checkpoint.counts}
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise EquilensError(
                f"{checkpoint.path}: unreadable generator checkpoint ({type(error).__name__}); "
                f"remove it and {first} to start over"
            ) from None
        if state.get("fingerprint") != settings:
            raise EquilensError(
                f"{checkpoint.path} was written with other settings; remove it and {first}"
            )
        checkpoint.counts = counts
        for file in checkpoint.outputs:
            checkpoint.sizes[file.name] = cut_back(file, counts[file.name], sizes[file.name])
        return checkpoint

    def append(self, path: Path, frames: Sequence[ase.Atoms]) -> None:
        """Append ``frames`` to one of the outputs (saved by :meth:`save`)."""
        if frames:
            with open(path, "a") as handle:
                ase.io.write(handle, list(frames), format="extxyz")
        name = Path(path).name
        self.counts[name] += len(frames)
        self.sizes[name] = Path(path).stat().st_size if Path(path).exists() else 0

    def save(self, done: int, resume: Optional[dict] = None) -> None:
        """Record ``done`` finished units and the state of the one in progress."""
        self.done, self.resume = done, resume
        save_json(
            self.path,
            {
                "fingerprint": self.settings,
                "done": done,
                "failed": self.failed,
                "n_frames": self.n_frames,
                "counts": self.counts,
                "sizes": self.sizes,
                "resume": resume,
            },
        )


def cut_back(output: Path, count: int, size: int) -> int:
    """Leave the first ``size`` bytes of ``output``, the ``count`` frames its
    checkpoint knows (frames appended after the last checkpoint go, also one
    cut in the middle of its writing), and return the size; a shorter file
    or another number of frames is an error naming the file. ``size < 0``
    (a checkpoint that did not record sizes): the first ``count`` frames,
    read and written again."""
    output = Path(output)
    if size < 0:  # a checkpoint without sizes: the frames it knows, by parsing
        readable = count and output.exists() and output.stat().st_size > 0
        kept = ase.io.read(output, f":{count}") if readable else []
        with atomic_write(output, "w") as handle:
            ase.io.write(handle, kept, format="extxyz")
        size = output.stat().st_size
    found = output.stat().st_size if output.exists() else 0
    if found < size:
        raise EquilensError(
            f"{output} has {found} bytes but its checkpoint expects {size}: "
            "remove it and its checkpoint to start over"
        )
    if found > size:
        os.truncate(output, size)
    frames = len(ase.io.read(output, ":")) if size else 0
    if frames != count:
        raise EquilensError(
            f"{output} has {frames} frames but its checkpoint expects {count}: "
            "remove it and its checkpoint to start over"
        )
    return size
