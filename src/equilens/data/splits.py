"""Reproducible train / validation / test splits.

Two ways to split: seeded random fractions of one dataset
(:func:`random_split`), or separate files given by the user
(:func:`load_splits`). Either way the result is a mapping from split name to
:class:`~equilens.data.io.Dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional

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
    """

    train: str
    validation: Optional[str] = None
    test: Optional[str] = None
    validation_fraction: float = 0.1
    test_fraction: float = 0.0
    seed: int = 0

    def __post_init__(self):
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}")


def resolve_path(path: str):
    """A file path, or the local copy of ``reference:NAME``."""
    prefix = "reference:"
    if str(path).startswith(prefix):
        return reference_path(str(path)[len(prefix) :])
    return path


def load_splits(config: SplitConfig, options: Optional[ReadOptions] = None) -> Dict[str, Dataset]:
    """Read the files of ``config`` and return ``{"train", "validation", "test"}``.

    Splits that end up empty (no file and a zero fraction) are left out of the
    result.
    """
    train = read_dataset(resolve_path(config.train), options)
    held_out = {}
    if config.validation is None and config.validation_fraction > 0:
        held_out["validation"] = config.validation_fraction
    if config.test is None and config.test_fraction > 0:
        held_out["test"] = config.test_fraction

    result: Dict[str, Dataset] = {}
    if held_out:
        fractions = {"train": 1.0 - sum(held_out.values()), **held_out}
        result.update(random_split(train, fractions, config.seed))
    else:
        result["train"] = train
    for name in ("validation", "test"):
        path = getattr(config, name)
        if path is not None:
            result[name] = read_dataset(resolve_path(path), options)
    return {name: result[name] for name in ("train", "validation", "test") if name in result}
