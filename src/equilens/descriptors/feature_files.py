"""Projected features on disk, written batch by batch and read batch by batch.

Force training holds, for every atom, ``k`` projected features and, for every
(atom, neighbor) pair, a ``3 x k`` projected gradient: 15 GB for the 842
liquid-water frames at ``k = 256`` in float16. Kept in memory, a dataset ten
times larger does not fit a node. :class:`FeatureWriter` streams the
:class:`~equilens.descriptors.projected.FeatureSet` of each featurized batch
into a folder (one raw file per array, an ``index.json`` with their types,
shapes and SHA-256), so that the whole set never exists in memory;
:class:`MappedFeatureSet` opens the folder and gives the frames a training
step asks for (:meth:`MappedFeatureSet.select`) as a ``FeatureSet`` whose
large arrays are memory maps of the frames' rows only. When a batch is
dropped its pages are unmapped: the process's memory follows the batch, not
the dataset, and the operating system's page cache keeps what fits for the
next epoch.

The per-atom species and forces and the per-frame energies and offsets (a
few bytes per atom) stay in memory. Nothing in the folder is code: the index
is JSON and the arrays are raw numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Dict, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import FileFormatError
from ..storage import PathLike, current_umask, file_sha256, glob_escape
from .projected import FeatureSet, concatenated_ranges

#: arrays read from disk a batch at a time (the rest is loaded in memory)
MAPPED = ("x", "grad_center", "grad_neighbor", "grad_values")
#: a stored set up to this size is read whole into memory for training
#: (:func:`resident`): its batches are then views or one gather in memory,
#: where fresh maps of the files cost about 3 ms a batch (a quarter of a
#: step of the default study's BPNNs); a larger set is read batch by batch
RESIDENT_BYTES = 256 * 2**20
#: every array a stored set may hold: the fields of a FeatureSet
ARRAYS = tuple(field.name for field in dataclasses.fields(FeatureSet))
FORMAT = "equilens-feature-files-1"


class FeatureWriter:
    """Write the feature sets of consecutive frame ranges into ``folder``.

    The arrays go to a temporary folder beside ``folder`` that replaces it
    in :meth:`finish` (a crash leaves no half-written set under the final
    name). Use as a context manager: the temporary folder is removed when
    the block fails.

    :param key: what the features were computed from, recorded in the index
        and checked by :func:`open_features`
    """

    def __init__(self, folder: PathLike, key: str):
        self.folder = Path(folder)
        self.key = key
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(self.folder)
        owner = f"{socket.gethostname()}-{os.getpid()}"
        self._tmp = Path(
            tempfile.mkdtemp(
                dir=self.folder.parent, prefix=f".{self.folder.name}.{owner}.", suffix=".tmp"
            )
        )
        self._files = contextlib.ExitStack()  # the open array files, closed together
        self._handles: Dict[str, BinaryIO] = {}
        self._digests: Dict[str, Any] = {}
        self._meta: Dict[str, dict] = {}
        self._atoms = 0
        self._pairs = 0
        self._frames = 0

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self._files.close()
        if self._tmp.exists():
            shutil.rmtree(self._tmp, ignore_errors=True)

    def append(self, part: FeatureSet) -> None:
        """Add the frames of ``part`` after those written so far."""
        n_atoms = int(part.atom_offsets[-1])
        self._write("x", part.x)
        self._write("species", part.species)
        offsets = part.atom_offsets[1:] if self._frames else part.atom_offsets
        self._write("atom_offsets", offsets + self._atoms)
        if part.has_gradients:
            self._write("grad_center", part.grad_center + self._atoms)
            self._write("grad_neighbor", part.grad_neighbor + self._atoms)
            self._write("grad_values", part.grad_values)
            pairs = part.pair_offsets[1:] if self._frames else part.pair_offsets
            self._write("pair_offsets", pairs + self._pairs)
            self._pairs += int(part.pair_offsets[-1])
        for name in ("energy", "forces"):
            if getattr(part, name) is not None:
                self._write(name, getattr(part, name))
        self._atoms += n_atoms
        self._frames += part.n_frames

    def finish(
        self, energy: Optional[torch.Tensor] = None, forces: Optional[torch.Tensor] = None
    ) -> Path:
        """Write the frames' targets (unless the parts carried them) and the
        index, and move the set to its final name."""
        if self._frames == 0:
            self._write("atom_offsets", torch.zeros(1, dtype=torch.long))
        for name, value in (("energy", energy), ("forces", forces)):
            if value is not None:
                if name in self._meta:
                    raise ValueError(f"{name} given twice")
                self._write(name, value)
        for handle in self._handles.values():
            handle.flush()
            os.fsync(handle.fileno())
        self._files.close()
        arrays = {
            name: {**meta, "sha256": self._digests[name].hexdigest()}
            for name, meta in self._meta.items()
        }
        index = {"format": FORMAT, "key": self.key, "frames": self._frames, "arrays": arrays}
        (self._tmp / "index.json").write_text(json.dumps(index, indent=1))
        if self.folder.exists():
            try:  # another process wrote the same set first: keep theirs
                open_features(self.folder, self.key, verify=False)
                return self.folder
            except FileFormatError:
                shutil.rmtree(self.folder)
        os.chmod(self._tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 -> the user's default
        os.replace(self._tmp, self.folder)
        return self.folder

    def _write(self, name: str, value: torch.Tensor) -> None:
        array = value.detach().cpu().contiguous().numpy()
        meta = self._meta.get(name)
        if meta is None:
            meta = {"dtype": array.dtype.str, "row": list(array.shape[1:]), "rows": 0}
            self._meta[name] = meta
            handle = (self._tmp / f"{name}.bin").open("wb")
            self._handles[name] = self._files.enter_context(handle)
            self._digests[name] = hashlib.sha256()
        elif list(array.shape[1:]) != meta["row"] or array.dtype.str != meta["dtype"]:
            raise ValueError(f"{name}: parts of different shapes or types")
        data = array.reshape(-1).view(np.uint8).data
        self._handles[name].write(data)
        self._digests[name].update(data)
        meta["rows"] += len(array)


def _remove_abandoned(folder: Path) -> None:
    """Remove the temporary folders of writers of ``folder`` killed on this
    machine (their process is gone); other machines' writers are left."""
    host = socket.gethostname()
    for stale in folder.parent.glob(f".{glob_escape(folder.name)}.*.tmp"):
        owner = stale.name[len(folder.name) + 2 :].split(".")[0]
        name, _, pid = owner.rpartition("-")
        if name != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


@dataclasses.dataclass
class StoredIndex:
    """The in-memory arrays of a stored set, in the stored frame order."""

    species: torch.Tensor
    atom_offsets: torch.Tensor
    pair_offsets: Optional[torch.Tensor] = None
    energy: Optional[torch.Tensor] = None
    forces: Optional[torch.Tensor] = None


@dataclasses.dataclass
class MappedFeatureSet:
    """A :class:`~equilens.descriptors.projected.FeatureSet` stored by
    :class:`FeatureWriter`, read per batch.

    The frames' species, energies, forces and offsets are in memory
    (``stored``); :meth:`select` maps the rows of ``x`` and of the gradients
    that the chosen frames need. ``order`` (from :meth:`reordered`) puts the
    stored frames in another order without moving them. :meth:`to` records
    a device and type that every selected batch is moved to.
    """

    folder: Path
    arrays: Dict[str, dict]
    stored: StoredIndex
    order: Optional[torch.Tensor] = None
    device: Optional[torch.device] = None
    dtype: Optional[torch.dtype] = None

    @property
    def n_frames(self) -> int:
        return len(self.order) if self.order is not None else len(self.stored.atom_offsets) - 1

    @property
    def n_atoms_per_frame(self) -> torch.Tensor:
        counts = self.stored.atom_offsets[1:] - self.stored.atom_offsets[:-1]
        return counts if self.order is None else counts[self.order]

    @property
    def atom_offsets(self) -> torch.Tensor:
        counts = self.n_atoms_per_frame
        return torch.cat([counts.new_zeros(1), counts.cumsum(0)])

    @property
    def energy(self) -> Optional[torch.Tensor]:
        energy = self.stored.energy
        return energy if energy is None or self.order is None else energy[self.order]

    @property
    def forces(self) -> Optional[torch.Tensor]:
        return self._per_atom(self.stored.forces)

    @property
    def species(self) -> torch.Tensor:
        species = self._per_atom(self.stored.species)
        assert species is not None
        return species

    @property
    def has_gradients(self) -> bool:
        return "grad_values" in self.arrays

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays on disk."""
        return sum(_row_bytes(meta) * meta["rows"] for meta in self.arrays.values())

    def to(self, device=None, dtype=None) -> MappedFeatureSet:
        """The same set, with every selected batch moved to ``device`` and its
        float arrays (but the stored gradients) cast to ``dtype``."""
        return dataclasses.replace(
            self,
            device=torch.device(device) if device is not None else self.device,
            dtype=dtype or self.dtype,
        )

    def reordered(self, positions: Sequence[int]) -> MappedFeatureSet:
        """The frames at ``positions``, in that order, still on disk (what
        :meth:`~equilens.descriptors.projected.FeatureSet.select` gives in memory)."""
        chosen = torch.as_tensor(np.asarray(positions, dtype=np.int64))
        return dataclasses.replace(self, order=chosen if self.order is None else self.order[chosen])

    def select(self, positions: Sequence[int]) -> FeatureSet:
        """The frames at ``positions`` (renumbered from zero) as a
        :class:`~equilens.descriptors.projected.FeatureSet`; frames
        consecutive on disk are memory maps of their rows, other choices a
        copy of the rows they need."""
        frames = np.asarray(positions, dtype=np.int64).reshape(-1)
        if self.order is not None:
            frames = self.order.numpy()[frames]
        if len(frames) and bool(np.all(np.diff(frames) == 1)):
            batch = self._range(int(frames[0]), int(frames[-1]) + 1)
        else:
            everything = self._range(0, len(self.stored.atom_offsets) - 1)
            batch = everything.select(frames.tolist())
        if self.device is not None or self.dtype is not None:
            batch = batch.to(device=self.device, dtype=self.dtype)
        return batch

    def loaded(self) -> FeatureSet:
        """The whole set read into memory (one read of each file), in this
        set's order, on the device and in the type :meth:`to` recorded."""
        stored = self.stored
        changes = {
            name: _read_array(self.folder, name, meta)
            for name, meta in self.arrays.items()
            if name in MAPPED
        }
        whole = FeatureSet(
            species=stored.species,
            atom_offsets=stored.atom_offsets,
            pair_offsets=stored.pair_offsets,
            energy=stored.energy,
            forces=stored.forces,
            **changes,
        )
        if self.order is not None:
            whole = whole.select(self.order.tolist())
        if self.device is not None or self.dtype is not None:
            whole = whole.to(device=self.device, dtype=self.dtype)
        return whole

    def _per_atom(self, values: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Per-atom stored ``values`` in this set's frame order."""
        if values is None or self.order is None:
            return values
        starts = self.stored.atom_offsets[self.order]
        return values[concatenated_ranges(starts, self.n_atoms_per_frame)]

    def _range(self, first: int, stop: int) -> FeatureSet:
        """Stored frames ``first`` to ``stop - 1``, their large arrays mapped."""
        stored = self.stored
        a, b = int(stored.atom_offsets[first]), int(stored.atom_offsets[stop])
        changes = {
            "x": self._map("x", a, b),
            "species": stored.species[a:b],
            "atom_offsets": stored.atom_offsets[first : stop + 1] - a,
            "energy": None if stored.energy is None else stored.energy[first:stop],
            "forces": None if stored.forces is None else stored.forces[a:b],
        }
        if self.has_gradients:
            assert stored.pair_offsets is not None
            p, q = int(stored.pair_offsets[first]), int(stored.pair_offsets[stop])
            center, neighbor = self._map("grad_center", p, q), self._map("grad_neighbor", p, q)
            changes.update(  # shifted (a copy) only when the range starts after atom 0
                grad_center=center - a if a else center,
                grad_neighbor=neighbor - a if a else neighbor,
                grad_values=self._map("grad_values", p, q),
                pair_offsets=stored.pair_offsets[first : stop + 1] - p,
            )
        return FeatureSet(**changes)

    def _map(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of an array, mapped from its file (copy on
        write: the file is never changed)."""
        meta = self.arrays[name]
        dtype = np.dtype(meta["dtype"])
        shape = (stop - start, *meta["row"])
        if stop <= start:
            return torch.from_numpy(np.zeros(shape, dtype=dtype))
        mapped = np.memmap(
            self.folder / f"{name}.bin",
            dtype=dtype,
            mode="c",
            offset=start * _row_bytes(meta),
            shape=shape,
        )
        return torch.from_numpy(mapped)


def _read_array(folder: Path, name: str, meta: dict) -> torch.Tensor:
    """The whole array ``name`` of a stored set, read into memory."""
    values = np.fromfile(folder / f"{name}.bin", dtype=np.dtype(meta["dtype"]))
    return torch.from_numpy(values.reshape(meta["rows"], *meta["row"]))


def _row_bytes(meta: dict) -> int:
    return int(np.dtype(meta["dtype"]).itemsize * int(np.prod(meta["row"], dtype=np.int64)))


def resident(
    features: MappedFeatureSet, limit: Optional[int] = None
) -> Union[FeatureSet, MappedFeatureSet]:
    """``features`` read into memory when they take at most ``limit`` bytes
    (default :data:`RESIDENT_BYTES`; :meth:`MappedFeatureSet.loaded`), else
    as they are: read batch by batch."""
    limit = RESIDENT_BYTES if limit is None else limit
    return features.loaded() if features.nbytes <= limit else features


def open_features(folder: PathLike, key: str, verify: bool = True) -> MappedFeatureSet:
    """Open a set written by :class:`FeatureWriter`.

    :param key: the key it must have been written for
    :param verify: check every file's SHA-256 against the index (a full
        read, which also brings the files into the page cache)
    :raises FileFormatError: naming the folder, when it is incomplete,
        damaged, of another format or written for another key
    """
    folder = Path(folder)
    index_path = folder / "index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as error:
        raise FileFormatError(f"{folder}: not a readable feature set ({error})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise FileFormatError(f"{folder}: not a feature set of format {FORMAT}")
    if index.get("key") != key:
        raise FileFormatError(f"{folder}: computed for another key (copied or renamed?)")
    arrays = index["arrays"]
    for name, meta in arrays.items():
        if name not in ARRAYS:
            raise FileFormatError(f"{folder}: unknown array {name!r}")
        path = folder / f"{name}.bin"
        size = path.stat().st_size if path.is_file() else -1
        if size != _row_bytes(meta) * meta["rows"]:
            raise FileFormatError(f"{path}: checksum mismatch (truncated or damaged)")
        if verify and file_sha256(path) != meta["sha256"]:
            raise FileFormatError(f"{path}: checksum mismatch (truncated or damaged)")

    def read(name: str) -> Optional[torch.Tensor]:
        return _read_array(folder, name, arrays[name]) if name in arrays else None

    atom_offsets, species = read("atom_offsets"), read("species")
    if atom_offsets is None or species is None or len(atom_offsets) != index["frames"] + 1:
        raise FileFormatError(f"{folder}: inconsistent feature set")
    stored = StoredIndex(
        species=species,
        atom_offsets=atom_offsets,
        pair_offsets=read("pair_offsets"),
        energy=read("energy"),
        forces=read("forces"),
    )
    return MappedFeatureSet(folder=folder, arrays=arrays, stored=stored)
