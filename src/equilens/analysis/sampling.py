"""The samples a comparison measures on, and their train/test split.

:func:`sample_split` draws them from a seeded generator in the order
:func:`equilens.analysis.compare.compare` does, so that code fitting the
measures itself (the scorecard's GFRE) measures on the same rows.
"""

from __future__ import annotations

from typing import Optional, Sized, Tuple, Union

import numpy as np
from skmatter.sample_selection import FPS

from ..errors import EquilensError


def sample_split(
    first: Union[np.ndarray, Sized],
    n_samples: int,
    selection: str = "random",
    train_fraction: float = 0.5,
    split: Optional[tuple] = None,
    rng: Optional[np.random.Generator] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The samples :func:`~equilens.analysis.compare.compare` measures on and their split:
    ``(chosen, train_idx, test_idx)``, ``train_idx`` and ``test_idx`` indexing
    ``chosen``; drawn from ``rng`` in :func:`~equilens.analysis.compare.compare`'s order, so that a
    caller fitting the measures itself gets the same split from the same seed.

    :param first: the first feature set's rows (farthest-point sampling runs
        in them; a random selection needs only their number)
    """
    rng = np.random.default_rng(0) if rng is None else rng
    chosen = _select(first, min(n_samples, len(first)), selection, rng)
    train_idx, test_idx = _split(len(chosen), train_fraction, split, rng)
    return chosen, train_idx, test_idx


def _split(n_chosen: int, train_fraction: float, split, rng) -> Tuple[np.ndarray, np.ndarray]:
    """``(train_idx, test_idx)`` into the chosen samples: ``split`` or seeded."""
    if split is not None:
        train_idx, test_idx = (np.asarray(s, dtype=int) for s in split)
        return train_idx, test_idx
    order = rng.permutation(n_chosen)
    n_train = int(round(train_fraction * n_chosen))
    if n_train < 2 or n_chosen - n_train < 1:
        raise EquilensError(f"too few samples ({n_chosen}) for a train/test split")
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def _select(x, count: int, selection: str, rng) -> np.ndarray:
    if selection == "random":
        return np.sort(rng.choice(len(x), count, replace=False))
    if selection == "fps":
        start = int(rng.integers(len(x)))
        selector = FPS(n_to_select=count, initialize=start).fit(x)
        return np.sort(selector.selected_idx_)
    raise EquilensError(f"selection must be 'random' or 'fps', got {selection!r}")
