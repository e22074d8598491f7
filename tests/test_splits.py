"""Seeded splits are reproducible, disjoint and complete; file splits work."""

from dataclasses import dataclass, replace

import ase
import ase.io
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from equilens.config import from_mapping, to_mapping
from equilens.data.io import validate_frames
from equilens.data.splits import (
    SplitConfig,
    load_splits,
    random_split,
    random_split_indices,
    split_indices,
)
from equilens.errors import ConfigError, DataError
from equilens.storage import hash_json


def test_random_split_is_reproducible_disjoint_and_complete():
    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    a = random_split_indices(101, fractions, seed=7)
    b = random_split_indices(101, fractions, seed=7)
    c = random_split_indices(101, fractions, seed=8)
    for name in fractions:
        np.testing.assert_array_equal(a[name], b[name])
    assert any(not np.array_equal(a[n], c[n]) for n in fractions)
    everything = np.concatenate(list(a.values()))
    assert len(everything) == 101 and len(np.unique(everything)) == 101
    assert [len(a[n]) for n in fractions] == [81, 10, 10]


def test_partial_fractions_and_errors():
    parts = random_split_indices(10, {"validation": 0.25}, seed=0)
    assert len(parts["validation"]) == 2
    with pytest.raises(ConfigError, match="sum to at most 1"):
        random_split_indices(10, {"a": 0.7, "b": 0.5}, seed=0)
    with pytest.raises(DataError, match="empty"):
        random_split_indices(0, {"a": 1.0}, seed=0)
    with pytest.raises(DataError, match="too few items"):
        random_split_indices(2, {"a": 0.3, "b": 0.3, "c": 0.3}, seed=0)


def _frames(n, offset=0.0):
    frames = []
    for i in range(n):
        atoms = ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.01 * i]])
        atoms.calc = SinglePointCalculator(atoms, energy=offset + i, forces=np.zeros((2, 3)))
        frames.append(atoms)
    return frames


def test_random_split_of_a_dataset_keeps_targets():
    dataset = validate_frames(_frames(20))
    parts = random_split(dataset, {"train": 0.5, "test": 0.5}, seed=1)
    for part in parts.values():
        np.testing.assert_array_equal(part.energies, part.frame_indices.astype(float))


def test_load_splits_from_files_and_fractions(tmp_path):
    ase.io.write(tmp_path / "train.extxyz", _frames(30))
    ase.io.write(tmp_path / "test.extxyz", _frames(5, offset=100))
    config = from_mapping(
        SplitConfig,
        {
            "train": str(tmp_path / "train.extxyz"),
            "test": str(tmp_path / "test.extxyz"),
            "validation_fraction": 0.2,
            "seed": 3,
        },
    )
    splits = load_splits(config)
    assert list(splits) == ["train", "validation", "test"]
    assert [len(splits[n]) for n in splits] == [24, 6, 5]
    assert splits["test"].energies.min() == 100
    again = load_splits(config)
    np.testing.assert_array_equal(
        again["validation"].frame_indices, splits["validation"].frame_indices
    )
    assert not set(splits["train"].frame_indices) & set(splits["validation"].frame_indices)


def test_split_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="validation_fraction must be in"):
        from_mapping(SplitConfig, {"train": "x", "validation_fraction": 1.5})
    with pytest.raises(ConfigError, match="unknown key 'vaildation'"):
        from_mapping(SplitConfig, {"train": "x", "vaildation": "y"})


def test_train_frames_nest_and_leave_the_held_out_frames_alone():
    frames = _frames(50)
    full = SplitConfig(train="x.extxyz", validation_fraction=0.2, seed=4)
    every = split_indices(full, frames)
    subsets = {}
    for count in (5, 10, 40):
        parts = split_indices(replace(full, train_frames=count), frames)
        np.testing.assert_array_equal(parts["validation"], every["validation"])
        assert len(parts["train"]) == count and set(parts["train"]) <= set(every["train"])
        subsets[count] = set(parts["train"])
    assert subsets[5] <= subsets[10] <= subsets[40]
    other_seed = split_indices(replace(full, train_frames=10, seed=5), frames)["train"]
    assert set(other_seed) != subsets[10]
    with pytest.raises(ConfigError, match=r"data.train_frames: 41 frames .* x.extxyz has 40"):
        split_indices(replace(full, train_frames=41), frames)
    with pytest.raises(ConfigError, match="train_frames must be >= 1"):
        from_mapping(SplitConfig, {"train": "x", "train_frames": 0})


def test_a_run_without_train_frames_keeps_its_fingerprint():
    from equilens.training.config import run_fingerprint

    @dataclass
    class Run:
        data: SplitConfig

    plain = run_fingerprint(Run(SplitConfig(train="x")), {})
    assert "train_frames" not in plain["config"]["data"]
    subset = run_fingerprint(Run(SplitConfig(train="x", train_frames=3)), {})
    assert subset["config"]["data"]["train_frames"] == 3


def test_a_study_without_train_frames_keeps_its_claim(tmp_path, monkeypatch):
    import json

    from equilens.study.config import StudyConfig
    from equilens.study.run import _checked_inputs

    monkeypatch.chdir(tmp_path)
    config = StudyConfig(output_dir=str(tmp_path), cache_dir=None)
    _checked_inputs(config, tmp_path / "default", overwrite=False)
    claimed = json.loads((tmp_path / "default" / "study.json").read_text())
    plain = {k: v for k, v in to_mapping(config).items() if not k.endswith("_dir")}
    del plain["data"]["train_frames"]
    assert claimed["fingerprint"] == hash_json(plain)
