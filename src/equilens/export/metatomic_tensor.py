"""Export equilens tensor models as metatomic models.

:func:`tensor_module` copies a trained
:class:`~equilens.models.tensor_model.TensorModel` (its lambda-SOAP hypers,
projection and equivariant network) into a
:class:`~equilens.models.tensor_module.TensorModule`, and
:func:`tensor_metatomic_model` wraps it in a metatomic ``AtomisticModel``:
outputs ``equilens::<target>`` (the target, per structure or per atom),
``equilens::feature/<layer>`` (every layer with its equivariant blocks) and
``feature`` / ``feature/<layer>`` (invariant summaries, the names chemiscope's
featurizer asks for); the capabilities declare the atomic types, the cutoff,
Å, the dtype; the metadata carries the equilens, featomic, metatensor and
torch versions and the training configuration.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import torch
from metatensor.torch import Labels

from ..errors import ModelError
from ..tensormaps import key_tuple


def tensor_module(model, dtype: torch.dtype = torch.float64):
    """The :class:`~equilens.models.tensor_module.TensorModule` of ``model``
    (a :class:`~equilens.models.tensor_model.TensorModel`), in ``dtype``."""
    from ..models.tensor_module import TensorModule

    network = model.network
    config = network.config
    in_keys = [list(key_tuple(k)) for k in network.in_keys]
    out_keys = [list(key_tuple(k)) for k in network.out_keys]
    if network.projection is not None:
        projections = [m.matrix.detach().to(dtype) for m in network.projection.module_list]
    else:
        projections = [torch.eye(n, dtype=dtype) for n in model.in_features]
    layout = model.layout
    target_properties = []
    for key in out_keys:
        index = layout.keys.index(tuple(key) if layout.per_atom else tuple(key[:2]))
        names, values = layout.properties[index]
        values = np.asarray(values).reshape(len(values), -1)
        target_properties.append(Labels(list(names), torch.tensor(values, dtype=torch.int32)))
    if "alchemical" in model.hypers:
        raise ModelError(
            "export-metatomic: tensor models on the alchemical lambda-SOAP are not exported "
            "yet (potentials are); train with descriptor.alchemical_above: null to export"
        )
    module = TensorModule(
        model.hypers,
        list(model.species),
        in_keys,
        projections,
        list(config.hidden),
        config.activation,
        config.layer_norm,
        config.invariant_gate,
        out_keys,
        [len(p) for p in target_properties],
        layout.name,
        layout.per_atom,
        target_properties,
        dtype,
    )
    state = _state(network, in_keys, out_keys, dtype)
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.startswith(("projections.", "calculator."))]
    if missing or unexpected:
        raise ModelError(f"cannot map the network: missing {missing}, unexpected {unexpected}")
    return module.to(dtype).eval()


def _state(network, in_keys: List[List[int]], out_keys, dtype) -> Dict[str, torch.Tensor]:
    """The network's weights under the names of the TorchScript module."""
    native = network.state_dict()
    invariant = [k[0] == 0 and k[1] == 1 for k in in_keys]
    state: Dict[str, torch.Tensor] = {}

    def copy(target: str, source: str) -> None:
        for suffix in ("weight", "bias"):
            if f"{source}.{suffix}" in native:
                state[f"{target}.{suffix}"] = native[f"{source}.{suffix}"].detach().to(dtype)

    for i in range(len(network.config.hidden)):
        j = 0
        for b, key in enumerate(in_keys):
            copy(f"linears.{i}.{b}", f"linears.{i}.module_map.module_list.{b}")
            if invariant[b]:
                if network.config.layer_norm:
                    copy(f"norms.{i}.{b}", f"norms.{i}.module_map.module_list.{j}")
                j += 1
                continue
            copy(
                f"nonlinear.{i}.{b}.linear",
                f"nonlinear.{i}.module_map.module_list.{b}.module.linear",
            )
            if network.config.invariant_gate:
                name = "_".join(str(v) for v in key).replace("-", "m")
                copy(f"gates.{i}.{b}", f"gates.{i}.gates.{name}")
    for k in range(len(out_keys)):
        copy(f"output.{k}", f"output.module_map.module_list.{k}")
    return state


def tensor_metatomic_model(model, dtype: str = "float64"):
    """The ``AtomisticModel`` of an equilens tensor model."""
    from metatomic.torch import ModelOutput

    from .metatomic import atomistic_model

    dtypes = {"float64": torch.float64, "float32": torch.float32}
    if dtype not in dtypes:
        raise ModelError(f"dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
    module = tensor_module(model, dtypes[dtype])
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
        if _summary_widths_agree(module, layer):
            outputs[f"feature/{layer}"] = ModelOutput(
                sample_kind="atom",
                description=f"invariant summary of layer '{layer}'; per structure: mean",
            )
    description = (
        f"Equivariant network on lambda-SOAP (featomic-torch) for the {target}, "
        f"species {list(model.species)}; layers {model.layer_names}."
    )
    return atomistic_model(model, module, outputs, dtype, "equilens tensor model", description)


def _summary_widths_agree(module, layer: str) -> bool:
    """Whether every species' invariant summary of ``layer`` has one width."""
    keys = module.out_keys if layer == "output" else module.in_keys
    widths: Dict[int, int] = {}
    hidden = {f"hidden_{i + 1}": len(lin[0].weight) for i, lin in enumerate(module.linears)}
    for k, key in enumerate(keys):
        if layer == "output":
            width = module.output[k].out_features
        elif layer == "input":
            width = int(module.projections[k].shape[1])
        else:
            width = hidden[layer]
        widths[key[2]] = widths.get(key[2], 0) + width
    return len(set(widths.values())) <= 1
