"""Locating reference data: environment variable, checksums, download."""

import hashlib

import pytest

from equilens.data.reference import (
    ENV_VARIABLE,
    ReferenceEntry,
    data_root,
    download,
    manifest,
    reference_path,
    verify_checksum,
)
from equilens.errors import ChecksumError, DatasetNotFoundError


def test_environment_variable_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VARIABLE, str(tmp_path))
    assert data_root() == tmp_path
    with pytest.raises(
        DatasetNotFoundError, match=rf"\${ENV_VARIABLE}=.*equilens data fetch water/train"
    ):
        reference_path("water/train")


def test_unknown_name():
    with pytest.raises(DatasetNotFoundError, match="unknown reference dataset 'nope'.*water/train"):
        reference_path("nope")


def test_shared_data_checksums(reference):
    for name, entry in manifest().items():
        path = reference(name)
        verify_checksum(path, entry.sha256)
        assert reference_path(name, verify=True) == path


def _entry(tmp_path, content: bytes, sha: str = None):
    source = tmp_path / "source.bin"
    source.write_bytes(content)
    return ReferenceEntry(
        name="toy/file",
        path="toy/file.bin",
        url=source.as_uri(),
        sha256=sha or hashlib.sha256(content).hexdigest(),
        frames=1,
        atoms_per_frame=1,
        formula="H",
        periodic=False,
    )


def test_download_verifies_and_is_idempotent(tmp_path):
    entry = _entry(tmp_path, b"reference data")
    target = download(entry, tmp_path / "data")
    assert target.read_bytes() == b"reference data"
    # a second call keeps the verified file without downloading
    (tmp_path / "source.bin").unlink()
    assert download(entry, tmp_path / "data") == target


def test_download_with_wrong_checksum_leaves_nothing(tmp_path):
    entry = _entry(tmp_path, b"tampered", sha="0" * 64)
    with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
        download(entry, tmp_path / "data")
    assert not (tmp_path / "data" / "toy" / "file.bin").exists()
    assert list((tmp_path / "data" / "toy").iterdir()) == []


def test_corrupt_local_copy_is_detected(tmp_path, monkeypatch):
    entry = manifest()["water_molecule/train"]
    corrupt = tmp_path / entry.path
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not a trajectory")
    monkeypatch.setenv(ENV_VARIABLE, str(tmp_path))
    assert reference_path("water_molecule/train") == corrupt
    with pytest.raises(ChecksumError, match="water_molecule/train.traj: SHA-256 mismatch"):
        reference_path("water_molecule/train", verify=True)
