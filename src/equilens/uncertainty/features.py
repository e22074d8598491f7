"""One layer of a model as rows of one matrix, per atom and per structure.

The uncertainty estimators work in the space of one layer. A layer comes
from :meth:`~equilens.models.base.Model.layers` as a TensorMap with one
block per species (equivariant layers become their invariant summaries,
:func:`~equilens.tensormaps.invariant_summary`). :class:`LayerLayout` puts
every atom's features in one row of a common space:

- a model with per-species coordinates (a per-species network) gets one
  column range per species, zero elsewhere, since its readout has one set of
  weights per species;
- a model whose species share coordinates (one readout for all) gets one
  column range for all;

and, in both cases, one indicator column per species (the per-species
offset a readout adds). The sum of an atom's rows over a structure is then
the structure's feature vector: a potential whose energy is a linear readout
of this layer plus species offsets predicts ``w . sum_i row_i``, which is
what last-layer prediction rigidity (:class:`~equilens.uncertainty.LLPR`)
needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import ase
import numpy as np
from metatensor import TensorMap

from ..analysis.latents import arrange_layers
from ..errors import ModelError


@dataclass(frozen=True)
class AtomRows:
    """Per-atom rows of one layer for a list of frames, in frame order.

    :param values: ``(n_atoms, n_columns)``, atoms of frame 0 first, in
        the order of each frame
    :param system: frame index of each row
    :param center_type: atomic number of each row
    :param n_frames: number of frames
    """

    values: np.ndarray
    system: np.ndarray
    center_type: np.ndarray
    n_frames: int

    def structure_sums(self) -> np.ndarray:
        """``(n_frames, n_columns)``: the sum of each frame's rows."""
        sums = np.zeros((self.n_frames, self.values.shape[1]))
        np.add.at(sums, self.system, self.values)
        return sums

    def per_frame(self, values: np.ndarray) -> List[np.ndarray]:
        """``values`` (one per row) split into one array per frame."""
        bounds = np.searchsorted(self.system, np.arange(self.n_frames + 1))
        return [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


@dataclass(frozen=True)
class LayerLayout:
    """Where each species' features go in the common row space.

    :param layer: the layer's name
    :param species: the atomic numbers, in the order of the indicator columns
    :param widths: number of features of each species' block
    :param shared: whether the species share one column range
    """

    layer: str
    species: Tuple[int, ...]
    widths: Tuple[int, ...]
    shared: bool

    @property
    def n_columns(self) -> int:
        """Width of a row: the feature columns, then one indicator per species."""
        features = self.widths[0] if self.shared else sum(self.widths)
        return features + len(self.species)

    def offset(self, species: int) -> int:
        """First feature column of ``species``."""
        if self.shared:
            return 0
        return int(sum(self.widths[: self.species.index(species)]))

    @classmethod
    def of(cls, model, layer: str, tensor: TensorMap) -> LayerLayout:
        """The layout of ``tensor``, the layer ``layer`` of ``model``."""
        widths = {}
        for key, block in tensor.items():
            widths[int(key["center_type"])] = block.values.shape[-1]
        species = tuple(int(z) for z in model.species)
        missing = [z for z in species if z not in widths]
        if missing:
            raise ModelError(f"layer '{layer}' has no block for species {missing}")
        sizes = tuple(widths[z] for z in species)
        shared = not model.per_species_coordinates and len(set(sizes)) == 1
        return cls(layer, species, sizes, shared)

    def rows(self, tensor: TensorMap, frames: Sequence[ase.Atoms]) -> AtomRows:
        """Every atom of ``frames`` as a row (``tensor``: this layer for them)."""
        counts = np.array([len(atoms) for atoms in frames])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        values = np.zeros((int(counts.sum()), self.n_columns))
        center = np.concatenate([atoms.numbers for atoms in frames]).astype(int)
        filled = np.zeros(len(values), dtype=bool)
        for key, block in tensor.items():
            z = int(key["center_type"])
            if z not in self.species:
                raise ModelError(f"layer '{self.layer}': species {z} is not in the layout")
            samples = np.asarray(block.samples.values)
            index = starts[samples[:, 0]] + samples[:, 1]
            block_values = np.asarray(block.values, dtype=np.float64)
            if block_values.shape[-1] != self.widths[self.species.index(z)]:
                raise ModelError(
                    f"layer '{self.layer}' of species {z} has {block_values.shape[-1]} features, "
                    f"the layout {self.widths[self.species.index(z)]}"
                )
            start = self.offset(z)
            values[index, start : start + block_values.shape[-1]] = block_values
            values[index, self.n_columns - len(self.species) + self.species.index(z)] = 1.0
            filled[index] = True
        if not filled.all():
            raise ModelError(f"layer '{self.layer}' misses {int((~filled).sum())} atoms")
        system = np.repeat(np.arange(len(frames)), counts)
        return AtomRows(values, system, center, len(frames))


def last_hidden_layer(model) -> str:
    """The layer before the output: the one last-layer estimators use.

    :raises ModelError: for a model with fewer than two layers
    """
    names = list(model.layer_names)
    if len(names) < 2:
        raise ModelError(
            f"this {model.kind} model has no hidden layer (its layers: {names}); "
            "choose an estimator that needs none (--method ensemble)"
        )
    return names[-2]


def check_layer(model, layer: Optional[str]) -> str:
    """``layer`` checked against the model's layers (``None``: the last hidden one)."""
    if layer is None:
        return last_hidden_layer(model)
    if layer not in model.layer_names:
        raise ModelError(
            f"this {model.kind} model has no layer '{layer}' "
            f"(its layers: {', '.join(model.layer_names)})"
        )
    return layer


def layer_tensors(
    model, frames: Sequence[ase.Atoms], names: Sequence[str], batch_size: int = 50
) -> Dict[str, TensorMap]:
    """The layers ``names`` of ``model`` for ``frames``, equivariant ones as
    invariant summaries, one block per species."""
    model.check_species(frames)
    layers = model.layers(frames, batch_size=batch_size)
    wanted = {name: layers[name] for name in names}
    return arrange_layers(wanted, per_species=True, pooling=None, invariant=True)
