"""Reproducible train / validation / test splits.

Two ways to split: seeded random fractions of one dataset
(:func:`random_split`), or separate files given by the user
(:func:`load_splits`). Either way the result is a mapping from split name to
:class:`~equilens.data.io.Dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

import ase
import numpy as np

from ..errors import ConfigError, DataError
from .io import Dataset, ReadOptions, read_dataset
from .reference import reference_path


def random_split_indices(
    n_items: int, fractions: Mapping[str, float], seed: int
) -> Dict[str, np.ndarray]:
    """Split ``range(n_items)`` at random into named parts.

    The fractions must be non-negative and sum to at most 1; when they sum to
    less, the remainder is left out. Sizes are rounded down, except that every
    part with a positive fraction gets at least one item when possible, and a
    remainder of rounding goes to the first part. The same ``seed`` always
    gives the same split.

    :returns: a mapping from part name to sorted indices
    """
    if n_items <= 0:
        raise DataError("cannot split an empty dataset")
    values = np.array(list(fractions.values()), dtype=float)
    if np.any(values < 0) or values.sum() > 1 + 1e-9:
        raise ConfigError(
            f"split fractions must be >= 0 and sum to at most 1, got {dict(fractions)}"
        )
    sizes = np.floor(values * n_items).astype(int)
    sizes[(values > 0) & (sizes == 0)] = 1
    if abs(values.sum() - 1) < 1e-9:
        sizes[0] += n_items - sizes.sum()
    if sizes.sum() > n_items or np.any(sizes < 0):
        raise DataError(f"cannot split {n_items} items into parts {dict(fractions)}: too few items")
    order = np.random.default_rng(seed).permutation(n_items)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return {
        name: np.sort(order[start:stop])
        for name, start, stop in zip(fractions, bounds[:-1], bounds[1:])
    }


def random_split(dataset: Dataset, fractions: Mapping[str, float], seed: int) -> Dict[str, Dataset]:
    """Split ``dataset`` into named parts by seeded random fractions."""
    indices = random_split_indices(len(dataset), fractions, seed)
    return {name: dataset.subset(idx) for name, idx in indices.items()}


@dataclass(frozen=True)
class SplitConfig:
    """Where the train, validation and test frames come from.

    Either give ``train`` alone and fractions for the others (held out of it at
    random with ``seed``), or give a file for each split.

    Paths may name a reference dataset as ``reference:NAME`` (e.g.
    ``reference:water/train``), found through
    :func:`~equilens.data.reference.reference_path`.

    :param train: the training file
    :param validation: a separate validation file, or ``None`` to hold out
        ``validation_fraction`` of ``train``
    :param test: a separate test file, or ``None`` to hold out
        ``test_fraction`` of ``train`` (0 for no test set)
    :param validation_fraction: fraction of ``train`` used for validation when
        ``validation`` is ``None``
    :param test_fraction: fraction of ``train`` used for testing when ``test``
        is ``None``
    :param seed: the seed of the random hold-out
    :param stratify: hold out the fractions within each group of frames with
        the same number of atoms (e.g. monomers, dimers, trimers), so that
        every split has the same mix of sizes; the test frames are drawn
        first, then the validation frames, at least one of each
    :param train_frames: train on this many of the training frames (after
        the hold-outs), drawn at random with ``seed``; the frames of a smaller
        number are among those of a larger one, so a learning curve adds
        frames to the same set (``None``: all of them)
    """

    train: str
    validation: Optional[str] = None
    test: Optional[str] = None
    validation_fraction: float = 0.1
    test_fraction: float = 0.0
    seed: int = 0
    stratify: bool = False
    train_frames: Optional[int] = None

    def __post_init__(self):
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.train_frames is not None and self.train_frames < 1:
            raise ValueError(f"train_frames must be >= 1, got {self.train_frames}")


def split_identity(section: Dict[str, Any]) -> Dict[str, Any]:
    """The ``data`` section (plain mapping) as it identifies a run: keys added
    after runs were first recorded are left out at their default, so that
    the outputs of an earlier equilens are still those of the same run."""
    return {key: value for key, value in section.items() if key != "train_frames" or value}


def stratified_split_indices(
    sizes: Sequence[int], test: float, validation: float, seed: int
) -> Dict[str, np.ndarray]:
    """Train / validation / test indices with each size group split alike.

    Within each group of equal ``sizes`` (in increasing size), a seeded
    permutation gives ``round(test * n)`` test items, then
    ``round(validation * n)`` validation items, the rest for training.
    """
    rng = np.random.default_rng(seed)
    size_of = np.asarray(sizes)
    parts: Dict[str, list] = {"train": [], "validation": [], "test": []}
    for size in np.unique(size_of):
        members = rng.permutation(np.flatnonzero(size_of == size))
        n_test = int(round(test * len(members)))
        n_val = int(round(validation * len(members)))
        parts["test"].extend(members[:n_test])
        parts["validation"].extend(members[n_test : n_test + n_val])
        parts["train"].extend(members[n_test + n_val :])
    result = {name: np.sort(np.array(idx, dtype=np.int64)) for name, idx in parts.items()}
    empty = [
        name for name, fraction in (("test", test), ("validation", validation)) if fraction > 0
    ]
    empty = [name for name in ["train", *empty] if len(result[name]) == 0]
    if empty:
        raise ConfigError(
            f"the stratified split left an empty {empty[0]} set "
            f"({ {k: len(v) for k, v in result.items()} }); use larger fractions or more frames"
        )
    return {name: idx for name, idx in result.items() if len(idx) or name == "train"}


def split_indices(config: SplitConfig, frames: Sequence[ase.Atoms]) -> Dict[str, np.ndarray]:
    """Positions in ``frames`` (those of the ``train`` file) of each split held out of it.

    Returns ``{"train": ..., "validation": ..., "test": ...}`` for the splits
    taken from this file (a split given as its own file is not included).
    """
    parts = _held_out_indices(config, frames)
    if config.train_frames is not None:
        parts["train"] = _training_subset(parts["train"], config.train_frames, config)
    return parts


def _training_subset(train: np.ndarray, count: int, config: SplitConfig) -> np.ndarray:
    """``count`` of the ``train`` positions, nested over ``count``."""
    if count > len(train):
        raise ConfigError(
            f"data.train_frames: {count} frames asked for, the training split of "
            f"{config.train} has {len(train)}"
        )
    # a stream of its own, so that the hold-outs do not depend on train_frames
    order = np.random.default_rng([config.seed, 1]).permutation(len(train))
    return np.sort(train[order[:count]])


def _held_out_indices(config: SplitConfig, frames: Sequence[ase.Atoms]) -> Dict[str, np.ndarray]:
    held_out = {}
    if config.validation is None and config.validation_fraction > 0:
        held_out["validation"] = config.validation_fraction
    if config.test is None and config.test_fraction > 0:
        held_out["test"] = config.test_fraction
    if not held_out:
        return {"train": np.arange(len(frames))}
    if config.stratify:
        sizes = [len(frame) for frame in frames]
        return stratified_split_indices(
            sizes, held_out.get("test", 0.0), held_out.get("validation", 0.0), config.seed
        )
    fractions = {"train": 1.0 - sum(held_out.values()), **held_out}
    return random_split_indices(len(frames), fractions, config.seed)


def resolve_path(path: str):
    """A file path, the local copy of ``reference:NAME`` or the packaged
    ``embedded:NAME`` (see :mod:`equilens.data.embedded`)."""
    from .embedded import EMBEDDED_PREFIX, embedded_path

    text = str(path)
    if text.startswith("reference:"):
        return reference_path(text[len("reference:") :])
    if text.startswith(EMBEDDED_PREFIX):
        return embedded_path(text[len(EMBEDDED_PREFIX) :])
    return path


def load_splits(config: SplitConfig, options: Optional[ReadOptions] = None) -> Dict[str, Dataset]:
    """Read the files of ``config`` and return ``{"train", "validation", "test"}``.

    Splits that end up empty (no file and a zero fraction) are left out of the
    result.
    """
    train = read_dataset(resolve_path(config.train), options)
    result: Dict[str, Dataset] = {
        name: train.subset(indices) for name, indices in split_indices(config, train.frames).items()
    }
    for name in ("validation", "test"):
        path = getattr(config, name)
        if path is not None:
            result[name] = read_dataset(resolve_path(path), options)
    return {name: result[name] for name in ("train", "validation", "test") if name in result}
