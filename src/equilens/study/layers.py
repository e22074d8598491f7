"""The feature sets the study scores: every layer of every model, and references.

Each set is an array over the analysis atoms (frame order) with two
attributes the scorecard needs: whether its coordinates differ per species
(per-species networks and compressions: decoded species by species), and the
per-atom output of the model it belongs to (scored apart from the physical
labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Set, Tuple

import numpy as np

from ..analysis.latents import latents
from ..errors import EquilensError
from ..tensormaps import stack_blocks


@dataclass
class FeatureSets:
    """Named per-atom feature sets with their per-species flag and own output."""

    values: Dict[str, np.ndarray] = field(default_factory=dict)
    per_species: Set[str] = field(default_factory=set)
    outputs: Dict[str, np.ndarray] = field(default_factory=dict)

    def add(
        self,
        name: str,
        values: np.ndarray,
        per_species: bool = False,
        output: Optional[np.ndarray] = None,
    ) -> None:
        self.values[name] = values
        if per_species:
            self.per_species.add(name)
        if output is not None:
            self.outputs[name] = output

    def update(self, other: FeatureSets) -> None:
        self.values.update(other.values)
        self.per_species |= other.per_species
        self.outputs.update(other.outputs)


def model_layers(model, frames) -> Tuple[Dict[str, np.ndarray], Optional[np.ndarray]]:
    """Every layer of ``model`` over the atoms of ``frames`` (equivariant
    layers as invariant summaries) and its per-atom output: the last layer
    when it has one column (the atomic energy), left out of the layers."""
    tensors = latents(model, frames, per_species=False)
    values = {name: stack_blocks(tensor, name)[0] for name, tensor in tensors.items()}
    last = model.layer_names[-1]
    output = None
    if values[last].shape[1] == 1:
        output = values.pop(last)[:, 0]
    return values, output


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
