"""Atomic files, content hashes and the TensorMap cache.

Everything that equilens writes and might be interrupted (descriptor caches,
checkpoints, results) goes through :func:`atomic_write`: the data go to a
temporary file in the target folder, which then replaces the target in one
``os.replace``. A crash leaves either the old file or the new one, never half
of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar, Union

import ase
import metatensor
import numpy as np

from .errors import FileFormatError

PathLike = Union[str, "os.PathLike[str]"]
T = TypeVar("T")


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file that replaces ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)  # left by a writer that was killed
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    encoding = None if "b" in mode else "utf-8"
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~current_umask())  # mkstemp's 0600 -> the user's default
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters escaped."""
    import glob

    return glob.escape(name)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_tensormap(path: PathLike, tensor: metatensor.TensorMap) -> Path:
    """Save ``tensor`` to ``path`` (``.mts``) atomically."""
    path = Path(path)
    with atomic_write(path) as handle:
        metatensor.save(handle, tensor)
    return path


def load_tensormap(path: PathLike, what: str = "TensorMap file") -> metatensor.TensorMap:
    """Load a TensorMap saved by :func:`save_tensormap` or ``metatensor.save``.

    :raises FileFormatError: naming the file when it is missing or not a
        readable TensorMap
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such {what}")
    try:
        return metatensor.load(os.fspath(path))
    except Exception as error:  # metatensor raises its own error types
        raise FileFormatError(f"{path}: not a readable {what} ({_first_line(error)})") from None


def save_torch(path: PathLike, payload: Any) -> Path:
    """Write ``payload`` with ``torch.save``, atomically.

    ``payload`` must be plain data (dicts, lists, tuples, strings, numbers,
    ``None``) and torch tensors, so that :func:`load_torch` can read it back
    without unpickling arbitrary objects.
    """
    import torch

    path = Path(path)
    with atomic_write(path) as handle:
        torch.save(payload, handle)
    return path


def load_torch(path: PathLike, what: str = "file", mmap: bool = False) -> Any:
    """Read a file written by :func:`save_torch`, never running code from it.

    ``torch.load(weights_only=True)`` only rebuilds tensors and plain data; a
    file that needs anything else (a pickled object, which could run code
    when loaded) is refused. Every failure is one
    :class:`~equilens.errors.FileFormatError` that names the file.

    :param what: what the file should be, for messages (``"model file"``)
    :param mmap: map the tensors' storage from the file instead of reading
        it into memory (pages are read when touched and can be dropped by
        the system under memory pressure)
    """

    import torch

    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{path}: no such {what}")
    if path.is_dir():
        raise FileFormatError(f"{path}: is a directory, not a {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises many types for corrupt files
        raise load_refusal(path, error, what) from None


def load_refusal(path: PathLike, error: Exception, what: str) -> FileFormatError:
    """The one-line error for a ``torch.load(weights_only=True)`` that failed:
    a file that needs pickled Python objects is refused, naming the first
    one (torch's own advice to load it unsafely is left out); anything else
    is an unreadable file."""
    import pickle

    text = str(error)
    if isinstance(error, pickle.UnpicklingError) and re.search(
        "GLOBAL|Unsupported global|Unsupported class", text
    ):
        found = re.search(r"GLOBAL ([\w.]+)", text)
        first = f" (the first: {found.group(1)})" if found else ""
        return FileFormatError(
            f"{path}: refused: this {what} contains pickled Python objects{first}, and "
            "loading them could run arbitrary code; equilens only reads tensors and plain data"
        )
    return FileFormatError(f"{path}: not a readable {what} ({_first_line(error)})")


def arrays_to_torch(value: Any) -> Any:
    """``value`` with every numpy array (and numpy scalar) replaced by a torch
    tensor (a Python number), recursively, so that it can be saved with
    :func:`save_torch` and read back without unpickling."""
    import torch

    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: arrays_to_torch(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(arrays_to_torch(item) for item in value)
    return value


def arrays_from_torch(value: Any) -> Any:
    """The inverse of :func:`arrays_to_torch`: tensors become numpy arrays."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {key: arrays_from_torch(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(arrays_from_torch(item) for item in value)
    return value


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


def save_json(path: PathLike, data: Any) -> Path:
    """Write ``data`` as indented, strict JSON, atomically: NaN and infinities
    (not JSON) are written as ``null``."""
    path = Path(path)
    plain = finite_or_none(json.loads(json.dumps(data, default=json_default)))
    with atomic_write(path, "w") as handle:
        json.dump(plain, handle, indent=2, sort_keys=True, allow_nan=False)
        handle.write("\n")
    return path


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``, recursively."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_or_none(item) for item in value]
    return value


def hash_frames(frames: Sequence[ase.Atoms]) -> str:
    """A SHA-256 of what defines the structures: numbers, positions, cell, pbc."""
    digest = hashlib.sha256()
    digest.update(str(len(frames)).encode())
    for atoms in frames:
        digest.update(np.ascontiguousarray(atoms.numbers, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(atoms.positions, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(atoms.cell.array, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(atoms.pbc, dtype=np.bool_).tobytes())
    return digest.hexdigest()


def hash_arrays(arrays: Iterable[np.ndarray]) -> str:
    """A SHA-256 of the dtypes, shapes and bytes of a sequence of arrays."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def hash_json(data: Any) -> str:
    """A SHA-256 of the canonical JSON form of ``data``."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()


class TensorMapCache:
    """A folder of TensorMaps keyed by content hashes.

    :param directory: where the ``.mts`` files go; ``None`` disables caching
    """

    def __init__(self, directory: Optional[PathLike]):
        self.directory = None if directory is None else Path(directory)

    def path(self, prefix: str, key: str) -> Optional[Path]:
        """The file that holds the entry ``key`` (``None`` when disabled)."""
        if self.directory is None:
            return None
        return self.directory / f"{prefix}-{key[:24]}.mts"

    def get_or_compute(
        self,
        prefix: str,
        key: str,
        compute: Callable[[], metatensor.TensorMap],
        metadata: Optional[dict] = None,
    ) -> metatensor.TensorMap:
        """Load the entry ``key`` or compute, save and return it.

        :param prefix: a readable name for the file (e.g. ``"soap"``)
        :param key: the content hash that identifies the entry
        :param compute: called on a miss
        :param metadata: written next to the entry as JSON, for humans
        """
        path = self.path(prefix, key)

        def save(target: Path, tensor: metatensor.TensorMap) -> None:
            save_tensormap(target, tensor)
            if metadata is not None:
                save_json(target.with_suffix(".json"), {"key": key, **metadata})

        return cached(path, load_tensormap, compute, save, f"{prefix} cache entry", key)


def cached(
    path: Optional[Path],
    load: Callable[[Path], T],
    compute: Callable[[], T],
    save: Callable[[Path, T], Any],
    what: str = "cache entry",
    key: Optional[str] = None,
) -> T:
    """The value cached at ``path``, or ``compute()`` saved there.

    Each entry has a ``.sha256`` file beside it, written after the entry,
    holding the entry's digest and the key it was computed for (``key``, by
    default the file name): an entry without it (a crash between the two
    writes), with another digest (a truncated or damaged file), computed for
    another key (an entry copied or renamed from another computation, which
    can hold another layout) or that fails to load is reported with a
    warning and computed again. ``path=None`` disables the cache.
    """
    if path is None:
        return compute()
    key = key or path.name
    digest_path = path.with_name(path.name + ".sha256")
    if path.is_file():
        try:
            if not digest_path.is_file():
                raise FileFormatError(f"{path}: no checksum beside it (an interrupted write?)")
            recorded = digest_path.read_text().split()
            if not recorded or recorded[0] != file_sha256(path):
                raise FileFormatError(f"{path}: checksum mismatch (truncated or damaged)")
            if recorded[1:] != [key]:
                raise FileFormatError(f"{path}: computed for another key (copied or renamed?)")
            return load(path)
        except FileFormatError as error:
            warnings.warn(f"{error}; computing the {what} again", stacklevel=2)
    value = compute()
    save(path, value)
    with atomic_write(digest_path, "w") as handle:
        handle.write(f"{file_sha256(path)} {key}\n")
    return value


def file_sha256(path: PathLike) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def json_default(value: Any) -> Any:
    """JSON form of numpy numbers and arrays and of paths (``json.dumps(default=...)``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__} to JSON")


def check_writable(folder: Path) -> None:
    """Refuse, in one line and before any work, an output folder that cannot
    be made or written: a file where the folder (or one of its parents)
    should be, or a read-only place.

    :raises OutputError: naming the path and what to do
    """
    from .errors import OutputError

    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(
            f"{probe}: is a file, not a folder; choose another output (--output) or move it"
        )
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{probe}: not writable; choose another output (--output)")


def claim_outputs(
    marker: Path,
    fingerprint: Any,
    outputs: Sequence[Path],
    overwrite: bool = False,
    what: Optional[str] = None,
) -> None:
    """Make ``outputs`` belong to the run ``fingerprint`` now: for runs that
    write as they go (training checkpoints). See :func:`check_outputs`."""
    check_outputs(marker, fingerprint, outputs, overwrite, what)()


def check_outputs(
    marker: Path,
    fingerprint: Any,
    outputs: Sequence[Path],
    overwrite: bool = False,
    what: Optional[str] = None,
) -> Callable[[], None]:
    """Check that ``outputs`` may be written by the run ``fingerprint`` (plain
    data); returns the function that records the claim, to call just before
    writing them, so that a run that fails first leaves no trace.

    The owner is recorded in ``marker`` (JSON). Outputs of another run (another
    configuration, model or data), or outputs with no record of their run, are
    refused unless ``overwrite``, which deletes them (now); a rerun of the same
    run passes (it resumes or reuses).

    :raises EquilensError: naming ``what`` (default: the marker's folder) and
        the outputs found
    """
    import shutil

    from .errors import EquilensError

    check_writable(marker.parent)
    digest = hash_json(fingerprint)
    owner = None
    if marker.is_file():
        try:
            owner = json.loads(marker.read_text()).get("fingerprint")
        except (ValueError, AttributeError, OSError, UnicodeDecodeError):
            owner = "unreadable"
    if owner == digest:
        return lambda: None
    existing = [path for path in outputs if path.exists()]
    if (owner is not None or existing) and not overwrite:
        why = "another run (other settings or data)" if owner else "a run with no record"
        names = ", ".join(p.name for p in existing[:6]) or marker.name
        raise EquilensError(
            f"{what or marker.parent}: holds the outputs of {why} ({names}); choose another "
            "output (--output) or pass --overwrite to replace them"
        )

    for path in existing:  # --overwrite: the other run's outputs go first
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    marker.unlink(missing_ok=True)

    def record() -> None:
        save_json(marker, {"fingerprint": digest, "run": fingerprint})

    return record
