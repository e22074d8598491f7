"""Running featomic over batches of frames, with a progress bar."""

from __future__ import annotations

import warnings
from typing import Callable, Iterator, List, Sequence, Tuple

import ase
import featomic
import metatensor
import numpy as np
from metatensor import Labels, TensorBlock, TensorMap
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


def join_batches(parts: List[Tuple[int, TensorMap]]) -> TensorMap:
    """Join batch results along samples, renumbering ``system`` globally."""
    if len(parts) == 1:
        return parts[0][1]
    shifted = [offset_systems(t, start) if start else t for start, t in parts]
    return metatensor.join(shifted, axis="samples", different_keys="union")


def offset_systems(tensor: TensorMap, offset: int) -> TensorMap:
    """Shift the ``system`` sample index (values and gradients) by ``offset``."""
    blocks = []
    for block in tensor.blocks():
        new = TensorBlock(
            block.values, _shift(block.samples, offset), block.components, block.properties
        )
        for parameter, gradient in block.gradients():
            new.add_gradient(
                parameter,
                TensorBlock(
                    gradient.values,
                    _shift(gradient.samples, offset),
                    gradient.components,
                    gradient.properties,
                ),
            )
        blocks.append(new)
    return TensorMap(tensor.keys, blocks)


def _shift(labels: Labels, offset: int) -> Labels:
    values = labels.values.copy()
    values[:, labels.names.index("system")] += offset
    return Labels(labels.names, values)


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
    numbers = set()
    for atoms in frames:
        numbers.update(int(z) for z in np.unique(atoms.numbers))
    return tuple(sorted(numbers))


def make_calculator(cls, hypers: dict):
    """Instantiate a featomic calculator, reporting bad hypers clearly."""
    try:
        return cls(**hypers)
    except (TypeError, ValueError, featomic.FeatomicError) as error:
        raise DescriptorError(f"invalid featomic hyper-parameters: {error}") from None
