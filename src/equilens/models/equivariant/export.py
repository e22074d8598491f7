"""The equivariant potential's metatomic export.

:func:`metatomic_model` wraps a float64 (or float32) copy of the model's
:class:`~equilens.models.equivariant.module.EquivariantPotentialModule`
(featomic-torch's spherical expansion, the fixed compressions, featomic's
Clebsch-Gordan product, the network) in a metatomic ``AtomisticModel``:
``energy`` (forces and stress by autograd in the engine), ``feature`` /
``feature/<layer>`` (invariant summaries, the names chemiscope's featurizer
asks for) and ``equilens::feature/<layer>`` (every layer with its
equivariant blocks); capabilities and metadata of
:func:`equilens.models.atomistic.atomistic_model`.
"""

from __future__ import annotations

from ..atomistic import atomistic_model, export_dtype
from .model import EquivariantPotential


def metatomic_model(model: EquivariantPotential, dtype: str = "float64"):
    """The ``AtomisticModel`` of an equivariant potential, in ``dtype``."""
    from metatomic.torch import ModelOutput

    module = model.torch_module(export_dtype(dtype))
    outputs = {
        "energy": ModelOutput(unit="eV", sample_kind="atom", description="sum of atomic energies"),
        "feature": ModelOutput(
            sample_kind="atom",
            description=f"invariant summary of {model.layer_names[-2]}; per structure: mean",
        ),
    }
    for layer in model.layer_names:
        outputs[f"feature/{layer}"] = ModelOutput(
            sample_kind="atom",
            description=f"invariant summary of layer '{layer}'; per structure: mean",
        )
        outputs[f"equilens::feature/{layer}"] = ModelOutput(
            sample_kind="atom",
            description=f"layer '{layer}', equivariant blocks (o3_lambda, o3_sigma, center_type)",
        )
    description = (
        "Equivariant network on lambda-SOAP of a compressed density (featomic-torch, "
        f"featomic's Clebsch-Gordan product), species {list(model.species)}; "
        f"layers {model.layer_names}."
    )
    return atomistic_model(
        model, module, outputs, dtype, "equilens equivariant potential", description
    )
