"""Running featomic over batches of frames, with a progress bar."""

from __future__ import annotations

import warnings
from typing import Callable, Iterator, List, Sequence, Tuple

import ase
import featomic
import numpy as np
from metatensor import TensorMap
from tqdm.auto import tqdm

from ..errors import DescriptorError


def iterate_batches(
    compute: Callable[[List[ase.Atoms]], TensorMap],
    frames: Sequence[ase.Atoms],
    batch_size: int,
    progress: bool,
    name: str,
) -> Iterator[Tuple[int, TensorMap]]:
    """Yield ``(index of the first frame, compute(batch))`` for each batch.

    featomic errors become :class:`DescriptorError` naming the frames.
    """
    bar = tqdm(total=len(frames), desc=name, unit="frame", disable=not progress, leave=False)
    with bar:
        for start in range(0, len(frames), batch_size):
            batch = list(frames[start : start + batch_size])
            try:
                with warnings.catch_warnings():
                    # ASE gives non-periodic molecules a cell; featomic warns
                    # that it ignores it, which is what we want
                    warnings.filterwarnings(
                        "ignore", message="periodic boundary conditions are disabled"
                    )
                    tensor = compute(batch)
            except featomic.FeatomicError as error:
                raise DescriptorError(
                    f"featomic failed on frames {start} to {start + len(batch) - 1}: {error}"
                ) from None
            yield start, tensor
            bar.update(len(batch))


def check_species(frames: Sequence[ase.Atoms], species: Sequence[int]) -> List[int]:
    """The sorted species list; every frame must only contain these."""
    species = sorted(set(int(s) for s in species))
    if len(frames) == 0:
        raise DescriptorError("no frames to compute descriptors for")
    if not species:
        raise DescriptorError("the species list is empty")
    allowed = set(species)
    for index, atoms in enumerate(frames):
        extra = set(int(z) for z in np.unique(atoms.numbers)) - allowed
        if extra:
            raise DescriptorError(
                f"frame {index} contains atomic numbers {sorted(extra)} that are not "
                f"in the descriptor species {species}"
            )
    return species


def frames_species(frames: Sequence[ase.Atoms]) -> Tuple[int, ...]:
    """Sorted atomic numbers present in ``frames``."""
    numbers: set = set()
    for atoms in frames:
        numbers.update(int(z) for z in np.unique(atoms.numbers))
    return tuple(sorted(numbers))


def make_calculator(cls, hypers: dict):
    """Instantiate a featomic calculator, reporting bad hypers clearly."""
    try:
        return cls(**hypers)
    except (TypeError, ValueError, featomic.FeatomicError) as error:
        raise DescriptorError(f"invalid featomic hyper-parameters: {error}") from None
