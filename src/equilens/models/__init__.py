"""Models: one protocol (:class:`Model`) that every family and adapter implements.

- :class:`~equilens.models.potential.Potential`: SOAP -> per-species PCA ->
  Behler-Parrinello networks (:class:`BPNN`), energies and forces;
- :class:`~equilens.models.tensor_model.TensorModel`: lambda-SOAP ->
  :class:`~equilens.models.equivariant.EquivariantNetwork`, tensorial targets;
- :class:`~equilens.models.baselines.BlockRidge`: per-block ridge baseline of
  tensor models;
- :func:`load`: any model file, dispatched on its header.

Submodules are imported lazily: ``import equilens.models`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from .base import Model, energies_and_forces, read_model_file, write_model_file
from .loading import load

if TYPE_CHECKING:  # pragma: no cover
    from .bpnn import BPNN, BPNNConfig
    from .potential import Potential
    from .tensor_model import TensorModel

__all__ = [
    "BPNN",
    "BPNNConfig",
    "Model",
    "Potential",
    "TensorModel",
    "energies_and_forces",
    "load",
    "read_model_file",
    "write_model_file",
]

_LAZY = {
    "BPNN": "bpnn",
    "BPNNConfig": "bpnn",
    "Potential": "potential",
    "TensorModel": "tensor_model",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
