"""Export equilens potentials as metatomic models (ASE, LAMMPS, chemiscope).

:func:`export_metatomic` wraps the potential's
:class:`~equilens.models.potential_module.PotentialModule` (featomic-torch
SOAP, the fixed compression as a linear map, the networks) in a metatomic
``AtomisticModel`` and saves it as TorchScript, with the compiled extensions
it needs (featomic-torch) collected next to it:

- outputs ``energy`` (eV, per structure and per atom: forces and stress come
  from autograd in the engine), ``feature`` (the last hidden layer) and
  ``feature/<layer>`` for every layer (``input``, ``hidden_1``, ...,
  ``output``), per atom or per structure (mean over atoms);
- capabilities: the atomic types, the cutoff as interaction range, Å, eV,
  CPU, the dtype;
- metadata: name, description, and in ``extra`` the equilens, featomic,
  metatensor and torch versions and the training configuration.

Use it with ``metatomic_ase.MetatomicCalculator(path,
extensions_directory=...)``, ``pair_style metatomic path extensions ...`` in
LAMMPS, or ``chemiscope.metatomic_featurizer(path, extensions_directory=...,
variant="hidden_1")``. In a process that also imports ``featomic.torch``,
import it *before* loading the model with an extensions directory (loading
the library twice aborts the process).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Union

import torch

from ..errors import ModelError
from ..provenance import package_versions

PathLike = Union[str, "os.PathLike[str]"]
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def metatomic_model(model, dtype: str = "float64"):
    """The ``AtomisticModel`` of an equilens potential or tensor model
    (:mod:`equilens.export.metatomic_tensor`)."""
    from metatomic.torch import ModelOutput

    from ..models.potential import Potential
    from ..models.potential_module import potential_module
    from ..models.tensor_model import TensorModel

    if isinstance(model, TensorModel):
        from .metatomic_tensor import tensor_metatomic_model

        return tensor_metatomic_model(model, dtype)
    if not isinstance(model, Potential):
        raise ModelError(
            f"metatomic export supports equilens potentials and tensor models; "
            f"this is a {model.kind} model"
        )
    if dtype not in DTYPES:
        raise ModelError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    module = potential_module(model, DTYPES[dtype])
    last_hidden = model.layer_names[-2]
    outputs = {
        "energy": ModelOutput(
            unit="eV", sample_kind="atom", description="sum of the atomic energies"
        ),
        "feature": ModelOutput(
            sample_kind="atom",
            description=f"last hidden layer ({last_hidden}); per structure: mean over atoms",
        ),
    }
    for layer in model.layer_names:
        outputs[f"feature/{layer}"] = ModelOutput(
            sample_kind="atom",
            description=f"layer '{layer}' of the equilens potential; per structure: mean",
        )
    description = (
        "Behler-Parrinello network on SOAP (featomic-torch), one network per species, "
        f"species {list(model.species)}; layers {model.layer_names}."
    )
    return atomistic_model(model, module, outputs, dtype, "equilens potential", description)


def atomistic_model(model, module, outputs, dtype: str, kind: str, description: str):
    """``module`` as a metatomic ``AtomisticModel`` with ``outputs``: the
    capabilities (atomic types, cutoff, Å, CPU, ``dtype``) and metadata (name,
    description, equilens/featomic/metatensor/torch versions, training
    configuration and hypers) of the equilens ``model`` it was built from."""
    from metatomic.torch import AtomisticModel, ModelCapabilities, ModelMetadata

    capabilities = ModelCapabilities(
        outputs=outputs,
        atomic_types=[int(z) for z in model.species],
        interaction_range=float(model.hypers["cutoff"]["radius"]),
        length_unit="angstrom",
        supported_devices=["cpu"],
        dtype=dtype,
    )
    versions = package_versions(("equilens", "featomic-torch", "metatensor-torch", "torch"))
    config = model.metadata.get("config", {})
    metadata = ModelMetadata(
        name=f"{kind} {config.get('name', '')}".strip(),
        description=description,
        authors=["equilens"],
        extra={
            "equilens_versions": json.dumps(versions),
            "equilens_config": json.dumps(config),
            "equilens_hypers": json.dumps(model.hypers),
        },
    )
    return AtomisticModel(module.eval(), metadata, capabilities)


def export_metatomic(
    model,
    path: PathLike,
    extensions: Optional[PathLike] = None,
    dtype: str = "float64",
) -> Path:
    """Save ``model`` (an equilens potential) as a metatomic TorchScript file.

    :param extensions: folder for the compiled extensions the file needs
        (default: ``extensions/`` next to ``path``)
    :returns: ``path``
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise ModelError(f"{path}: a metatomic model file ends in .pt")
    folder = Path(extensions) if extensions is not None else path.parent / "extensions"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomistic = metatomic_model(model, dtype)
    partial = path.with_name(f".{path.name}.partial")
    atomistic.save(str(partial), collect_extensions=str(folder))
    os.replace(partial, path)
    return path
