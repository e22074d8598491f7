"""Behler-Parrinello networks: one MLP per center species (or one shared MLP
with a learned element embedding, for many elements), atomic energies summed.

The input of every network is an atom's (compressed) SOAP vector; the output
is its energy contribution. The total energy of a frame is

    E = sum_i [ scale * MLP_{z_i}(x_i) + baseline_{z_i} ]

with ``baseline`` the per-species energies of a least-squares composition
fit and ``scale`` the spread of what is left, so the networks learn an
O(1) target. :meth:`BPNN.layer_activations` returns every layer for every
atom (the input, each hidden layer after its activation, the atomic energy
``output``):
the latent spaces that equilens compares.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Literal, Optional, Sequence, Tuple

import torch
from torch import nn

ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "gelu": nn.GELU, "softplus": nn.Softplus}


@dataclass(frozen=True)
class BPNNConfig:
    """Architecture of the per-species networks.

    :param hidden: widths of the hidden layers, e.g. ``[128, 128]``
    :param activation: ``silu``, ``tanh``, ``gelu`` or ``softplus``
    :param layer_norm: apply a layer norm after each hidden activation
    :param bottleneck: width of an extra narrow hidden layer before the
        output (``None`` for none); a low-dimensional latent space to inspect
    :param network: ``per_species`` (one MLP per element, Behler-Parrinello),
        ``shared`` (one MLP for all elements, fed the atom's features and a
        learned embedding of its element: the hidden layers of all elements
        share coordinates, and elements with a few atoms learn from the
        others), or ``auto``: shared above ``shared_above`` elements
    :param shared_above: the number of elements above which ``auto`` shares
    :param embedding: width of the learned element embedding (shared only)
    """

    hidden: Tuple[int, ...] = (128, 128)
    activation: Literal["silu", "tanh", "gelu", "softplus"] = "silu"
    layer_norm: bool = False
    bottleneck: Optional[int] = None
    network: Literal["auto", "per_species", "shared"] = "auto"
    shared_above: int = 10
    embedding: int = 16

    def __post_init__(self):
        if any(w < 1 for w in self.hidden) or (self.bottleneck is not None and self.bottleneck < 1):
            raise ValueError("layer widths must be >= 1")
        if self.network not in ("auto", "per_species", "shared"):
            raise ValueError(f"network must be auto, per_species or shared, got {self.network!r}")
        if self.embedding < 1 or self.shared_above < 0:
            raise ValueError("embedding must be >= 1 and shared_above >= 0")

    def is_shared(self, n_species: int) -> bool:
        """Whether the network for ``n_species`` elements is shared."""
        if self.network == "auto":
            return n_species > self.shared_above
        return self.network == "shared"

    def layer_names(self) -> List[str]:
        """Names of the hidden layers, in order."""
        names = [f"hidden_{i + 1}" for i in range(len(self.hidden))]
        if self.bottleneck is not None:
            names.append("bottleneck")
        return names


class _SpeciesNet(nn.Module):
    """The MLP of one species, recording each hidden layer."""

    def __init__(self, n_features: int, config: BPNNConfig):
        super().__init__()
        widths = list(config.hidden) + (
            [config.bottleneck] if config.bottleneck is not None else []
        )
        layers = []
        previous = n_features
        for width in widths:
            block = [nn.Linear(previous, width), ACTIVATIONS[config.activation]()]
            if config.layer_norm:
                block.append(nn.LayerNorm(width))
            layers.append(nn.Sequential(*block))
            previous = width
        self.hidden = nn.ModuleList(layers)
        self.output = nn.Linear(previous, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = layer(x)
        return self.output(x).squeeze(-1)

    def activations(self, x: torch.Tensor) -> List[torch.Tensor]:
        out = []
        for layer in self.hidden:
            x = layer(x)
            out.append(x)
        out.append(self.output(x))
        return out


class BPNN(nn.Module):
    """Per-species MLPs on per-atom features.

    :param species: atomic numbers, in the order of the ``species`` indices
        given to :meth:`forward`
    :param n_features: length of each atom's input vector
    :param config: the architecture
    """

    def __init__(self, species: Sequence[int], n_features: int, config: BPNNConfig):
        super().__init__()
        self.species = [int(z) for z in species]
        self.n_features = n_features
        self.config = config
        self.shared = config.is_shared(len(self.species))
        if self.shared:
            self.embedding = nn.Embedding(len(self.species), config.embedding)
            self.nets = nn.ModuleList([_SpeciesNet(n_features + config.embedding, config)])
        else:
            self.nets = nn.ModuleList([_SpeciesNet(n_features, config) for _ in self.species])
        self.baseline: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("baseline", torch.zeros(len(self.species)))
        self.register_buffer("scale", torch.ones(()))

    def layer_names(self) -> List[str]:
        """All layers, in order: the input, the hidden layers, the output."""
        return ["input"] + self.config.layer_names() + ["output"]

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Energy of every atom (eV): ``x`` is ``(n_atoms, n_features)``,
        ``species`` the species index of each atom."""
        energy = self.baseline[species]
        if self.shared:
            inputs = torch.cat([x, self.embedding(species).to(x.dtype)], dim=1)
            return energy + self.scale * self.nets[0](inputs)
        for index, net in enumerate(self.nets):
            atoms = torch.nonzero(species == index).squeeze(1)
            if len(atoms):
                energy = energy.index_add(0, atoms, self.scale * net(x[atoms]))
        return energy

    def layer_activations(
        self, x: torch.Tensor, species: torch.Tensor
    ) -> OrderedDict[str, torch.Tensor]:
        """Every layer of every atom: ``{name: (n_atoms, width)}``.

        ``input`` is the (compressed) descriptor, hidden layers are taken after
        their activation (and layer norm), ``output`` is the atom's energy in
        eV (baseline included). All species share widths, so each layer is
        one tensor over all atoms in input order.
        """
        names = self.layer_names()
        result: OrderedDict[str, torch.Tensor] = OrderedDict((name, x) for name in names)
        outputs = {name: x.new_zeros((len(x), 0)) for name in names[1:]}
        if self.shared:
            inputs = torch.cat([x, self.embedding(species).to(x.dtype)], dim=1)
            values = self.nets[0].activations(inputs)  # type: ignore[operator]
            values[-1] = self.scale * values[-1] + self.baseline[species].unsqueeze(1)
            result.update(zip(names[1:], values))
            return result
        for index, net in enumerate(self.nets):
            atoms = torch.nonzero(species == index).squeeze(1)
            if not len(atoms):
                continue
            values = net.activations(x[atoms])  # type: ignore[operator]
            values[-1] = self.scale * values[-1] + self.baseline[index]
            for name, value in zip(names[1:], values):
                if outputs[name].shape[1] == 0:
                    outputs[name] = x.new_zeros((len(x), value.shape[1]))
                outputs[name] = outputs[name].index_copy(0, atoms, value)
        result.update(outputs)
        return result
