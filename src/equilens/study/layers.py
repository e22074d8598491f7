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
from typing import Any, Dict, Optional, Set

import numpy as np
from metatensor import TensorMap

from ..analysis.latents import frame_latents
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


@dataclass
class ModelLayers:
    """The layers of one model over the analysis atoms.

    :param sets: every layer (equivariant ones as invariant summaries), one
        block over all atoms, the output layer left out when it is one column
    :param output: that output (the atomic energy), or ``None``
    :param equivariant: the equivariant layers as the model gives them (keys
        ``o3_lambda, o3_sigma, center_type``)
    :param raw: every layer as the model gives them (what the uncertainty
        stage arranges its own way when the analysis atoms are its training atoms)
    """

    sets: Dict[str, TensorMap]
    output: Optional[np.ndarray]
    equivariant: Dict[str, TensorMap]
    raw: Dict[str, TensorMap] = field(default_factory=dict)


def model_layers(model, frames, batch_size: int = 50) -> ModelLayers:
    """Every layer of ``model`` over the atoms of ``frames``, computed once."""
    raw = model.layers(frames, batch_size=batch_size)
    equivariant = {n: t for n, t in raw.items() if "o3_lambda" in t.keys.names}
    tensors = frame_latents(raw, frames, per_species=False)
    last = model.layer_names[-1]
    output = None
    if len(tensors[last].block().properties) == 1:
        output = np.asarray(tensors.pop(last).block().values)[:, 0]
    return ModelLayers(tensors, output, equivariant, raw)


def open_external(specs, frames) -> Dict[str, Any]:
    """``{short name: model}`` of the study's external models, opened and
    checked against the study's frames (before anything is trained): a
    one-line ``StudyError`` names the spec that cannot be used."""
    from ..models import load
    from .config import StudyError

    result = {}
    for spec in specs:
        name = str(spec).split("/")[-1].removesuffix(".pt")
        if name in result:
            raise StudyError(f"models: two external models are both named '{name}': {list(specs)}")
        try:
            model = load(spec)
            model.check_species(frames, where=f"the study's frames (model {spec})")
        except EquilensError as error:
            raise StudyError(f"models ({spec}): {error}") from error
        result[name] = model
    return result


def external_models(opened: Dict[str, Any], frames) -> Dict[str, tuple]:
    """``{short name: (model, ModelLayers)}`` of the opened external models."""
    result = {}
    for name, model in opened.items():
        try:
            layers = model_layers(model, frames)
        except EquilensError as error:
            from .config import StudyError

            raise StudyError(f"stage 'layers' (model {name}): {error}") from error
        result[name] = (model, layers)
    return result
