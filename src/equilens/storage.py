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
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import ase
import metatensor
import numpy as np

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file that replaces ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    encoding = None if "b" in mode else "utf-8"
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp's 0600 -> the user's default
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _umask() -> int:
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
    from .errors import FileFormatError

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


def load_torch(path: PathLike, what: str = "file") -> Any:
    """Read a file written by :func:`save_torch`, never running code from it.

    ``torch.load(weights_only=True)`` only rebuilds tensors and plain data; a
    file that needs anything else (a pickled object, which could run code
    when loaded) is refused. Every failure is one
    :class:`~equilens.errors.FileFormatError` that names the file.

    :param what: what the file should be, for messages (``"model file"``)
    """
    import pickle

    import torch

    from .errors import FileFormatError

    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{path}: no such {what}")
    if path.is_dir():
        raise FileFormatError(f"{path}: is a directory, not a {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            raise FileFormatError(
                f"{path}: refused: this {what} contains pickled Python objects, and "
                "loading them could run arbitrary code; equilens only reads tensors and "
                "plain data (re-create the file with this version of equilens)"
            ) from None
        raise FileFormatError(f"{path}: not a readable {what} ({_first_line(error)})") from None
    except Exception as error:  # torch raises many types for corrupt files
        raise FileFormatError(f"{path}: not a readable {what} ({_first_line(error)})") from None


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
    """Write ``data`` as indented JSON, atomically."""
    path = Path(path)
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=json_default)
        handle.write("\n")
    return path


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
        if path is not None and path.is_file():
            return load_tensormap(path)
        tensor = compute()
        if path is not None:
            save_tensormap(path, tensor)
            if metadata is not None:
                save_json(path.with_suffix(".json"), {"key": key, **metadata})
        return tensor


def json_default(value: Any) -> Any:
    """JSON form of numpy numbers and arrays and of paths (``json.dumps(default=...)``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__} to JSON")
