"""An equivariant network over lambda-SOAP blocks, built from metatensor-learn.

Input: a per-atom lambda-SOAP TensorMap (keys ``o3_lambda, o3_sigma,
center_type``, components ``o3_mu``). Every block goes through its own stack
of layers; a layer is

1. :class:`metatensor.learn.nn.EquivariantLinear`: a linear map on the
   feature axis only, shared by the ``2 lambda + 1`` components (a bias on
   the invariant blocks only);
2. :class:`metatensor.learn.nn.InvariantLayerNorm` on the invariant blocks
   (optional);
3. the nonlinearity, through :class:`metatensor.learn.nn.EquivariantTransformation`:
   the activation on invariant blocks, and for ``lambda > 0`` a norm gate
   ``x_c -> x_c * sigmoid(W |x| + b)_c`` (``|x|`` the per-channel norms over
   the components, which are invariant);
4. optionally (``invariant_gate``), a second gate of every ``lambda > 0``
   block by a sigmoid of a linear map of the invariant hidden features of the
   same atom, so that the covariant channels learn from the whole invariant
   description of the environment (as in e3nn's gated nonlinearity).

Every operation multiplies covariant features by invariant numbers or mixes
features linearly without touching the components, so every hidden block and
every output block transforms like its input block under rotations and
inversion; ``tests/test_equivariant.py`` checks it on real structures.

A fixed per-block projection (:class:`EquivariantPCA`) in front of the first
layer reduces the wide lambda-SOAP blocks to ``n_components`` features.
:meth:`EquivariantNetwork.layers` returns every layer as a TensorMap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
import torch
from metatensor import Labels, TensorBlock, TensorMap
from metatensor.learn.nn import (
    EquivariantLinear,
    EquivariantTransformation,
    InvariantLayerNorm,
    ModuleMap,
)

from ..descriptors.compression import EquivariantPCA
from ..errors import ConfigError, EquilensError
from ..tensormaps import Key, is_invariant, key_tuple, select_blocks


@dataclass(frozen=True)
class EquivariantConfig:
    """Architecture of :class:`EquivariantNetwork`.

    :param hidden: width of each hidden layer (the same for every block)
    :param activation: ``silu`` or ``tanh`` on the invariant blocks
    :param layer_norm: layer norm on the invariant blocks of each hidden layer
    :param invariant_gate: gate ``lambda > 0`` channels by the invariant
        hidden features of the same atom (on top of the norm gate)
    :param n_components: features kept per block by the equivariant PCA in
        front of the network (``0``: no projection)
    """

    hidden: Tuple[int, ...] = (32, 32)
    activation: Literal["silu", "tanh"] = "silu"
    layer_norm: bool = True
    invariant_gate: bool = True
    n_components: int = 64

    def __post_init__(self):
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden widths must be >= 1, got {self.hidden}")
        if self.activation not in ("silu", "tanh"):
            raise ConfigError(f"activation must be 'silu' or 'tanh', got {self.activation!r}")
        if self.n_components < 0:
            raise ConfigError("n_components must be >= 0")


class _Projection(torch.nn.Module):
    """A fixed linear map of the feature axis (a buffer, not trained)."""

    def __init__(self, matrix: np.ndarray, dtype: torch.dtype):
        super().__init__()
        self.matrix: torch.Tensor
        self.register_buffer("matrix", torch.tensor(matrix, dtype=dtype))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return values @ self.matrix


class _NormGate(torch.nn.Module):
    """``sigmoid(W |x| + b)`` of the per-channel norms (shape ``(n, 1, h)``)."""

    def __init__(self, width: int, dtype: torch.dtype):
        super().__init__()
        self.linear = torch.nn.Linear(width, width, dtype=dtype)

    def forward(self, norms: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(norms))


def _activation(name: str) -> torch.nn.Module:
    return torch.nn.SiLU() if name == "silu" else torch.nn.Tanh()


class _InvariantGate(torch.nn.Module):
    """Scale each ``lambda > 0`` block by ``sigmoid(W h_0 + b)`` per channel,
    ``h_0`` the invariant block of the same center type (same atoms)."""

    def __init__(self, keys: Sequence[Key], width: int, dtype: torch.dtype):
        super().__init__()
        self.keys = list(keys)
        self.gates = torch.nn.ModuleDict(
            {
                _name(k): torch.nn.Linear(width, width, dtype=dtype)
                for k in keys
                if not is_invariant(k)
            }
        )

    def forward(self, tensor: TensorMap) -> TensorMap:
        invariant = {k[2:]: tensor.block(i) for i, k in enumerate(self.keys) if is_invariant(k)}
        blocks = []
        for i, key in enumerate(self.keys):
            block = tensor.block(i)
            if is_invariant(key):
                blocks.append(
                    TensorBlock(block.values, block.samples, block.components, block.properties)
                )
                continue
            source = invariant.get(key[2:])
            if source is None or len(source.samples) != len(block.samples):
                raise EquilensError(
                    f"block {key} has no invariant block on the same atoms to gate it"
                )
            gate = torch.sigmoid(self.gates[_name(key)](source.values))
            blocks.append(
                TensorBlock(block.values * gate, block.samples, block.components, block.properties)
            )
        return TensorMap(tensor.keys, blocks)


def _name(key: Key) -> str:
    return "_".join(str(v) for v in key).replace("-", "m")


class EquivariantNetwork(torch.nn.Module):
    """Equivariant multilayer network from lambda-SOAP blocks to target blocks.

    :param in_keys: keys of the lambda-SOAP blocks the network reads
        (``o3_lambda, o3_sigma, center_type``); the ``(0, 1)`` block of each
        center type must be among them
    :param in_features: features per input block
    :param out_keys: keys of the per-atom output blocks, a subset of
        ``in_keys``
    :param out_properties: properties of each output block
    :param config: widths, activation, gates
    :param projection: a fitted :class:`EquivariantPCA` (``None``: none)
    """

    def __init__(
        self,
        in_keys: Labels,
        in_features: List[int],
        out_keys: Labels,
        out_properties: List[Labels],
        config: EquivariantConfig,
        projection: Optional[EquivariantPCA] = None,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        self.config = config
        self.in_keys = in_keys
        self.out_keys = out_keys
        keys = [key_tuple(k) for k in in_keys]
        for key in (key_tuple(k) for k in out_keys):
            if key not in keys:
                raise EquilensError(f"output block {key} has no input block of the same symmetry")
        self._keys = keys
        self._out_index = [keys.index(key_tuple(k)) for k in out_keys]
        widths = list(in_features)
        self.projection = None
        if projection is not None:
            matrices = [projection.projections[k] for k in keys]
            self.projection = ModuleMap(
                in_keys,
                [_Projection(m, dtype) for m in matrices],
                [Labels.range("feature", m.shape[1]) for m in matrices],
            )
            widths = [m.shape[1] for m in matrices]
        self.linears = torch.nn.ModuleList()
        self.norms = torch.nn.ModuleList()
        self.nonlinear = torch.nn.ModuleList()
        self.gates = torch.nn.ModuleList()
        for width in config.hidden:
            props = [Labels.range("feature", width)] * len(keys)
            self.linears.append(
                EquivariantLinear(in_keys, widths, out_properties=props, dtype=dtype)
            )
            if config.layer_norm:
                self.norms.append(
                    InvariantLayerNorm(
                        in_keys,
                        [width] * sum(is_invariant(k) for k in keys),
                        out_properties=props,
                        dtype=dtype,
                    )
                )
            modules = [
                _activation(config.activation) if is_invariant(k) else _NormGate(width, dtype)
                for k in keys
            ]
            self.nonlinear.append(
                EquivariantTransformation(modules, in_keys, width, out_properties=props)
            )
            if config.invariant_gate:
                self.gates.append(_InvariantGate(keys, width, dtype))
            widths = [width] * len(keys)
        self.output = EquivariantLinear(
            out_keys,
            [widths[i] for i in self._out_index],
            out_properties=list(out_properties),
            dtype=dtype,
        )

    def layers(self, tensor: TensorMap) -> Dict[str, TensorMap]:
        """Every layer: ``input`` (after the projection), ``hidden_1`` ...,
        ``output``; each a TensorMap with the input's keys and samples."""
        tensor = select_blocks(tensor, self.in_keys)
        if self.projection is not None:
            tensor = self.projection(tensor)
        out = {"input": tensor}
        for i in range(len(self.linears)):
            tensor = self.linears[i](tensor)
            if self.config.layer_norm:
                tensor = self.norms[i](tensor)
            tensor = self.nonlinear[i](tensor)
            if self.config.invariant_gate:
                tensor = self.gates[i](tensor)
            out[f"hidden_{i + 1}"] = tensor
        out["output"] = self.output(select_blocks(tensor, self.out_keys))
        return out

    def forward(self, tensor: TensorMap) -> TensorMap:
        return self.layers(tensor)["output"]
