"""The feature sets the study scores: every layer of every model, and references.

Each set is a TensorMap over the analysis atoms, one block with samples
``(system, atom, center_type)`` (the layout of
:func:`~equilens.analysis.latents.latents` with ``per_species=False``), so
that its metadata go with it from the model to the comparison. Two
attributes come with each set: whether its coordinates differ per species
(per-species networks and compressions: decoded species by species), and
the per-atom output of the model it belongs to (scored apart from the
physical labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Set, Tuple

import numpy as np
from metatensor import TensorMap

from ..analysis.latents import latents
from ..errors import EquilensError


@dataclass
class FeatureSets:
    """Named per-atom feature sets with their per-species flag and own output."""

    tensors: Dict[str, TensorMap] = field(default_factory=dict)
    per_species: Set[str] = field(default_factory=set)
    outputs: Dict[str, np.ndarray] = field(default_factory=dict)

    def add(
        self,
        name: str,
        tensor: TensorMap,
        per_species: bool = False,
        output: Optional[np.ndarray] = None,
    ) -> None:
        self.tensors[name] = tensor
        if per_species:
            self.per_species.add(name)
        if output is not None:
            self.outputs[name] = output

    @property
    def values(self) -> Dict[str, np.ndarray]:
        """Every set as a ``(n_atoms, n_features)`` array, atoms in frame order."""
        return {name: np.asarray(t.block().values) for name, t in self.tensors.items()}


def like(template: TensorMap, values: np.ndarray) -> TensorMap:
    """``values`` (rows: the atoms of ``template``'s one block) as a feature
    set with ``template``'s samples."""
    import metatensor

    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    block = metatensor.TensorBlock(
        values,
        template.block().samples,
        [],
        metatensor.Labels.range("feature", values.shape[1]),
    )
    return TensorMap(metatensor.Labels.single(), [block])


def model_layers(model, frames) -> Tuple[Dict[str, TensorMap], Optional[np.ndarray]]:
    """Every layer of ``model`` over the atoms of ``frames`` (equivariant
    layers as invariant summaries), one block per layer, and its per-atom
    output: the last layer when it has one column (the atomic energy), left
    out of the layers."""
    tensors = latents(model, frames, per_species=False)
    last = model.layer_names[-1]
    output = None
    if len(tensors[last].block().properties) == 1:
        output = np.asarray(tensors.pop(last).block().values)[:, 0]
    return tensors, output


def external_models(specs, frames) -> Dict[str, tuple]:
    """``{short name: (model, layers, output)}`` of the study's external models."""
    from ..models import load

    result = {}
    for spec in specs:
        name = str(spec).split("/")[-1].removesuffix(".pt")
        if name in result:
            raise EquilensError(f"two external models are both named '{name}': {list(specs)}")
        try:
            model = load(spec)
            model.check_species(frames, where=f"the study's frames (model {spec})")
            layers, output = model_layers(model, frames)
        except EquilensError as error:
            from .config import StudyError

            raise StudyError(f"stage 'layers' (model {spec}): {error}") from error
        result[name] = (model, layers, output)
    return result
