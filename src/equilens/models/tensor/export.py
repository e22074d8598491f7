"""The tensor family's metatomic export.

:func:`metatomic_model` copies the model's
:class:`~equilens.models.tensor.module.TensorModule` into the export
precision and wraps it in a metatomic ``AtomisticModel``: outputs
``equilens::<target>`` (the target, per structure or per atom),
``equilens::feature/<layer>`` (every layer with its equivariant blocks) and
``feature`` / ``feature/<layer>`` (invariant summaries, the names chemiscope's
featurizer asks for); capabilities and metadata of
:func:`equilens.models.atomistic.atomistic_model`.
"""

from __future__ import annotations

from typing import Dict

import torch

from ...errors import ModelError
from ..atomistic import atomistic_model, export_dtype
from .model import TensorModel
from .module import TensorModule


def tensor_module(model: TensorModel, dtype: torch.dtype = torch.float64) -> TensorModule:
    """A copy of ``model``'s module in ``dtype``, in evaluation mode."""
    if "alchemical" in model.hypers:
        raise ModelError(
            "export-metatomic: tensor models on the alchemical lambda-SOAP are not exported "
            "yet (potentials are); train with descriptor.alchemical_above: null to export"
        )
    return model.torch_module(dtype)


def metatomic_model(model: TensorModel, dtype: str = "float64"):
    """The ``AtomisticModel`` of an equilens tensor model."""
    from metatomic.torch import ModelOutput

    module = tensor_module(model, export_dtype(dtype))
    target = model.layout.name
    kind = "atom" if model.layout.per_atom else "system"
    outputs = {
        f"equilens::{target}": ModelOutput(
            sample_kind=kind,
            description=f"the {target} (keys o3_lambda, o3_sigma; components o3_mu)",
        ),
        "feature": ModelOutput(
            sample_kind="atom",
            description=f"invariant summary of {model.layer_names[-2]}; per structure: mean",
        ),
    }
    for layer in model.layer_names:
        outputs[f"equilens::feature/{layer}"] = ModelOutput(
            sample_kind="atom",
            description=f"layer '{layer}', equivariant blocks (o3_lambda, o3_sigma, center_type)",
        )
        if summary_widths_agree(module, layer):
            outputs[f"feature/{layer}"] = ModelOutput(
                sample_kind="atom",
                description=f"invariant summary of layer '{layer}'; per structure: mean",
            )
    description = (
        f"Equivariant network on lambda-SOAP (featomic-torch) for the {target}, "
        f"species {list(model.species)}; layers {model.layer_names}."
    )
    return atomistic_model(model, module, outputs, dtype, "equilens tensor model", description)


def summary_widths_agree(module: TensorModule, layer: str) -> bool:
    """Whether every species' invariant summary of ``layer`` has one width
    (a ``feature/<layer>`` output needs one block of one width)."""
    keys = module.out_keys if layer == "output" else module.in_keys
    widths: Dict[int, int] = {}
    for key, width in zip(keys, module.block_widths[module.layer_names.index(layer)]):
        widths[key[2]] = widths.get(key[2], 0) + width
    return len(set(widths.values())) <= 1
