# mypy: disable-error-code="arg-type,var-annotated,assignment"
"""The equivariant potential's one torch module: lambda-SOAP -> equivariant
network -> atomic energies.

:class:`EquivariantPotentialModule` is used two ways:

- **training and layers** call :meth:`~EquivariantPotentialModule.atomic_energies`
  and :meth:`~EquivariantPotentialModule.layer_tensors` on the precomputed
  features of :mod:`equilens.descriptors.equivariant` (each atom's projected
  lambda-SOAP blocks, flat), whose stored position gradients give exact
  forces (:func:`equilens.models.energy.forces.energy_and_forces`);
- **the ASE calculator and the metatomic export** call :meth:`forward` on
  metatomic ``System`` objects: featomic-torch's spherical expansion, the
  same fixed density compression, featomic's Clebsch-Gordan product, the same
  fixed projection, then the same network; forces and stress by autograd.

The network (:mod:`equilens.models.nn`): the input blocks ``(o3_lambda, 1,
center_type)``, ``lambda <= lambda_max``; hidden layers of equivariant
linear maps, layer norm, norm gates (with a smooth norm), gates by the
invariant channel and the contraction of the covariant channels into the
invariant one; the atomic energy from the invariant block of the last hidden
layer, per center type, times a scale plus a per-species offset.

Outputs of :meth:`forward`: ``energy`` (per structure or per atom),
``feature`` (the invariant summary of the last hidden layer),
``feature/<layer>`` (invariant summaries of every layer: invariant channels
and norms of the covariant ones) and ``equilens::feature/<layer>`` (the
equivariant blocks, keys ``(o3_lambda, o3_sigma, center_type)``); per
structure: means over the atoms.

This file must not use ``from __future__ import annotations``: TorchScript
and metatomic read the annotations.
"""

from typing import Dict, List, Optional, Tuple

import metatensor.torch as mts
import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatensor.torch.learn.nn import EquivariantLinear, ModuleMap
from metatomic.torch import ModelOutput, System

from ..nn import HiddenLayer, Projection, invariant_sources
from ..tensor.blocks import mu_labels, pooled, summary
from .layers import energy_layer, energy_output, layer_tensor, relabel


def keep_ordered(keys: Labels) -> List[int]:
    """The product blocks with ``l_1 <= l_2`` (``(l_2, l_1)`` repeats them)."""
    return torch.nonzero(keys.column("l_1") <= keys.column("l_2")).reshape(-1).tolist()


def _labels(rows: List[List[int]]) -> Labels:
    # the names spelled here: TorchScript cannot read a module-level list
    names = ["o3_lambda", "o3_sigma", "center_type"]
    return Labels(names, torch.tensor(rows, dtype=torch.int32).reshape(-1, 3))


class EquivariantPotentialModule(torch.nn.Module):
    """Compressed-density lambda-SOAP -> equivariant network -> energies.

    :param hypers: featomic spherical-expansion hypers
    :param species: the center and neighbor types, in species-index order
    :param lambda_max: the largest ``o3_lambda`` of features and hidden layers
    :param density: ``{(l, 1, z): matrix}`` the density compression (neighbor
        type and radial channels -> ``density_components``)
    :param product: ``{(lambda, 1, z): matrix}`` the projection of the product
        to the features of its block (the same number for every center type
        of a ``lambda``)
    :param hidden: widths of the hidden layers
    :param activation: ``silu`` or ``tanh``
    :param layer_norm: layer norm on the invariant blocks
    :param invariant_gate: gate covariant channels by the invariant ones
    :param contraction: feed the covariant channels' squared norms back into
        the invariant channel
    :param smooth: the smoothing of the gates' norms
    :param dtype: the precision
    """

    def __init__(
        self,
        hypers: Dict[str, object],
        species: List[int],
        lambda_max: int,
        density: Dict[Tuple[int, ...], torch.Tensor],
        product: Dict[Tuple[int, ...], torch.Tensor],
        hidden: List[int],
        activation: str,
        layer_norm: bool,
        invariant_gate: bool,
        contraction: bool,
        smooth: float,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        import featomic.torch
        from featomic.torch.clebsch_gordan import ClebschGordanProduct

        self.species = [int(z) for z in species]
        self.lambda_max = int(lambda_max)
        max_angular = int(hypers["basis"]["max_angular"])  # type: ignore[index]
        self.calculator = featomic.torch.SphericalExpansion(**hypers)
        self.neighbor_types = Labels(
            ["neighbor_type"], torch.tensor(self.species, dtype=torch.int32).reshape(-1, 1)
        )
        density_keys = sorted(density)
        self.density_keys = [list(k) for k in density_keys]
        self.density_widths = [int(density[k].shape[0]) for k in density_keys]
        self.density_channels = int(density[density_keys[0]].shape[1])
        self.density_map = ModuleMap(
            _labels(self.density_keys),
            [Projection(density[k].to(dtype)) for k in density_keys],
            [Labels.range("n", self.density_channels)] * len(density_keys),
        )
        self.cg = ClebschGordanProduct(
            max_angular=2 * max_angular, keys_filter=keep_ordered, dtype=dtype
        )
        self.selected = Labels(
            ["o3_lambda", "o3_sigma"],
            torch.tensor([[lam, 1] for lam in range(self.lambda_max + 1)], dtype=torch.int32),
        )
        self.pairs = Labels(
            ["l_1", "l_2"],
            torch.tensor(
                [[a, b] for a in range(max_angular + 1) for b in range(a, max_angular + 1)],
                dtype=torch.int32,
            ),
        )
        self.in_keys = [[lam, 1, z] for lam in range(self.lambda_max + 1) for z in self.species]
        self.in_labels = _labels(self.in_keys)
        self.product_widths = [int(product[tuple(k)].shape[0]) for k in self.in_keys]
        # features per block of each lambda
        self.components: List[int] = [
            int(product[(lam, 1, self.species[0])].shape[1]) for lam in range(self.lambda_max + 1)
        ]
        self.product_map = ModuleMap(
            self.in_labels,
            [Projection(product[tuple(k)].to(dtype)) for k in self.in_keys],
            [Labels.range("feature", self.components[k[0]]) for k in self.in_keys],
        )
        self.starts: List[int] = []
        position = 0
        for lam in range(self.lambda_max + 1):
            self.starts.append(position)
            position += (2 * lam + 1) * self.components[lam]
        self.width = position
        options = (activation, layer_norm, invariant_gate, dtype, smooth, contraction)
        self.hidden = self._hidden_layers(hidden, options)
        widths = [int(hidden[-1])] * len(self.in_keys)
        self.energy_keys = [[0, 1, z] for z in self.species]
        self.energy_labels = _labels(self.energy_keys)
        self.energy_head = EquivariantLinear(
            self.energy_labels,
            [widths[0]] * len(self.species),
            out_properties=[Labels.range("feature", 1)] * len(self.species),
            dtype=dtype,
        )
        self.layer_names = ["input"] + [f"hidden_{i + 1}" for i in range(len(hidden))] + ["output"]
        self.baseline: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("baseline", torch.zeros(len(self.species), dtype=dtype))
        self.register_buffer("scale", torch.ones((), dtype=dtype))

    def _hidden_layers(self, hidden: List[int], options: Tuple) -> torch.nn.ModuleList:
        """The hidden layers (:class:`~equilens.models.nn.HiddenLayer`)."""
        activation, layer_norm, invariant_gate, dtype, smooth, contraction = options
        source = invariant_sources(self.in_keys)
        layers = []
        widths = [self.components[k[0]] for k in self.in_keys]
        for width in hidden:
            layers.append(
                HiddenLayer(
                    self.in_labels,
                    self.in_keys,
                    source,
                    widths,
                    int(width),
                    activation,
                    layer_norm,
                    invariant_gate,
                    dtype,
                    smooth,
                    contraction,
                )
            )
            widths = [int(width)] * len(self.in_keys)
        return torch.nn.ModuleList(layers)

    # -- the network, on the flat features ---------------------------------

    def _input(
        self, x: torch.Tensor, species: torch.Tensor
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """The rows of each input block ``(lambda, 1, z)`` (in ``in_keys``
        order) and their values ``(rows, 2 lambda + 1, components[lambda])``.

        One gather puts the atoms in species order; the blocks are then
        views (splits of its rows and of its columns), whose backward is one
        concatenation: a gather per block would fill and add a gradient of
        the whole input for each of the blocks (9 for lambda <= 2 and three
        species), in the force term's second derivatives too."""
        rows: List[torch.Tensor] = []
        counts: List[int] = []
        for s in range(len(self.species)):
            rows.append(torch.nonzero(species == s).reshape(-1))
            counts.append(int(rows[s].shape[0]))
        widths: List[int] = []
        for lam in range(self.lambda_max + 1):
            widths.append((2 * lam + 1) * self.components[lam])
        ordered = x[:, : self.width].index_select(0, torch.cat(rows))
        per_species = ordered.split_with_sizes(counts, dim=0)
        columns: List[List[torch.Tensor]] = []
        for s in range(len(self.species)):
            columns.append(per_species[s].split_with_sizes(widths, dim=1))
        block_rows: List[torch.Tensor] = []
        values: List[torch.Tensor] = []
        for lam in range(self.lambda_max + 1):
            for s in range(len(self.species)):
                block_rows.append(rows[s])
                values.append(columns[s][lam].reshape(-1, 2 * lam + 1, self.components[lam]))
        return block_rows, values

    def _run(
        self, x: torch.Tensor, species: torch.Tensor, record: bool
    ) -> Tuple[torch.Tensor, List[TensorMap]]:
        """Atomic energies of every row and, with ``record``, every layer.

        The network runs on the block values alone (the same modules as on
        TensorMaps, without building metadata at every step: a training
        step took 2.3x as long with it); the layers are TensorMaps."""
        rows, values = self._input(x, species)
        layers: List[TensorMap] = []
        if record:
            layers.append(layer_tensor(values, rows, self.in_keys, self.in_labels))
        for layer in self.hidden:
            values = layer.forward_values(values)  # type: ignore[operator]
            if record:
                layers.append(layer_tensor(values, rows, self.in_keys, self.in_labels))
        energy = self.baseline[species.clamp(min=0)]
        # the lambda = 0 blocks come first, one per species
        atomic: List[torch.Tensor] = []
        for s, module in enumerate(self.energy_head.module_map.module_list):
            atomic.append(self.scale * module(values[s]).reshape(-1))
            energy = energy.index_add(0, rows[s], atomic[s])
        if record:
            layers.append(energy_layer(energy, rows, self.energy_labels))
        return energy, layers

    @torch.jit.export
    def atomic_energies(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Energy of every atom (eV): ``x`` the flat features, ``species`` each
        atom's species index."""
        energy, _ = self._run(x, species, False)
        return energy

    @torch.jit.export
    def layer_tensors(self, x: torch.Tensor, species: torch.Tensor) -> List[TensorMap]:
        """Every layer (``layer_names`` order): the input blocks, each
        hidden layer, the atomic energy (keys ``(0, 1, center_type)``); samples
        ``(system = 0, atom = row of x)``."""
        _, layers = self._run(x, species, True)
        return layers

    # -- metatomic: the features inside -------------------------------------

    def _features(
        self, systems: List[System], selected_atoms: Optional[Labels], offsets: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The flat features of every computed atom (rows ``offsets[system]
        + atom``) and the species index of each row (``-1``: not computed)."""
        device = systems[0].positions.device
        dtype = systems[0].positions.dtype
        n_total = int(offsets[-1])
        density = self.calculator(systems, selected_samples=selected_atoms)
        density = density.keys_to_properties(self.neighbor_types.to(device))
        compressed = self.density_map(_select(density, self.density_keys, self.density_widths))
        first = mts.rename_dimension(compressed, "properties", "n", "n_1")
        second = mts.rename_dimension(compressed, "properties", "n", "n_2")
        product = self.cg.compute(first, second, "l_1", "l_2", self.selected.to(device))
        product = product.keys_to_properties(self.pairs.to(device))
        projected = self.product_map(_select(product, self.in_keys, self.product_widths))
        x = torch.zeros((n_total, self.width), dtype=dtype, device=device)
        species_index = torch.full((n_total,), -1, dtype=torch.long, device=device)
        for b, key in enumerate(self.in_keys):
            block = projected.block_by_id(b)
            samples = block.samples.values
            if samples.shape[0] != 0:
                rows = offsets[samples[:, 0].to(torch.long)] + samples[:, 1].to(torch.long)
                start = self.starts[key[0]]
                stop = start + (2 * key[0] + 1) * self.components[key[0]]
                x = x.index_copy(0, rows, _placed(x, rows, block.values, start, stop))
                species_index[rows] = self.species.index(key[2])
        return x, species_index

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
        n_atoms = torch.tensor([len(s) for s in systems], dtype=torch.long, device=device)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long, device=device), n_atoms.cumsum(0)])
        x, species_index = self._features(systems, selected_atoms, offsets)
        computed = torch.nonzero(species_index >= 0).reshape(-1)
        record = False
        for name in outputs:
            if name != "energy":
                record = True
        energy, layers = self._run(x[computed], species_index[computed], record)
        system_of_row = torch.searchsorted(offsets, computed, right=True) - 1
        atom_of_row = computed - offsets[system_of_row]
        samples = Labels(
            ["system", "atom"], torch.stack([system_of_row, atom_of_row], dim=1).to(torch.int32)
        )
        n_systems = len(systems)
        for name, output in outputs.items():
            per_atom = output.sample_kind == "atom"
            if name == "energy":
                result[name] = energy_output(energy, system_of_row, samples, n_systems, per_atom)
                continue
            layer = self.layer_names[-2]
            if name.startswith("equilens::feature/"):
                layer = name[len("equilens::feature/") :]
            elif name.startswith("feature/"):
                layer = name[len("feature/") :]
            elif name != "feature":
                raise ValueError("unsupported output '" + name + "'")
            if layer not in self.layer_names:
                raise ValueError("unknown layer in output '" + name + "'")
            tensor = relabel(layers[self.layer_names.index(layer)], samples)
            if name.startswith("equilens::"):
                result[name] = pooled(tensor, n_systems, per_atom)
            else:
                result[name] = summary(tensor, self.species, n_systems, per_atom)
        return result


def _placed(
    x: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, start: int, stop: int
) -> torch.Tensor:
    """Rows ``rows`` of ``x`` with columns ``start:stop`` set to ``values``."""
    current = x[rows]
    return torch.cat(
        [current[:, :start], values.reshape(values.shape[0], -1), current[:, stop:]], dim=1
    )


def _select(tensor: TensorMap, keys: List[List[int]], widths: List[int]) -> TensorMap:
    """The blocks of ``keys`` in that order (empty blocks for absent keys)."""
    device = tensor.device
    blocks: List[TensorBlock] = []
    for b, key in enumerate(keys):
        position = tensor.keys.position(torch.tensor(key, dtype=torch.int32, device=device))
        if position is None:
            ell = key[0]
            blocks.append(
                TensorBlock(
                    torch.zeros((0, 2 * ell + 1, widths[b]), dtype=tensor.dtype, device=device),
                    Labels(
                        ["system", "atom"], torch.zeros((0, 2), dtype=torch.int32, device=device)
                    ),
                    [mu_labels(ell, device)],
                    Labels(
                        ["property"],
                        torch.arange(widths[b], dtype=torch.int32, device=device).reshape(-1, 1),
                    ),
                )
            )
        else:
            block = tensor.block_by_id(position)
            blocks.append(
                TensorBlock(block.values, block.samples, block.components, block.properties)
            )
    return TensorMap(_labels(keys).to(device), blocks)
