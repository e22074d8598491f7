"""The building blocks of the equivariant networks (the tensor family, the
equivariant potential), from ``metatensor.torch.learn.nn``.

Every hidden layer (:class:`HiddenLayer`) is

1. :class:`~metatensor.torch.learn.nn.EquivariantLinear`: a linear map on the
   feature axis only, shared by the ``2 lambda + 1`` components (a bias on
   the invariant blocks only);
2. :class:`~metatensor.torch.learn.nn.InvariantLayerNorm` on the invariant
   blocks (optional);
3. the nonlinearity: the activation on invariant blocks, and for ``lambda >
   0`` a norm gate ``x_c -> x_c * sigmoid(W |x| + b)_c`` (``|x|`` the
   per-channel norms over the components, which are invariant);
4. optionally, a second gate of every ``lambda > 0`` block by a sigmoid of a
   linear map of the invariant hidden features of the same atom, so that the
   covariant channels learn from the whole invariant description of the
   environment (as in e3nn's gated nonlinearity);
5. optionally (:class:`NormContraction`), the squared norm of every covariant
   channel (its Clebsch-Gordan contraction with itself to ``lambda = 0``),
   mapped linearly into the invariant block of the same atom: the covariant
   information flows back into the invariant channel, from which a
   potential reads its energy.

A potential needs second derivatives of its energy (forces, trained on):
``smooth > 0`` replaces the norm of the gate by ``sqrt(|x|^2 + smooth^2)``,
whose derivatives stay finite where a covariant channel vanishes (in any
centrosymmetric environment).

``HiddenLayer.forward_values`` runs these steps on the list of block values
alone (what the equivariant potential's training runs: building a TensorMap
for every block of every step was most of its forward pass);
``HiddenLayer.forward`` wraps it for TensorMaps.

Every operation multiplies covariant features by invariant numbers or mixes
features linearly without touching the components, so every block transforms
like its input block under rotations and inversion.

metatensor-learn's ``EquivariantTransformation`` does the same norm gate but
does not compile with TorchScript under torch 2.13 (``Tensor.norm(dim=...)``),
so :class:`Nonlinearity` applies it through a ``ModuleMap``, keeping its
parameter names.

This file must not use ``from __future__ import annotations``: TorchScript
reads the annotations.
"""

from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatensor.torch.learn.nn import EquivariantLinear, InvariantLayerNorm, ModuleMap

from .activations import activation


class Projection(torch.nn.Module):
    """A fixed linear map of the feature axis (a buffer, not trained)."""

    def __init__(self, matrix: torch.Tensor):
        super().__init__()
        self.matrix: torch.Tensor
        self.register_buffer("matrix", matrix.clone())

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return input @ self.matrix


class _NormGate(torch.nn.Module):
    """``sigmoid(W |x| + b)`` of the per-channel norms (shape ``(n, 1, h)``)."""

    def __init__(self, width: int, dtype: torch.dtype):
        super().__init__()
        self.linear = torch.nn.Linear(width, width, dtype=dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(input))


class _Covariant(torch.nn.Module):
    """``x * module(|x|)``, ``|x|`` the norm of each channel over the
    components (``sqrt(|x|^2 + smooth^2)`` when ``smooth > 0``)."""

    def __init__(self, module: torch.nn.Module, smooth: float = 0.0):
        super().__init__()
        self.module = module
        self.smooth = float(smooth)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.smooth > 0:
            squares = torch.sum(input * input, dim=1, keepdim=True)
            norm = torch.sqrt(squares + self.smooth * self.smooth)
        else:
            norm = torch.linalg.vector_norm(input, dim=1, keepdim=True)
        return input * self.module(norm)


class Nonlinearity(torch.nn.Module):
    """The activation on invariant blocks, a norm gate on the others."""

    def __init__(
        self,
        keys: Labels,
        invariant: List[bool],
        width: int,
        name: str,
        dtype: torch.dtype,
        smooth: float = 0.0,
    ):
        super().__init__()
        modules = [
            activation(name) if inv else _Covariant(_NormGate(width, dtype), smooth)
            for inv in invariant
        ]
        properties = [Labels.range("feature", width)] * len(invariant)
        self.module_map = ModuleMap(keys, modules, properties)

    def forward(self, tensor: TensorMap) -> TensorMap:
        return self.module_map(tensor)


def _gate_name(key: List[int]) -> str:
    return "_".join(str(v) for v in key).replace("-", "m")


class InvariantGate(torch.nn.Module):
    """Scale each ``lambda > 0`` block by ``sigmoid(W h_0 + b)`` per channel,
    ``h_0`` the invariant block of the same center type (same atoms)."""

    def __init__(self, keys: List[List[int]], source: List[int], width: int, dtype: torch.dtype):
        super().__init__()
        self.source = source
        self.index: Dict[str, int] = {}
        gates: Dict[str, torch.nn.Module] = {}
        for b, key in enumerate(keys):
            if source[b] != b:
                gates[_gate_name(key)] = torch.nn.Linear(width, width, dtype=dtype)
                self.index[_gate_name(key)] = b
        self.gates = torch.nn.ModuleDict(gates)

    def forward(self, values: List[torch.Tensor]) -> List[torch.Tensor]:
        """The gated block values (in the order of the layer's keys)."""
        values = list(values)
        for name, gate in self.gates.items():
            b = self.index[name]
            values[b] = values[b] * torch.sigmoid(gate(values[self.source[b]]))
        return values


class NormContraction(torch.nn.Module):
    """Add to each invariant block ``W [|h_c|^2 for every covariant channel c
    of the same center type]``: the covariant channels' squared norms (their
    Clebsch-Gordan contraction to ``lambda = 0``) feed the invariant channel."""

    def __init__(self, keys: List[List[int]], source: List[int], width: int, dtype: torch.dtype):
        super().__init__()
        self.index: Dict[str, int] = {}
        self.members: Dict[str, List[int]] = {}
        maps: Dict[str, torch.nn.Module] = {}
        for b, key in enumerate(keys):
            members = [c for c in range(len(keys)) if source[c] == b and c != b]
            if source[b] == b and len(members) > 0:
                name = _gate_name(key)
                self.index[name] = b
                self.members[name] = members
                maps[name] = torch.nn.Linear(width * len(members), width, bias=False, dtype=dtype)
        self.maps = torch.nn.ModuleDict(maps)

    def forward(self, values: List[torch.Tensor]) -> List[torch.Tensor]:
        """The block values with the contraction added to the invariant ones."""
        values = list(values)
        for name, linear in self.maps.items():
            squares: List[torch.Tensor] = []
            for c in self.members[name]:
                squares.append(torch.sum(values[c] * values[c], dim=1))
            b = self.index[name]
            values[b] = values[b] + linear(torch.cat(squares, dim=1)).unsqueeze(1)
        return values


class HiddenLayer(torch.nn.Module):
    """One hidden layer: linear map, layer norm, nonlinearity, invariant gate
    and (optionally) the norm contraction into the invariant channel."""

    def __init__(
        self,
        keys: Labels,
        key_list: List[List[int]],
        source: List[int],
        widths: List[int],
        width: int,
        name: str,
        layer_norm: bool,
        invariant_gate: bool,
        dtype: torch.dtype,
        smooth: float = 0.0,
        contraction: bool = False,
    ):
        super().__init__()
        invariant = [source[b] == b for b in range(len(key_list))]
        self.keys = keys
        self.properties = Labels.range("feature", width)
        properties = [self.properties] * len(key_list)
        self.linear = EquivariantLinear(keys, widths, out_properties=properties, dtype=dtype)
        self.norm: Optional[InvariantLayerNorm] = None
        if layer_norm:
            self.norm = InvariantLayerNorm(
                keys, [width] * sum(invariant), out_properties=properties, dtype=dtype
            )
        self.nonlinear = Nonlinearity(keys, invariant, width, name, dtype, smooth)
        self.gate: Optional[InvariantGate] = None
        if invariant_gate:
            self.gate = InvariantGate(key_list, source, width, dtype)
        self.contraction: Optional[NormContraction] = None
        if contraction:
            self.contraction = NormContraction(key_list, source, width, dtype)

    def forward_values(self, values: List[torch.Tensor]) -> List[torch.Tensor]:
        """The layer on the block values alone, in the order of its keys (no
        metadata built: what training runs)."""
        out: List[torch.Tensor] = []
        for b, module in enumerate(self.linear.module_map.module_list):
            out.append(module(values[b]))
        norm = self.norm
        if norm is not None:
            for b, module in enumerate(norm.module_map.module_list):
                out[b] = module(out[b])
        for b, module in enumerate(self.nonlinear.module_map.module_list):
            out[b] = module(out[b])
        gate = self.gate
        if gate is not None:
            out = gate(out)
        contraction = self.contraction
        if contraction is not None:
            out = contraction(out)
        return out

    def forward(self, tensor: TensorMap) -> TensorMap:
        """The layer on a TensorMap with the layer's keys (in any order)."""
        keys = self.keys.to(tensor.device)
        properties = self.properties.to(tensor.device)
        blocks: List[TensorBlock] = []
        values: List[torch.Tensor] = []
        for b in range(len(keys)):
            block = tensor.block(keys.entry(b))
            blocks.append(block)
            values.append(block.values)
        out = self.forward_values(values)
        new: List[TensorBlock] = []
        for b, block in enumerate(blocks):
            new.append(TensorBlock(out[b], block.samples, block.components, properties))
        return TensorMap(keys, new)


def invariant_sources(keys: List[List[int]]) -> List[int]:
    """For every block, the position of the invariant ``(0, 1)`` block of its
    center type (itself for invariant blocks): what gates and summaries read."""
    sources: List[int] = []
    for key in keys:
        found = [i for i, k in enumerate(keys) if k[0] == 0 and k[1] == 1 and k[2] == key[2]]
        if len(found) == 0:
            raise ValueError(f"block {key} has no invariant block of its center type")
        sources.append(found[0])
    return sources
