# mypy: disable-error-code="arg-type,var-annotated"
"""A tensor model as one TorchScript-able module over metatomic ``System`` objects.

:class:`TensorModule` computes, inside torch, what a
:class:`~equilens.models.tensor_model.TensorModel` computes: lambda-SOAP with
**featomic-torch** (``EquivariantPowerSpectrum``, the same hypers and
neighbor types, neighbor types in properties), the fixed per-block
projection, the equivariant network block by block (linear maps shared by
the components, layer norm on the invariant blocks, activation on the
invariant blocks and norm gates on the covariant ones, gates by the
invariant features of the same atom), and the target assembled as in
training (summed over atoms for per-structure targets). It follows
metatomic's ``ModelInterface`` (``forward(systems, outputs, selected_atoms)``).

Outputs:

- ``equilens::<target>`` (e.g. ``equilens::polarizability``): keys
  ``(o3_lambda, o3_sigma)`` per structure, ``(o3_lambda, o3_sigma,
  center_type)`` per atom; components ``o3_mu``; the target's properties;
- ``equilens::feature/<layer>``: every layer, equivariant, keys
  ``(o3_lambda, o3_sigma, center_type)`` (per structure: the mean over the
  atoms of each center type);
- ``feature`` (the last hidden layer) and ``feature/<layer>``: invariant
  summaries (for each atom the ``lambda = 0`` channels and the norms of the
  others, :func:`equilens.tensormaps.invariant_summary`), one block; per
  structure the mean over atoms.

This file must not use ``from __future__ import annotations``: TorchScript
and metatomic read the annotations.
"""

from typing import Dict, List, Optional, Tuple

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, System

from .tensor_blocks import _block, _mu, _sum_by_system, _system_block


class _Invariant(torch.nn.Module):
    """The activation of an invariant block."""

    def __init__(self, activation: str):
        super().__init__()
        self.function = torch.nn.SiLU() if activation == "silu" else torch.nn.Tanh()

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.function(values)


class _NormGate(torch.nn.Module):
    """``x * sigmoid(W |x| + b)``, ``|x|`` the per-channel norm over the components."""

    def __init__(self, width: int):
        super().__init__()
        self.linear = torch.nn.Linear(width, width)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return values * torch.sigmoid(
            self.linear(torch.linalg.vector_norm(values, dim=1, keepdim=True))
        )


class _Identity(torch.nn.Module):
    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return values


class TensorModule(torch.nn.Module):
    """lambda-SOAP (featomic-torch) -> projection -> equivariant network -> target.

    Build it with :func:`tensor_module`.
    """

    def __init__(
        self,
        hypers: Dict[str, object],
        species: List[int],
        in_keys: List[List[int]],
        projections: List[torch.Tensor],
        hidden: List[int],
        activation: str,
        layer_norm: bool,
        invariant_gate: bool,
        out_keys: List[List[int]],
        out_widths: List[int],
        target: str,
        per_atom: bool,
        target_properties: List[Labels],
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        import featomic.torch
        from featomic.torch.clebsch_gordan import EquivariantPowerSpectrum

        self.species = [int(z) for z in species]
        self.calculator = EquivariantPowerSpectrum(
            featomic.torch.SphericalExpansion(**hypers), neighbor_types=self.species, dtype=dtype
        )
        symmetries = sorted({(k[0], k[1]) for k in in_keys})
        self.selected_keys = Labels(
            ["o3_lambda", "o3_sigma"], torch.tensor(symmetries, dtype=torch.int32)
        )
        self.in_keys = [[int(v) for v in k] for k in in_keys]
        self.out_keys = [[int(v) for v in k] for k in out_keys]
        self.out_index = [self.in_keys.index(k) for k in self.out_keys]
        self.all_index = list(range(len(self.in_keys)))
        invariant = [k[0] == 0 and k[1] == 1 for k in self.in_keys]
        # the invariant block of each block's center type (gates, summaries)
        self.source = [
            [i for i, k in enumerate(self.in_keys) if invariant[i] and k[2] == key[2]][0]
            for key in self.in_keys
        ]
        self.projections = torch.nn.ParameterList(
            [torch.nn.Parameter(p.clone(), requires_grad=False) for p in projections]
        )
        widths = [int(p.shape[1]) for p in projections]
        self.linears = torch.nn.ModuleList()
        self.norms = torch.nn.ModuleList()
        self.nonlinear = torch.nn.ModuleList()
        self.gates = torch.nn.ModuleList()
        for width in hidden:
            self.linears.append(
                torch.nn.ModuleList(
                    [torch.nn.Linear(w, width, bias=inv) for w, inv in zip(widths, invariant)]
                )
            )
            self.norms.append(
                torch.nn.ModuleList(
                    [
                        torch.nn.LayerNorm(width) if inv and layer_norm else _Identity()
                        for inv in invariant
                    ]
                )
            )
            self.nonlinear.append(
                torch.nn.ModuleList(
                    [_Invariant(activation) if inv else _NormGate(width) for inv in invariant]
                )
            )
            self.gates.append(
                torch.nn.ModuleList(
                    [
                        torch.nn.Linear(width, width) if invariant_gate and not inv else _Identity()
                        for inv in invariant
                    ]
                )
            )
            widths = [width] * len(invariant)
        self.output = torch.nn.ModuleList(
            [
                torch.nn.Linear(widths[i], q, bias=invariant[i])
                for i, q in zip(self.out_index, out_widths)
            ]
        )
        self.invariant = invariant
        self.invariant_gate = invariant_gate
        self.target = target
        self.per_atom = per_atom
        self.target_properties = target_properties
        # per-structure targets: the output blocks of one (o3_lambda, o3_sigma) are summed
        self.target_symmetries: List[List[int]] = []
        self.target_slot: List[int] = []
        self.symmetry_properties: List[Labels] = []
        for k, key in enumerate(self.out_keys):
            if key[:2] not in self.target_symmetries:
                self.target_symmetries.append(key[:2])
                self.symmetry_properties.append(target_properties[k])
            self.target_slot.append(self.target_symmetries.index(key[:2]))
        self.layer_names = ["input"] + [f"hidden_{i + 1}" for i in range(len(hidden))] + ["output"]

    def _descriptor(
        self, systems: List[System], selected_atoms: Optional[Labels]
    ) -> Tuple[List[torch.Tensor], List[Labels]]:
        """Values and samples of every input block (empty when absent)."""
        dtype = systems[0].positions.dtype
        device = systems[0].positions.device
        tensor = self.calculator.compute(
            systems,
            selected_keys=self.selected_keys.to(device),
            selected_samples=selected_atoms,
            neighbors_to_properties=True,
        )
        values: List[torch.Tensor] = []
        samples: List[Labels] = []
        for b, projection in enumerate(self.projections):
            key = self.in_keys[b]
            position = tensor.keys.position(torch.tensor(key, dtype=torch.int32, device=device))
            if position is None:
                ell = key[0]
                values.append(
                    torch.zeros((0, 2 * ell + 1, projection.shape[1]), dtype=dtype, device=device)
                )
                samples.append(
                    Labels(
                        ["system", "atom"], torch.zeros((0, 2), dtype=torch.int32, device=device)
                    )
                )
            else:
                block = tensor.block_by_id(position)
                values.append(block.values @ projection)
                samples.append(block.samples)
        return values, samples

    def _network(self, values: List[torch.Tensor]) -> Dict[str, List[torch.Tensor]]:
        """Every layer, as the values of each block (the output: of each out key)."""
        layers: Dict[str, List[torch.Tensor]] = {"input": values}
        for i, linears in enumerate(self.linears):
            mapped: List[torch.Tensor] = []
            for b, linear in enumerate(linears):
                mapped.append(linear(values[b]))
            values = mapped
            for j, norms in enumerate(self.norms):
                if j == i:
                    normed: List[torch.Tensor] = []
                    for b, norm in enumerate(norms):
                        normed.append(norm(values[b]))
                    values = normed
            for j, nonlinear in enumerate(self.nonlinear):
                if j == i:
                    activated: List[torch.Tensor] = []
                    for b, function in enumerate(nonlinear):
                        activated.append(function(values[b]))
                    values = activated
            if self.invariant_gate:
                for j, gates in enumerate(self.gates):
                    if j == i:
                        gated: List[torch.Tensor] = []
                        for b, gate in enumerate(gates):
                            if self.invariant[b]:
                                gated.append(values[b])
                            else:
                                source = values[self.source[b]]
                                gated.append(values[b] * torch.sigmoid(gate(source)))
                        values = gated
            layers[self.layer_names[i + 1]] = values
        outputs: List[torch.Tensor] = []
        for k, linear in enumerate(self.output):
            outputs.append(linear(values[self.out_index[k]]))
        layers["output"] = outputs
        return layers

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        result: Dict[str, TensorMap] = {}
        if len(outputs) == 0 or len(systems) == 0:
            return result
        values, samples = self._descriptor(systems, selected_atoms)
        layers = self._network(values)
        n_systems = len(systems)
        for name, output in outputs.items():
            per_atom = output.sample_kind == "atom"
            if name == "equilens::" + self.target:
                result[name] = self._target(layers["output"], samples, n_systems, per_atom)
            elif name.startswith("equilens::feature/"):
                layer = self._layer(name[len("equilens::feature/") :])
                keys, blocks = self._blocks(layer, layers[layer], samples)
                result[name] = self._pooled(keys, blocks, n_systems, per_atom)
            elif name == "feature" or name.startswith("feature/"):
                layer = self.layer_names[-2] if name == "feature" else self._layer(name[8:])
                result[name] = self._summary(layer, layers[layer], samples, n_systems, per_atom)
            else:
                raise ValueError("unsupported output '" + name + "'")
        return result

    def _layer(self, name: str) -> str:
        if name not in self.layer_names:
            raise ValueError("unknown layer '" + name + "'")
        return name

    def _blocks(
        self, layer: str, values: List[torch.Tensor], samples: List[Labels]
    ) -> Tuple[List[List[int]], List[TensorBlock]]:
        keys = self.out_keys if layer == "output" else self.in_keys
        blocks: List[TensorBlock] = []
        for k, block_values in enumerate(values):
            index = self.out_index[k] if layer == "output" else k
            blocks.append(_block(block_values, samples[index], "feature"))
        return keys, blocks

    def _pooled(
        self, keys: List[List[int]], blocks: List[TensorBlock], n_systems: int, per_atom: bool
    ) -> TensorMap:
        """Per atom as they are; per structure the mean over each block's atoms."""
        device = blocks[0].values.device
        labels = Labels(
            ["o3_lambda", "o3_sigma", "center_type"],
            torch.tensor(keys, dtype=torch.int32, device=device),
        )
        if per_atom:
            return TensorMap(labels, blocks)
        pooled: List[TensorBlock] = []
        for block in blocks:
            total, counts = _sum_by_system(block, n_systems)
            mean = total / torch.clamp(counts, min=1.0).reshape(-1, 1, 1)
            pooled.append(_system_block(mean, block, n_systems))
        return TensorMap(labels, pooled)

    def _target(
        self, values: List[torch.Tensor], samples: List[Labels], n_systems: int, per_atom: bool
    ) -> TensorMap:
        """The target's blocks: per-atom outputs, or their sum over atoms."""
        device = values[0].device
        if self.per_atom:
            blocks = [
                TensorBlock(v, samples[self.out_index[k]], [_mu(v)], self.target_properties[k])
                for k, v in enumerate(values)
            ]
            keys = self.out_keys
            labels = Labels(
                ["o3_lambda", "o3_sigma", "center_type"],
                torch.tensor(keys, dtype=torch.int32, device=device),
            )
            return TensorMap(labels, blocks)
        totals: List[torch.Tensor] = []
        for k, v in enumerate(values):
            block = _block(v, samples[self.out_index[k]], "feature")
            total, _ = _sum_by_system(block, n_systems)
            slot = self.target_slot[k]
            if slot < len(totals):
                totals[slot] = totals[slot] + total
            else:
                totals.append(total)
        symmetries = self.target_symmetries
        properties = self.symmetry_properties
        system = Labels(
            ["system"], torch.arange(n_systems, dtype=torch.int32, device=device).reshape(-1, 1)
        )
        blocks = [
            TensorBlock(t, system, [_mu(t)], p.to(device)) for t, p in zip(totals, properties)
        ]
        labels = Labels(
            ["o3_lambda", "o3_sigma"], torch.tensor(symmetries, dtype=torch.int32, device=device)
        )
        return TensorMap(labels, blocks)

    def _summary(
        self,
        layer: str,
        values: List[torch.Tensor],
        samples: List[Labels],
        n_systems: int,
        per_atom: bool,
    ) -> TensorMap:
        """Invariant summary of a layer, one block over all atoms (system, atom)."""
        device = values[0].device
        dtype = values[0].dtype
        keys = self.out_keys if layer == "output" else self.in_keys
        index = self.out_index if layer == "output" else self.all_index
        rows: List[torch.Tensor] = []
        labels: List[torch.Tensor] = []
        for z in self.species:
            parts: List[torch.Tensor] = []
            atoms = torch.zeros((0, 2), dtype=torch.int32, device=device)
            for b, key in enumerate(keys):
                if key[2] == z:
                    v = values[b]
                    parts.append(
                        v[:, 0, :]
                        if key[0] == 0 and key[1] == 1
                        else torch.linalg.vector_norm(v, dim=1)
                    )
                    atoms = samples[index[b]].values
            if len(parts) > 0:
                rows.append(torch.cat(parts, dim=1))
                labels.append(atoms)
        features = torch.cat(rows, dim=0)
        atom_samples = torch.cat(labels, dim=0)
        order = torch.argsort(
            atom_samples[:, 0].to(torch.long) * 1_000_000 + atom_samples[:, 1].to(torch.long)
        )
        features = features[order]
        atom_samples = atom_samples[order]
        properties = Labels(
            ["feature"],
            torch.arange(features.shape[1], dtype=torch.int32, device=device).reshape(-1, 1),
        )
        keys_out = Labels(["_"], torch.zeros((1, 1), dtype=torch.int32, device=device))
        if per_atom:
            samples_out = Labels(["system", "atom"], atom_samples)
            return TensorMap(keys_out, [TensorBlock(features, samples_out, [], properties)])
        system = atom_samples[:, 0].to(torch.long)
        total = torch.zeros((n_systems, features.shape[1]), dtype=dtype, device=device)
        total = total.index_add(0, system, features)
        counts = torch.zeros(n_systems, dtype=dtype, device=device).index_add(
            0, system, torch.ones(system.shape[0], dtype=dtype, device=device)
        )
        mean = total / torch.clamp(counts, min=1.0).reshape(-1, 1)
        samples_out = Labels(
            ["system"], torch.arange(n_systems, dtype=torch.int32, device=device).reshape(-1, 1)
        )
        return TensorMap(keys_out, [TensorBlock(mean, samples_out, [], properties)])
