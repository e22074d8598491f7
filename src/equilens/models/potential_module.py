"""A potential as one TorchScript-able module over metatomic ``System`` objects.

:class:`PotentialModule` computes, inside torch, what a
:class:`~equilens.models.potential.Potential` computes with precomputed
projected gradients: SOAP with **featomic-torch** (the same hypers, the dense
layout over the fixed species list), the fixed per-species projection as a
linear map, the per-species networks, atomic energies summed. Forces and
stress are not outputs: they are the autograd derivatives of the energy with
respect to positions and to a strain of positions and cell, which
featomic-torch supports. It follows metatomic's ``ModelInterface``
(``forward(systems, outputs, selected_atoms)``), so the same module is

- the equilens ASE calculator (:mod:`equilens.models.calculator`: energy,
  forces, stress, atomic energies from one forward and one backward pass);
- the model exported for ASE, LAMMPS and chemiscope
  (:mod:`equilens.export.metatomic`).

Outputs: ``energy`` (per structure or per atom); ``feature`` (the last
hidden layer) and ``feature/<layer>`` for every layer (per atom, or per
structure as the mean over the atoms).

This file must not use ``from __future__ import annotations``: TorchScript
and metatomic read the annotations.
"""

from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, System

from ..errors import ModelError

ACTIVATIONS = {
    "silu": torch.nn.SiLU,
    "tanh": torch.nn.Tanh,
    "gelu": torch.nn.GELU,
    "softplus": torch.nn.Softplus,
}


class _SpeciesMLP(torch.nn.Module):
    """One species' network, with the parameter names of
    :class:`equilens.models.bpnn.BPNN`'s networks (its state dict loads as is)."""

    def __init__(self, n_features: int, widths: List[int], activation: str, layer_norm: bool):
        super().__init__()
        layers = []
        previous = n_features
        for width in widths:
            block = [torch.nn.Linear(previous, width), ACTIVATIONS[activation]()]
            if layer_norm:
                block.append(torch.nn.LayerNorm(width))
            layers.append(torch.nn.Sequential(*block))
            previous = width
        self.hidden = torch.nn.ModuleList(layers)
        self.output = torch.nn.Linear(previous, 1)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Every hidden layer, then the raw output ``(n, 1)``."""
        result: List[torch.Tensor] = []
        for layer in self.hidden:
            x = layer(x)
            result.append(x)
        result.append(self.output(x))
        return result


def _block_of(tensor: TensorMap, key: List[int]) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """Samples and values of the block with this key, or None."""
    position = tensor.keys.position(key)
    if position is None:
        return None
    block = tensor.block_by_id(position)
    return block.samples.values, block.values


class PotentialModule(torch.nn.Module):
    """SOAP (featomic-torch) -> projection -> per-species networks -> energy.

    Build it with :func:`potential_module`.
    """

    def __init__(
        self,
        hypers: Dict[str, object],
        species: List[int],
        projection: torch.Tensor,
        offset: torch.Tensor,
        widths: List[int],
        activation: str,
        layer_norm: bool,
        layer_names: List[str],
        mixing: Optional[torch.Tensor] = None,
        embedding: int = 0,
    ):
        super().__init__()
        import featomic.torch

        self.species = [int(z) for z in species]
        # alchemical SOAP (mixing given): featomic-torch's spherical expansion,
        # the neighbor types mixed and the power spectrum taken here, as
        # featomic's PowerSpectrum does in training
        self.alchemical = mixing is not None
        self.max_angular = 0
        if mixing is not None:
            featomic_hypers = {k: v for k, v in hypers.items() if k != "alchemical"}
            self.calculator = featomic.torch.SphericalExpansion(**featomic_hypers)
            basis: Dict[str, int] = featomic_hypers["basis"]  # type: ignore[assignment]
            self.max_angular = int(basis["max_angular"])
            mixing_tensor = mixing.clone()
        else:
            self.calculator = featomic.torch.SoapPowerSpectrum(**hypers)
            mixing_tensor = torch.zeros((0, 0), dtype=projection.dtype)
        self.mixing: torch.Tensor
        self.register_buffer("mixing", mixing_tensor)
        # plain SOAP: every (center, neighbor_1, neighbor_2) of the fixed
        # species list, so that the dense layout never depends on which
        # species a structure has (none for the alchemical SOAP: with dozens
        # of elements these labels alone would weigh megabytes)
        pairs = (
            []
            if self.alchemical
            else [(a, b) for i, a in enumerate(self.species) for b in self.species[i:]]
        )
        self.selected_keys = Labels(
            ["center_type", "neighbor_1_type", "neighbor_2_type"],
            torch.tensor(
                [[c, a, b] for c in self.species for (a, b) in pairs], dtype=torch.int32
            ).reshape(-1, 3),
        )
        self.neighbor_pairs = Labels(
            ["neighbor_1_type", "neighbor_2_type"],
            torch.tensor(pairs, dtype=torch.int32).reshape(-1, 2),
        )
        self.neighbor_types = Labels(
            ["neighbor_type"], torch.tensor(self.species, dtype=torch.int32).reshape(-1, 1)
        )
        self.projection: torch.Tensor
        self.offset: torch.Tensor
        self.baseline: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("projection", projection.clone())
        self.register_buffer("offset", offset.clone())
        self.n_features = int(projection.shape[2])
        # a shared network: one MLP fed the features and a learned element
        # embedding (equilens.models.bpnn.BPNN with network: shared)
        self.shared = embedding > 0
        self.embedding = torch.nn.Embedding(max(len(self.species), 1), max(embedding, 1))
        count = 1 if self.shared else len(self.species)
        self.nets = torch.nn.ModuleList(
            [
                _SpeciesMLP(self.n_features + embedding, widths, activation, layer_norm)
                for _ in range(count)
            ]
        )
        self.register_buffer("baseline", torch.zeros(len(self.species), dtype=projection.dtype))
        self.register_buffer("scale", torch.ones((), dtype=projection.dtype))
        # the layers, as in Potential.layer_names: input, hidden..., output
        self.layer_names = list(layer_names)
        self.widths = [int(w) for w in widths]

    def _projected(
        self, systems: List[System], selected_atoms: Optional[Labels], offsets: torch.Tensor
    ):
        """``x`` (projected SOAP) of every computed atom, rows in global atom
        order ``offsets[system] + atom``, and the species index of each row."""
        device = systems[0].positions.device
        dtype = systems[0].positions.dtype
        n_total = int(offsets[-1])
        if self.alchemical:
            expansion = self.calculator(systems, selected_samples=selected_atoms)
            dense = expansion.keys_to_properties(self.neighbor_types.to(device))
        else:
            soap = self.calculator(
                systems,
                selected_samples=selected_atoms,
                selected_keys=self.selected_keys.to(device),
            )
            dense = soap.keys_to_properties(self.neighbor_pairs.to(device))
        x = torch.zeros((n_total, self.n_features), dtype=dtype, device=device)
        species_index = torch.full((n_total,), -1, dtype=torch.long, device=device)
        for s in range(len(self.species)):
            if self.alchemical:
                found = self._mixed_power_spectrum(dense, self.species[s])
            else:
                found = _block_of(dense, [self.species[s]])
            if found is not None:
                samples, values = found
                if samples.shape[0] != 0:
                    rows = offsets[samples[:, 0].to(torch.long)] + samples[:, 1].to(torch.long)
                    values = values @ self.projection[s] - self.offset[s]
                    x = x.index_copy(0, rows, values)
                    species_index[rows] = s
        return x, species_index

    def _mixed_power_spectrum(
        self, dense: TensorMap, center: int
    ) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """Samples and values of the alchemical SOAP of one center type (the
        layout of :mod:`equilens.descriptors.alchemical_soap`), or None."""
        parts: List[torch.Tensor] = []
        samples = torch.zeros((0, 2), dtype=torch.int32)
        n_pseudo = self.mixing.shape[1]
        for l in range(self.max_angular + 1):  # noqa: E741
            found = _block_of(dense, [l, 1, center])
            if found is None:
                return None
            samples, values = found
            n, m = values.shape[0], values.shape[1]
            density = values.reshape(n, m, len(self.species), -1)
            mixed = torch.einsum("nmsr,sp->nmpr", density, self.mixing.to(values.dtype))
            mixed = mixed.reshape(n, m, n_pseudo * density.shape[3])
            factor = (-1.0) ** l / (2 * l + 1) ** 0.5
            power = factor * torch.einsum("nma,nmb->nab", mixed, mixed)
            pairs = torch.triu_indices(power.shape[1], power.shape[1], device=values.device)
            first, second = pairs[0], pairs[1]
            # sqrt(2) off the diagonal, computed in the values' precision (a
            # Python float scalar becomes float32 when TorchScript indexes)
            two = torch.full((first.shape[0],), 2.0, dtype=values.dtype, device=values.device)
            weight = torch.where(first == second, torch.ones_like(two), torch.sqrt(two))
            parts.append(power[:, first, second] * weight)
        return samples, torch.cat(parts, dim=1)

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        result: Dict[str, TensorMap] = {}
        if len(outputs) == 0 or len(systems) == 0:
            return result
        device = systems[0].positions.device
        dtype = systems[0].positions.dtype
        n_atoms = torch.tensor([len(s) for s in systems], dtype=torch.long, device=device)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long, device=device), n_atoms.cumsum(0)])
        n_total = int(offsets[-1])
        system_of_atom = torch.repeat_interleave(torch.arange(len(systems), device=device), n_atoms)
        atom_in_system = torch.arange(n_total, device=device) - offsets[system_of_atom]
        x, species_index = self._projected(systems, selected_atoms, offsets)
        if selected_atoms is None:
            rows = torch.arange(n_total, device=device)
            systems_out = torch.arange(len(systems), device=device)
        else:
            chosen = selected_atoms.values.to(device)
            rows = offsets[chosen[:, 0].to(torch.long)] + chosen[:, 1].to(torch.long)
            systems_out = torch.unique(system_of_atom[rows])
        row_system = system_of_atom[rows]
        energy, layers = self._networks(x, species_index, self._wanted_layers(outputs))
        atom_samples = Labels(
            ["system", "atom"],
            torch.stack([row_system, atom_in_system[rows]], dim=1).to(torch.int32),
        )
        system_samples = Labels(["system"], systems_out.reshape(-1, 1).to(torch.int32))
        counts = torch.zeros(len(systems), dtype=dtype, device=device).index_add(
            0, row_system, torch.ones(rows.shape[0], dtype=dtype, device=device)
        )
        keys = Labels(["_"], torch.zeros((1, 1), dtype=torch.int32, device=device))
        for name, output in outputs.items():
            per_atom = output.sample_kind == "atom"
            if name == "energy":
                values = energy[rows].reshape(-1, 1)
                label = "energy"
            else:
                values = layers[self._layer_of(name)][rows]
                label = "feature"
            if per_atom:
                samples = atom_samples
            else:
                total = torch.zeros((len(systems), values.shape[1]), dtype=dtype, device=device)
                total = total.index_add(0, row_system, values)[systems_out]
                if name != "energy":  # structure features: the mean over atoms
                    total = total / counts[systems_out].reshape(-1, 1)
                values = total
                samples = system_samples
            properties = Labels(
                [label],
                torch.arange(values.shape[1], dtype=torch.int32, device=device).reshape(-1, 1),
            )
            block = TensorBlock(
                values=values, samples=samples, components=[], properties=properties
            )
            result[name] = TensorMap(keys, [block])
        return result

    def _layer_of(self, name: str) -> str:
        if name == "feature":
            return self.layer_names[-2]  # the last hidden layer
        return name[len("feature/") :]

    def _wanted_layers(self, outputs: Dict[str, ModelOutput]) -> List[str]:
        wanted: List[str] = []
        for name in outputs:
            if name == "energy":
                continue
            if name != "feature" and not name.startswith("feature/"):
                raise ValueError("unsupported output '" + name + "'")
            layer = self._layer_of(name)
            if layer not in self.layer_names:
                raise ValueError("unknown layer in output '" + name + "'")
            wanted.append(layer)
        return wanted

    def _networks(self, x: torch.Tensor, species_index: torch.Tensor, wanted: List[str]):
        """Atomic energies of every atom, and the ``wanted`` layers."""
        n_total = x.shape[0]
        energy = torch.zeros(n_total, dtype=x.dtype, device=x.device)
        layers: Dict[str, torch.Tensor] = {}
        hidden = self.layer_names[1:-1]
        for i, name in enumerate(hidden):
            if name in wanted:
                layers[name] = torch.zeros(
                    (n_total, self.widths[i]), dtype=x.dtype, device=x.device
                )
        for s, net in enumerate(self.nets):
            if self.shared:  # one network for every atom
                atoms = torch.nonzero(species_index >= 0).reshape(-1)
                index = species_index[atoms]
                inputs = torch.cat([x[atoms], self.embedding(index).to(x.dtype)], dim=1)
                offsets = self.baseline[index]
            else:
                atoms = torch.nonzero(species_index == s).reshape(-1)
                inputs = x[atoms]
                offsets = self.baseline[s]
            if atoms.shape[0] != 0:
                activations = net.forward(inputs)
                atomic = self.scale * activations[-1].reshape(-1) + offsets
                energy = energy.index_copy(0, atoms, atomic)
                for i, name in enumerate(hidden):
                    if name in layers:
                        layers[name] = layers[name].index_copy(0, atoms, activations[i])
        layers[self.layer_names[0]] = x
        layers[self.layer_names[-1]] = energy.reshape(-1, 1)
        return energy, layers


def potential_module(potential, dtype: torch.dtype = torch.float64) -> PotentialModule:
    """The :class:`PotentialModule` of a :class:`~equilens.models.potential.Potential`
    (its weights, compression and hypers), in ``dtype``."""
    pca = potential.pca
    species = [int(z) for z in potential.species]
    if [int(z) for z in pca.species_] != species:
        raise ModelError("the compression and the network have different species lists")
    names = list(pca.properties_.names)
    alchemical = "alchemical" in potential.hypers
    expected = (
        ["l", "neighbor_1_type", "n_1", "neighbor_2_type", "n_2"]
        if alchemical
        else ["neighbor_1_type", "neighbor_2_type", "l", "n_1", "n_2"]
    )
    if names != expected:
        raise ModelError(f"the compression was fitted on SOAP properties {names}")
    mixing = None
    if alchemical:
        from ..descriptors.alchemical import element_embedding, split_hypers

        compression = split_hypers(potential.hypers)[1]
        assert compression is not None
        mixing = torch.tensor(element_embedding(species, compression))
    projection = np.stack([pca.projection(z) for z in species])
    offset = np.stack([pca.offset(z) for z in species])
    config = potential.model.config
    widths = list(config.hidden) + ([config.bottleneck] if config.bottleneck is not None else [])
    module = PotentialModule(
        potential.hypers,
        species,
        torch.tensor(projection, dtype=dtype),
        torch.tensor(offset, dtype=dtype),
        widths,
        config.activation,
        config.layer_norm,
        potential.layer_names,
        mixing=None if mixing is None else mixing.to(dtype),
        embedding=config.embedding if potential.model.shared else 0,
    )
    state = {k: v.to(dtype) for k, v in potential.model.state_dict().items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if set(missing) - {"projection", "offset", "mixing", "embedding.weight"} or unexpected:
        raise ModelError(f"cannot map the network: missing {missing}, unexpected {unexpected}")
    return module.to(dtype).eval()
