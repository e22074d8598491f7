"""The equilens exception family.

Every error that equilens raises on purpose derives from :class:`EquilensError`,
so callers can catch one type. Messages say *where* the problem is (file,
frame, key, layer) and, when there is one, what to do about it.
"""

from __future__ import annotations

import os
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


class EquilensError(Exception):
    """Base class of every error raised by equilens."""


class ConfigError(EquilensError, ValueError):
    """A configuration (YAML file or mapping) is invalid: unknown key, wrong type..."""


class DataError(EquilensError, ValueError):
    """A dataset file or one of its frames is unusable.

    :param problem: what is wrong, in words
    :param path: the file the data came from (``None`` for in-memory frames)
    :param frame: the index of the frame in that file, when the problem is local
        to one frame
    """

    def __init__(
        self,
        problem: str,
        *,
        path: Optional[PathLike] = None,
        frame: Optional[int] = None,
    ):
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        self.frame = frame
        super().__init__(format_location(self.path, frame) + problem)


class ChecksumError(DataError):
    """A file does not have the SHA-256 its manifest promises."""


class DatasetNotFoundError(EquilensError, FileNotFoundError):
    """A reference dataset cannot be found locally."""


class DescriptorError(EquilensError):
    """Descriptor hyper-parameters are invalid or the calculation failed."""


class FileFormatError(EquilensError):
    """A file equilens should read (model, checkpoint, cache, TensorMap) is
    missing, corrupt, of another kind, or would need unsafe unpickling."""


class ModelError(EquilensError):
    """A model cannot be loaded or used: unknown spec, missing extra, unknown
    element, a layer that does not exist."""


def format_location(path: Optional[str], frame: Optional[int]) -> str:
    """The ``"file: frame N: "`` prefix of data error messages."""
    parts = []
    if path is not None:
        parts.append(str(path))
    else:
        parts.append("<in-memory frames>")
    if frame is not None:
        parts.append(f"frame {frame}")
    return ": ".join(parts) + ": "


class ResourceError(EquilensError):
    """A computation would need more memory than the machine has; the message
    says how much, why, and which options reduce it."""


class OutputError(EquilensError):
    """An output cannot be written where it was asked for (a file where a
    folder should be, a folder where a file should be, a read-only place)."""
