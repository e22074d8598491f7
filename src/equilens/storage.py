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
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def save_tensormap(path: PathLike, tensor: metatensor.TensorMap) -> Path:
    """Save ``tensor`` to ``path`` (``.mts``) atomically."""
    path = Path(path)
    with atomic_write(path) as handle:
        metatensor.save(handle, tensor)
    return path


def load_tensormap(path: PathLike) -> metatensor.TensorMap:
    """Load a TensorMap saved by :func:`save_tensormap` or ``metatensor.save``."""
    return metatensor.load(os.fspath(path))


def load_model_state(path: PathLike) -> Any:
    """The object ``torch.save`` wrote to the model file ``path`` (on the CPU);
    a missing file is an :class:`~equilens.errors.EquilensError` naming it."""
    import torch

    from .errors import EquilensError

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise EquilensError(f"{path}: no such model file") from None


def save_json(path: PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    path = Path(path)
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=_json_default)
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
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=_json_default)
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


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__} to JSON")
