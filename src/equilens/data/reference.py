"""Locate, verify and fetch the public reference datasets.

The datasets are listed in ``reference_manifest.json`` (next to this module)
with their public URL and SHA-256. Local copies are looked up in one place:

1. the folder named by the environment variable ``EQUILENS_DATA``, if set;
2. otherwise ``../shared/data`` next to the project checkout (or next to the
   current directory).

:func:`reference_path` returns the path of a dataset (optionally verifying its
checksum); :func:`fetch_reference` downloads a missing one and verifies it.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional

from ..errors import ChecksumError, DatasetNotFoundError
from ..storage import file_sha256

ENV_VARIABLE = "EQUILENS_DATA"
_MANIFEST = Path(__file__).with_name("reference_manifest.json")


@dataclass(frozen=True)
class ReferenceEntry:
    """One public dataset file: where it lives and what it must hash to."""

    name: str
    path: str
    url: str
    sha256: str
    frames: int
    atoms_per_frame: int
    formula: str
    periodic: bool


@lru_cache(maxsize=1)
def manifest() -> Dict[str, ReferenceEntry]:
    """The reference datasets, by name (e.g. ``"iron_water/train"``)."""
    with open(_MANIFEST, encoding="utf-8") as fd:
        raw = json.load(fd)["datasets"]
    return {name: ReferenceEntry(name=name, **entry) for name, entry in raw.items()}


def data_root() -> Optional[Path]:
    """The folder holding local copies of the reference datasets.

    ``$EQUILENS_DATA`` when set (even if it does not exist, so that a typo is
    reported rather than silently replaced), else the first existing
    ``../shared/data`` next to the project checkout or the current directory;
    ``None`` if there is none.
    """
    if ENV_VARIABLE in os.environ:
        return Path(os.environ[ENV_VARIABLE]).expanduser()
    project_root = Path(__file__).resolve().parents[3]
    for base in (project_root, Path.cwd()):
        candidate = (base / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return None


def reference_path(name: str, verify: bool = False) -> Path:
    """The local path of the reference dataset ``name``.

    :param name: a key of :func:`manifest`, e.g. ``"water/train"``
    :param verify: also check the file's SHA-256 against the manifest
    :raises DatasetNotFoundError: when the name is unknown or the file is not
        present locally (the message says how to get it)
    :raises ChecksumError: when ``verify`` is set and the file differs
    """
    entry = _entry(name)
    root = data_root()
    if root is None or not (root / entry.path).is_file():
        where = (
            f"${ENV_VARIABLE}={os.environ[ENV_VARIABLE]}"
            if ENV_VARIABLE in os.environ
            else "../shared/data"
        )
        raise DatasetNotFoundError(
            f"reference dataset '{name}' ({entry.path}) not found in {where}; set "
            f"{ENV_VARIABLE} to the folder holding it, or download it with "
            f"`equilens data fetch {name}`"
        )
    path = root / entry.path
    if verify:
        verify_checksum(path, entry.sha256)
    return path


def verify_checksum(path: Path, expected: str) -> None:
    """Raise :class:`ChecksumError` unless ``path`` hashes to ``expected``."""
    actual = file_sha256(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"SHA-256 mismatch: expected {expected}, got {actual}; the file is "
            "corrupt or not the published version, delete it and fetch it again",
            path=path,
        )


def fetch_reference(name: str, destination: Optional[Path] = None) -> Path:
    """Make the reference dataset ``name`` available locally and return its path.

    A file already present with the right checksum is kept; otherwise it is
    downloaded from the manifest URL to a temporary file, verified, and moved
    into place atomically.

    :param destination: the data folder; defaults to :func:`data_root`, or
        ``./equilens_data`` when there is none
    """
    destination = Path(destination or data_root() or "equilens_data")
    return download(_entry(name), destination)


def download(entry: ReferenceEntry, destination: Path) -> Path:
    """Download ``entry`` into ``destination / entry.path``, verifying it."""
    target = Path(destination) / entry.path
    if target.is_file():
        verify_checksum(target, entry.sha256)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(entry.url) as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                out.write(chunk)
        try:
            verify_checksum(tmp, entry.sha256)
        except ChecksumError as error:
            raise ChecksumError(
                f"downloaded from {entry.url}: {error.problem}", path=target
            ) from None
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _entry(name: str) -> ReferenceEntry:
    entries = manifest()
    if name not in entries:
        raise DatasetNotFoundError(
            f"unknown reference dataset '{name}'; known: {', '.join(entries)}"
        )
    return entries[name]
