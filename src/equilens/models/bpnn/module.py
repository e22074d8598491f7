"""The BPNN family's one torch module: SOAP -> projection -> networks -> energy.

:class:`BPNNModule` is the only implementation of the Behler-Parrinello
network in equilens. Its weights are one MLP per element (or one shared MLP
fed the features and a learned element embedding), and it is used three ways:

- **training and layers** call :meth:`BPNNModule.atomic_energies` and
  :meth:`BPNNModule.layer_values` on precomputed, projected SOAP features
  (:mod:`equilens.descriptors.projected`), whose position gradients give the
  forces (:func:`equilens.models.energy.forces.energy_and_forces`);
- **the ASE calculator and the metatomic export** call ``forward`` on
  metatomic ``System`` objects: SOAP is computed inside with featomic-torch
  (the same hypers, the dense layout over the fixed species list; for many
  elements the alchemical SOAP), projected with the fixed compression kept as
  buffers, and passed through the same networks. Forces and stress are the
  autograd derivatives of the energy.

It follows metatomic's ``ModelInterface`` (``forward(systems, outputs,
selected_atoms)``): ``energy`` (per structure or per atom), ``feature`` (the
last hidden layer) and ``feature/<layer>`` for every layer (per atom, or per
structure as the mean over the atoms). It is TorchScript-able and works on
the device and dtype it is moved to.

The state-dict names of the networks (``nets.<i>.hidden.<j>``,
``nets.<i>.output``, ``embedding``, ``baseline``, ``scale``) are those of
the model files since equilens 0.2.

This file must not use ``from __future__ import annotations``: TorchScript
and metatomic read the annotations.
"""

from typing import Dict, List, Optional, Tuple

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, System

from ..activations import activation


class SpeciesMLP(torch.nn.Module):
    """One element's network (or the shared one): hidden layers (linear,
    activation, optional layer norm), then one linear output."""

    def __init__(self, n_features: int, widths: List[int], name: str, layer_norm: bool):
        super().__init__()
        layers = []
        previous = n_features
        for width in widths:
            block = [torch.nn.Linear(previous, width), activation(name)]
            if layer_norm:
                block.append(torch.nn.LayerNorm(width))
            layers.append(torch.nn.Sequential(*block))
            previous = width
        self.hidden = torch.nn.ModuleList(layers)
        self.output = torch.nn.Linear(previous, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The raw output of every row, shape ``(n,)``."""
        for layer in self.hidden:
            x = layer(x)
        return self.output(x).reshape(-1)

    @torch.jit.export
    def activations(self, x: torch.Tensor) -> List[torch.Tensor]:
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


class BPNNModule(torch.nn.Module):
    """SOAP (featomic-torch) -> projection -> per-element networks -> energy.

    :param hypers: featomic SOAP hypers (with an ``alchemical`` entry for the
        alchemical SOAP, whose mixing is then given as ``mixing``)
    :param species: atomic numbers, in the order of the species indices
    :param projection: ``(n_species, n_soap, n_features)`` fixed compression
    :param offset: ``(n_species, n_features)`` subtracted after projecting
    :param widths: widths of the hidden layers (the bottleneck included)
    :param activation: name in :data:`equilens.models.activations.ACTIVATIONS`
    :param layer_norm: a layer norm after each hidden activation
    :param layer_names: ``input``, the hidden layers, ``output``
    :param embedding: width of the element embedding of a shared network
        (``0``: one network per element)
    :param mixing: ``(n_species, n_pseudo)`` alchemical mixing, or None
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
        embedding: int = 0,
        mixing: Optional[torch.Tensor] = None,
    ):
        super().__init__()
        import featomic.torch

        self.species = [int(z) for z in species]
        self.n_features = int(projection.shape[2])
        self.layer_names = list(layer_names)
        self.widths = [int(w) for w in widths]
        # alchemical SOAP (mixing given): featomic-torch's spherical expansion,
        # the neighbor types mixed and the power spectrum taken here, as
        # featomic's PowerSpectrum does for the precomputed features
        self.alchemical = mixing is not None
        self.max_angular = 0
        if mixing is not None:
            featomic_hypers = {k: v for k, v in hypers.items() if k != "alchemical"}
            self.calculator = featomic.torch.SphericalExpansion(**featomic_hypers)
            basis: Dict[str, int] = featomic_hypers["basis"]  # type: ignore[assignment]
            self.max_angular = int(basis["max_angular"])
            mixing_tensor = mixing.clone().to(projection.dtype)
        else:
            self.calculator = featomic.torch.SoapPowerSpectrum(**hypers)
            mixing_tensor = torch.zeros((0, 0), dtype=projection.dtype)
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
        # the fixed compression (derived from the model file's PCA: not saved
        # with the weights)
        self.mixing: torch.Tensor
        self.projection: torch.Tensor
        self.offset: torch.Tensor
        self.register_buffer("mixing", mixing_tensor, persistent=False)
        self.register_buffer("projection", projection.clone(), persistent=False)
        self.register_buffer("offset", offset.clone(), persistent=False)
        # the networks: one per element, or one shared, fed an element embedding
        self.shared = embedding > 0
        self.embedding: Optional[torch.nn.Embedding] = None
        if self.shared:
            self.embedding = torch.nn.Embedding(len(self.species), embedding)
        count = 1 if self.shared else len(self.species)
        self.nets = torch.nn.ModuleList(
            [
                SpeciesMLP(self.n_features + embedding, self.widths, activation, layer_norm)
                for _ in range(count)
            ]
        )
        self.baseline: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("baseline", torch.zeros(len(self.species), dtype=projection.dtype))
        self.register_buffer("scale", torch.ones((), dtype=projection.dtype))

    # -- the networks, on projected features --------------------------------

    @torch.jit.export
    def atomic_energies(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Energy of every atom (eV): ``x`` the projected features
        ``(n_atoms, n_features)``, ``species`` each atom's species index."""
        energy, _ = self._run(x, species, False)
        return energy

    @torch.jit.export
    def layer_values(self, x: torch.Tensor, species: torch.Tensor) -> List[torch.Tensor]:
        """Every layer of every atom, in ``layer_names`` order: the input
        ``x``, each hidden layer after its activation (and layer norm), the
        atomic energy ``(n_atoms, 1)`` in eV."""
        energy, hidden = self._run(x, species, True)
        return [x] + hidden + [energy.reshape(-1, 1)]

    def _run(
        self, x: torch.Tensor, species: torch.Tensor, record: bool
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Atomic energies and, with ``record``, the hidden layers of all atoms."""
        n_atoms = x.shape[0]
        energy = self.baseline[species.clamp(min=0)]
        hidden: List[torch.Tensor] = []
        if record:
            for width in self.widths:
                hidden.append(torch.zeros((n_atoms, width), dtype=x.dtype, device=x.device))
        for index, net in enumerate(self.nets):
            embedding = self.embedding
            if embedding is not None:  # one network for every atom
                atoms = torch.nonzero(species >= 0).reshape(-1)
                inputs = torch.cat(
                    [x.index_select(0, atoms), embedding(species[atoms]).to(x.dtype)], dim=1
                )
            else:
                atoms = torch.nonzero(species == index).reshape(-1)
                inputs = x.index_select(0, atoms)  # backward: index_add_, not index_put_
            if atoms.shape[0] != 0:  # (no `continue`: TorchScript unrolls this loop)
                if record:
                    values = net.activations(inputs)  # type: ignore[operator]
                    raw = values[-1].reshape(-1)
                    for i in range(len(hidden)):
                        hidden[i] = hidden[i].index_copy(0, atoms, values[i])
                else:
                    raw = net.forward(inputs)
                energy = energy.index_add(0, atoms, self.scale * raw)
        return energy, hidden

    # -- metatomic: SOAP inside ---------------------------------------------

    def _projected(
        self, systems: List[System], selected_atoms: Optional[Labels], offsets: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x`` (projected SOAP) of every computed atom, rows in global atom
        order ``offsets[system] + atom``, and the species index of each row
        (``-1`` for atoms not computed)."""
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
        samples = torch.zeros((0, 2), dtype=torch.int32, device=dense.device)
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
        wanted = self._wanted_layers(outputs)
        layers: Dict[str, torch.Tensor] = {}
        if len(wanted) == 0:
            energy = self.atomic_energies(x, species_index)
        else:
            every = self.layer_values(x, species_index)
            energy = every[-1].reshape(-1)
            for name, value in zip(self.layer_names, every):
                layers[name] = value
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
