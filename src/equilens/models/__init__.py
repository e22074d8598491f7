"""Models: one protocol (:class:`Model`) that every family and adapter implements.

The families and adapters are listed once, in :mod:`~equilens.models.registry`:

- :mod:`~equilens.models.bpnn`: Behler-Parrinello networks on compressed
  SOAP (:class:`~equilens.models.bpnn.model.Potential`), energies and forces;
- :mod:`~equilens.models.tensor`: equivariant networks on lambda-SOAP
  (:class:`~equilens.models.tensor.model.TensorModel`), tensorial targets;
- :mod:`~equilens.models.sevenn`, :mod:`~equilens.models.mace`,
  :mod:`~equilens.models.metatomic`: models of other packages, every layer;
- :mod:`~equilens.models.metatrain`: metatrain's trainer, driven.

:func:`load` opens any model file or spec, :func:`train` trains any task
configuration (:func:`load_run_config` reads one).

Submodules are imported lazily: ``import equilens.models`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from .base import (
    Model,
    ModelDescription,
    energies_and_forces,
    read_model_file,
    write_model_file,
)
from .loading import load
from .registry import FAMILIES, Family, load_run_config, metatomic_model, train

if TYPE_CHECKING:  # pragma: no cover
    from .bpnn.config import BPNNConfig
    from .bpnn.model import Potential
    from .tensor.model import TensorModel

__all__ = [
    "BPNNConfig",
    "FAMILIES",
    "Family",
    "Model",
    "ModelDescription",
    "Potential",
    "TensorModel",
    "energies_and_forces",
    "load",
    "load_run_config",
    "metatomic_model",
    "read_model_file",
    "train",
    "write_model_file",
]

_LAZY = {
    "BPNNConfig": "bpnn.config",
    "Potential": "bpnn.model",
    "TensorModel": "tensor.model",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
