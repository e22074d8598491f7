"""Metatomic ``AtomisticModel`` files of equilens models (ASE, LAMMPS, chemiscope).

Each family's exporter builds its TorchScript module and the outputs it
declares; :func:`atomistic_model` adds what every export shares (the
capabilities: atomic types, cutoff, Å, devices (CUDA first, then the CPU),
dtype; the metadata: name, description, versions, training configuration
and hypers from the model's :meth:`~equilens.models.base.Model.describe`) and :func:`save_atomistic`
writes the file atomically with the compiled extensions it needs.

In a process that also imports ``featomic.torch``, import it *before*
loading a model with an extensions directory (loading the library twice
aborts the process).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional, Union

import torch

from ..errors import ModelError
from ..provenance import package_versions

PathLike = Union[str, "os.PathLike[str]"]
#: the precisions a model is exported in
DTYPES: Dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}


def export_dtype(dtype: str) -> torch.dtype:
    """The torch dtype of an export precision name, or a :class:`ModelError`."""
    if dtype not in DTYPES:
        raise ModelError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def atomistic_model(model, module, outputs, dtype: str, kind: str, description: str):
    """``module`` as a metatomic ``AtomisticModel`` with ``outputs``, with the
    capabilities and metadata of the equilens ``model`` it was built from."""
    from metatomic.torch import AtomisticModel, ModelCapabilities, ModelMetadata

    described = model.describe()
    # the families' modules create every tensor on the device of their input
    # (featomic-torch computes on the CPU and returns to it): the file runs on
    # a GPU wherever one is, whatever machine exported it
    devices = ["cuda", "cpu"]
    capabilities = ModelCapabilities(
        outputs=outputs,
        atomic_types=[int(z) for z in described.species],
        interaction_range=float(described.cutoff),
        length_unit="angstrom",
        supported_devices=devices,
        dtype=dtype,
    )
    versions = package_versions(("equilens", "featomic-torch", "metatensor-torch", "torch"))
    config = described.provenance.get("config") or {}
    metadata = ModelMetadata(
        name=f"{kind} {config.get('name', '')}".strip(),
        description=description,
        authors=["equilens"],
        extra={
            "equilens_versions": json.dumps(versions),
            "equilens_config": json.dumps(config),
            "equilens_hypers": json.dumps(described.hypers.get("descriptor", {})),
        },
    )
    return AtomisticModel(module.eval(), metadata, capabilities)


def save_atomistic(atomistic, path: PathLike, extensions: Optional[PathLike] = None) -> Path:
    """Save an ``AtomisticModel`` to ``path`` (atomically), its compiled
    extensions in ``extensions`` (default: ``extensions/`` next to ``path``)."""
    path = Path(path)
    if path.suffix != ".pt":
        raise ModelError(f"{path}: a metatomic model file ends in .pt")
    folder = Path(extensions) if extensions is not None else path.parent / "extensions"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    atomistic.save(str(partial), collect_extensions=str(folder))
    os.replace(partial, path)
    return path
