"""The SOAP power spectrum over a fixed species list.

featomic returns one block per ``(center_type, neighbor_1_type,
neighbor_2_type)``, and a block only lists the centers that have neighbors of
those types. :func:`compute_soap` turns that into one block per center type
with the neighbor types in the properties (or keeps the sparse layout with
every key of the species list), streaming batches of frames straight into the
final arrays:

- every atom of a center type gets a row, in ``(system, atom)`` order, zeros
  where a pair of neighbor types is absent (the result equals metatensor's
  ``keys_to_properties`` on the joined featomic output; a test checks it);
- the final arrays are allocated up front and their pages touched in a
  background thread while featomic computes the first batch: first-touch page
  faults of a fresh 700 MB array otherwise cost as much as 20% of the SOAP
  time on these machines (measured in ``benchmarks/descriptors.py``);
- gradient rows are, per center atom, the union over the pair blocks of the
  atoms it depends on.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Sequence

import ase
import featomic
import numpy as np
from metatensor import Labels, TensorBlock, TensorMap

from ..tensormaps import join_by_system
from ._batches import check_species, iterate_batches, make_calculator
from .alchemical import split_hypers
from .alchemical_soap import compute_alchemical_soap
from .budget import check_soap_memory


def compute_soap(
    frames: Sequence[ase.Atoms],
    species: Sequence[int],
    hypers: Dict[str, Any],
    gradients: bool = False,
    batch_size: int = 50,
    progress: bool = False,
    neighbors: str = "properties",
) -> TensorMap:
    """The SOAP power spectrum of ``frames`` over a fixed ``species`` list.

    :param frames: structures; every atomic number must be in ``species``
    :param species: atomic numbers of the centers and neighbors
    :param hypers: featomic hyper-parameters (see ``SoapHypers.to_featomic``)
    :param gradients: also compute gradients with respect to positions
    :param batch_size: frames per featomic call (memory and progress only)
    :param progress: show a progress bar
    :param neighbors: ``"properties"`` (default) or ``"keys"``, see below
    :returns: with ``hypers["alchemical"]`` (an
        ``AlchemicalConfig`` as a
        mapping): the compressed SOAP of
        :func:`~equilens.descriptors.alchemical_soap.compute_alchemical_soap`
        (always the dense layout). Otherwise, with ``neighbors="properties"``:
        keys ``center_type`` (one block per species), samples ``(system,
        atom)`` (every atom), properties
        ``(neighbor_1_type, neighbor_2_type, l, n_1, n_2)``. With
        ``neighbors="keys"``: featomic's keys ``(center_type, neighbor_1_type,
        neighbor_2_type)`` for every combination of ``species`` (blocks
        empty where absent), properties ``(l, n_1, n_2)``
    """
    if neighbors not in ("properties", "keys"):
        raise ValueError(f"neighbors must be 'properties' or 'keys', got {neighbors!r}")
    species = check_species(frames, species)
    hypers, alchemical = split_hypers(hypers)
    if alchemical is not None:
        return compute_alchemical_soap(
            frames, species, hypers, alchemical, gradients, batch_size, progress
        )
    check_soap_memory(frames, len(species), hypers, gradients)
    calculator = make_calculator(featomic.SoapPowerSpectrum, hypers)
    pairs = [(a, b) for i, a in enumerate(species) for b in species[i:]]
    selected = Labels(
        ["center_type", "neighbor_1_type", "neighbor_2_type"],
        np.array([(c, a, b) for c in species for (a, b) in pairs], dtype=np.int32),
    )

    def compute(batch):
        return calculator.compute(
            batch, gradients=["positions"] if gradients else [], selected_keys=selected
        )

    batches = iterate_batches(compute, frames, batch_size, progress, "SOAP")
    if neighbors == "keys":
        return join_by_system(list(batches))
    assembler = _DenseAssembler(frames, species, pairs, gradients)
    for start, tensor in batches:
        assembler.add(start, tensor)
    return assembler.tensor()


class _DenseAssembler:
    """Writes featomic's pair blocks into one dense block per center type."""

    def __init__(self, frames, species: List[int], pairs: List[tuple], gradients: bool):
        self.species = species
        self.pairs = pairs
        self.gradients = gradients
        numbers = [np.asarray(atoms.numbers) for atoms in frames]
        self.atom_offset = np.concatenate([[0], np.cumsum([len(n) for n in numbers])])
        all_numbers = np.concatenate(numbers)
        system = np.repeat(np.arange(len(frames)), [len(n) for n in numbers])
        atom = np.concatenate([np.arange(len(n)) for n in numbers])
        # row of every atom in the block of its center type
        self.row_of_atom = np.empty(len(all_numbers), dtype=np.int64)
        self.samples = {}
        for z in species:
            mask = all_numbers == z
            self.row_of_atom[mask] = np.arange(mask.sum())
            self.samples[z] = np.column_stack([system[mask], atom[mask]]).astype(np.int32)
        self.properties = None
        self.values: Dict[int, np.ndarray] = {}
        self.gradient_parts: Dict[int, list] = {z: [] for z in species}
        self._prefault: Optional[threading.Thread] = None

    def _allocate(self, template: TensorBlock) -> None:
        names = template.properties.names
        pair_properties = template.properties.values
        self.n_pair = len(pair_properties)
        self.properties = Labels(
            ["neighbor_1_type", "neighbor_2_type"] + names,
            np.array(
                [(a, b) + tuple(row) for (a, b) in self.pairs for row in pair_properties.tolist()],
                dtype=np.int32,
            ).reshape(-1, 2 + len(names)),
        )
        width = len(self.properties)
        self.values = {z: np.empty((len(self.samples[z]), width)) for z in self.species}
        self.gradient_components = (
            template.gradient("positions").components if self.gradients else None
        )

        def touch():
            for array in self.values.values():
                array.fill(0.0)  # numpy releases the GIL for this loop

        self._prefault = threading.Thread(target=touch, daemon=True)
        self._prefault.start()

    def add(self, start: int, tensor: TensorMap) -> None:
        """Write the blocks of one batch, whose first frame is ``start``."""
        if self.properties is None:
            self._allocate(tensor.block(0))
            # the first batch is computed; wait until the pages are ready
            assert self._prefault is not None
            self._prefault.join()
        names = tensor.keys.names
        for center in self.species:
            blocks = [tensor.block(dict(zip(names, (center, a, b)))) for a, b in self.pairs]
            out = self.values[center]
            block_rows = []
            for index, block in enumerate(blocks):
                samples = block.samples.values
                rows = self.row_of_atom[self.atom_offset[samples[:, 0] + start] + samples[:, 1]]
                columns = slice(index * self.n_pair, (index + 1) * self.n_pair)
                # a plain ndarray view: scattering from metatensor's array
                # subclass is 25x slower
                out[rows, columns] = block.values.view(np.ndarray)
                block_rows.append(rows)
            if self.gradients:
                self.gradient_parts[center].append(self._dense_gradient(blocks, block_rows, start))

    def _dense_gradient(self, blocks, block_rows, start):
        """Gradient rows of one batch: the union over the pair blocks."""
        renumbered = []
        for block, rows in zip(blocks, block_rows):
            g = block.gradient("positions").samples.values.astype(np.int64)
            renumbered.append(np.column_stack([rows[g[:, 0]], g[:, 1] + start, g[:, 2]]))
        stacked = np.concatenate(renumbered)
        n_neighbors = 1 + (int(stacked[:, 2].max()) if len(stacked) else 0)
        codes = [g[:, 0] * n_neighbors + g[:, 2] for g in renumbered]
        union, first = np.unique(np.concatenate(codes), return_index=True)
        values = np.zeros((len(union), 3, len(self.properties)))
        for index, (block, code) in enumerate(zip(blocks, codes)):
            where = np.searchsorted(union, code)
            columns = slice(index * self.n_pair, (index + 1) * self.n_pair)
            values[where, :, columns] = block.gradient("positions").values.view(np.ndarray)
        return stacked[first], values

    def tensor(self) -> TensorMap:
        """The assembled TensorMap (keys ``center_type``)."""
        blocks = []
        for center in self.species:
            block = TensorBlock(
                self.values[center],
                Labels(["system", "atom"], self.samples[center]),
                [],
                self.properties,
            )
            if self.gradients:
                parts = self.gradient_parts[center]
                samples = np.concatenate([p[0] for p in parts]).astype(np.int32)
                values = np.concatenate([p[1] for p in parts])
                block.add_gradient(
                    "positions",
                    TensorBlock(
                        values,
                        Labels(["sample", "system", "atom"], samples),
                        self.gradient_components,
                        self.properties,
                    ),
                )
            blocks.append(block)
        keys = Labels(["center_type"], np.array([[c] for c in self.species], dtype=np.int32))
        return TensorMap(keys, blocks)
