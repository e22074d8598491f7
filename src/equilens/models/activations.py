"""The activation functions every equilens network chooses from, by name.

One table for all families, so a configuration says ``activation: silu`` the
same way for the BPNN, the tensor network and the equivariant potential, and
the TorchScript modules build exactly what the configuration names.
"""

from __future__ import annotations

from typing import Dict, Type

import torch

#: configuration name -> torch module class
ACTIVATIONS: Dict[str, Type[torch.nn.Module]] = {
    "silu": torch.nn.SiLU,
    "tanh": torch.nn.Tanh,
    "gelu": torch.nn.GELU,
    "softplus": torch.nn.Softplus,
}


def activation(name: str) -> torch.nn.Module:
    """A new activation module named ``name`` (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
