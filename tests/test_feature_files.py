"""Projected features streamed to disk and read back batch by batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from equilens.data.examples import iron_water_example
from equilens.descriptors import PRESETS, compute_soap
from equilens.descriptors.compression import SpeciesPCA
from equilens.descriptors.feature_batches import feature_batches
from equilens.descriptors.feature_files import FeatureWriter, open_features, resident
from equilens.descriptors.projected import (
    FeatureSet,
    featurize,
    featurize_batches,
)
from equilens.errors import FileFormatError

HYPERS = PRESETS["small"].to_featomic()
SPECIES = (1, 8, 26)
FIELDS = ("x", "species", "atom_offsets", "energy", "forces")
GRADIENT_FIELDS = ("grad_center", "grad_neighbor", "grad_values", "pair_offsets")


@pytest.fixture(scope="module")
def frames():
    frames = iron_water_example(n_frames=7, seed=5)
    rng = np.random.default_rng(0)
    for atoms in frames:
        atoms.info["energy"] = float(rng.normal())
    return frames


@pytest.fixture(scope="module")
def pca(frames):
    return SpeciesPCA(n_components=6).fit(compute_soap(frames, SPECIES, HYPERS))


@pytest.fixture(scope="module")
def in_memory(frames, pca):
    energies = np.array([a.info["energy"] for a in frames])
    forces = [np.full((len(a), 3), 0.5) for a in frames]
    return featurize(
        frames, HYPERS, pca, energies=energies, forces=forces, gradient_dtype=torch.float16
    )


def _written(frames, pca, in_memory, folder, key="k"):
    with FeatureWriter(folder, key) as writer:
        for part in featurize_batches(
            frames, HYPERS, pca, batch_size=3, gradient_dtype=torch.float16
        ):
            writer.append(part)
        writer.finish(in_memory.energy, in_memory.forces)
    return open_features(folder, key)


def _assert_equal(a: FeatureSet, b: FeatureSet) -> None:
    for name in FIELDS + GRADIENT_FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_a_streamed_set_selects_like_the_in_memory_one(frames, pca, in_memory, tmp_path):
    mapped = _written(frames, pca, in_memory, tmp_path / "set")
    assert mapped.n_frames == len(frames)
    assert torch.equal(mapped.species, in_memory.species)
    assert torch.equal(mapped.n_atoms_per_frame, in_memory.n_atoms_per_frame)
    # written in batches of 3 frames, selected across the batches' borders
    for positions in ([2, 3, 4], [0], list(range(7)), [5, 1, 3], [6, 0]):
        _assert_equal(mapped.select(positions), in_memory.select(positions))
    # a seed's training order, kept on disk: the same frames as gathered in memory
    order = [4, 0, 6, 2, 5, 1, 3]
    shuffled, gathered = mapped.reordered(order), in_memory.select(order)
    for name in ("species", "energy", "forces", "n_atoms_per_frame", "atom_offsets"):
        assert torch.equal(getattr(shuffled, name), getattr(gathered, name)), name
    for positions in ([0, 1, 2], [6], [3, 4], [5, 0]):
        _assert_equal(shuffled.select(positions), gathered.select(positions))
    _assert_equal(shuffled.reordered([2, 0]).select([0, 1]), gathered.select([2, 0]))
    # no temporary folder left beside the set
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_a_small_set_is_read_whole_a_large_one_batch_by_batch(frames, pca, in_memory, tmp_path):
    """``resident``: the same frames, in the seed's order and type, from
    one read of the files when the set fits the limit; a larger set stays
    on disk."""
    mapped = _written(frames, pca, in_memory, tmp_path / "set")
    order = [4, 0, 6, 2, 5, 1, 3]
    shuffled = mapped.reordered(order).to(dtype=torch.float64)
    whole = resident(shuffled, limit=mapped.nbytes)
    assert isinstance(whole, FeatureSet)
    assert whole.x.dtype == torch.float64 and whole.grad_values.dtype == torch.float16
    for positions in (list(range(7)), [0, 1, 2], [6], [5, 0]):
        _assert_equal(whole.select(positions), shuffled.select(positions))
    assert resident(shuffled, limit=mapped.nbytes - 1) is shuffled


def _computing_process(batch):
    return os.getpid(), [atoms.get_chemical_formula() for atoms in batch]


def test_a_long_featurization_runs_in_fresh_child_processes(frames, pca, in_memory):
    # 7 batches, a new process every 2: 4 children, the batches in order
    parts = list(feature_batches(frames, 1, _computing_process, per_process=2))
    pids = [pid for pid, _ in parts]
    assert os.getpid() not in pids
    assert [pids[i] == pids[i + 1] for i in range(6)] == [True, False] * 3
    assert len(set(pids)) == 4
    assert [formulas for _, formulas in parts] == [[a.get_chemical_formula()] for a in frames]
    # the same numbers as in this process
    spawned = featurize_batches(
        frames, HYPERS, pca, batch_size=3, gradient_dtype=torch.float16, per_process=2
    )
    merged = FeatureSet.concatenate(list(spawned))
    for name in ("x", "species", "atom_offsets") + GRADIENT_FIELDS:
        assert torch.equal(getattr(merged, name), getattr(in_memory, name)), name
    # a set of no more batches than that stays in this process
    assert {pid for pid, _ in feature_batches(frames, 4, _computing_process, per_process=2)} == {
        os.getpid()
    }


def test_a_mapped_batch_moves_and_casts_when_asked(frames, pca, in_memory, tmp_path):
    mapped = _written(frames, pca, in_memory, tmp_path / "set").to("cpu", torch.float64)
    batch = mapped.select([2, 3])
    assert batch.x.dtype == torch.float64
    assert batch.grad_values.dtype == torch.float16  # the stored precision stays
    torch.testing.assert_close(batch.x, in_memory.select([2, 3]).x.double())


def test_a_damaged_or_foreign_set_is_refused_naming_it(frames, pca, in_memory, tmp_path):
    folder = tmp_path / "set"
    _written(frames, pca, in_memory, folder)
    with pytest.raises(FileFormatError, match="another key"):
        open_features(folder, "other")
    values = folder / "grad_values.bin"
    data = bytearray(values.read_bytes())
    data[100] ^= 0xFF  # one flipped byte, same size
    values.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="grad_values.bin: checksum mismatch"):
        open_features(folder, "k")
    values.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    with pytest.raises(FileFormatError, match="checksum mismatch"):
        open_features(folder, "k", verify=False)
    (folder / "index.json").write_text("{")
    with pytest.raises(FileFormatError, match="not a readable feature set"):
        open_features(folder, "k")


def test_a_writer_that_fails_leaves_nothing_under_the_name(frames, pca, tmp_path):
    folder = tmp_path / "set"
    with pytest.raises(RuntimeError), FeatureWriter(folder, "k") as writer:
        for part in featurize_batches(frames, HYPERS, pca, batch_size=3):
            writer.append(part)
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_folder_is_removed_by_the_next(frames, pca, in_memory, tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    dead = tmp_path / f".set.{host}-{gone.pid}.abc.tmp"
    alive = tmp_path / f".set.{host}-{os.getpid()}.abc.tmp"
    elsewhere = tmp_path / f".set.another-host-{gone.pid}.abc.tmp"
    for folder in (dead, alive, elsewhere):
        folder.mkdir()
    _written(frames, pca, in_memory, tmp_path / "set")
    assert not dead.exists() and alive.exists() and elsewhere.exists()
    # a second writer of the same set keeps the one already there
    again = _written(frames, pca, in_memory, tmp_path / "set")
    assert again.n_frames == len(frames)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["set"]


def test_training_memory_follows_the_batch(frames, pca, in_memory, tmp_path):
    """Reading every batch of a set maps and unmaps its rows: in a fresh
    process the resident file pages after a pass stay far below the set."""
    folder = tmp_path / "set"
    big = FeatureSet.concatenate([in_memory] * 150)  # 1,050 frames
    with FeatureWriter(folder, "k") as writer:
        writer.append(big)
        writer.finish()
    mapped = open_features(folder, "k")
    script = f"""
import sys
from equilens.descriptors.feature_files import open_features
mapped = open_features({str(folder)!r}, "k", verify=False)
for start in range(0, mapped.n_frames, 8):
    batch = mapped.select(range(start, min(start + 8, mapped.n_frames)))
    float(batch.grad_values.float().sum())
    del batch
status = open("/proc/self/status").read()
print([int(l.split()[1]) for l in status.splitlines() if l.startswith("RssFile")][0] * 1024)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    resident = int(result.stdout.split()[-1])
    assert mapped.nbytes > 20e6
    # the interpreter's and libraries' files (one batch read), but not the set's pages
    baseline = subprocess.run(
        [sys.executable, "-c", script.replace("range(0, mapped.n_frames, 8)", "range(0, 8, 8)")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert resident - int(baseline.stdout.split()[-1]) < 0.1 * mapped.nbytes
