# mypy: disable-error-code="arg-type,var-annotated,assignment"
"""The tensor family's one torch module: lambda-SOAP -> equivariant network -> target.

:class:`TensorModule` is the only implementation of the equivariant network
on lambda-SOAP in equilens, built from ``metatensor.torch.learn.nn``. Every
hidden layer is

1. :class:`~metatensor.torch.learn.nn.EquivariantLinear`: a linear map on the
   feature axis only, shared by the ``2 lambda + 1`` components (a bias on
   the invariant blocks only);
2. :class:`~metatensor.torch.learn.nn.InvariantLayerNorm` on the invariant
   blocks (optional);
3. the nonlinearity: the activation on invariant blocks, and for ``lambda >
   0`` a norm gate ``x_c -> x_c * sigmoid(W |x| + b)_c`` (``|x|`` the
   per-channel norms over the components, which are invariant);
4. optionally (``invariant_gate``), a second gate of every ``lambda > 0``
   block by a sigmoid of a linear map of the invariant hidden features of the
   same atom, so that the covariant channels learn from the whole invariant
   description of the environment (as in e3nn's gated nonlinearity).

Every operation multiplies covariant features by invariant numbers or mixes
features linearly without touching the components, so every hidden block and
every output block transforms like its input block under rotations and
inversion. A fixed per-block projection (the equivariant PCA) in front of the
first layer reduces the wide lambda-SOAP blocks.

The module is used two ways:

- **training and layers** call :meth:`TensorModule.layers` on precomputed
  lambda-SOAP (a ``metatensor.torch`` TensorMap with the input blocks);
- **the metatomic export** calls :meth:`forward` on metatomic ``System``
  objects: lambda-SOAP is computed inside with featomic-torch
  (``EquivariantPowerSpectrum``, the same hypers and neighbor types).

Outputs of :meth:`forward`:

- ``equilens::<target>`` (e.g. ``equilens::polarizability``): keys
  ``(o3_lambda, o3_sigma)`` per structure, ``(o3_lambda, o3_sigma,
  center_type)`` per atom; components ``o3_mu``; the target's properties;
- ``equilens::feature/<layer>``: every layer, equivariant, keys
  ``(o3_lambda, o3_sigma, center_type)`` (per structure: the mean over the
  atoms of each center type);
- ``feature`` (the last hidden layer) and ``feature/<layer>``: invariant
  summaries (for each atom the ``lambda = 0`` channels and the norms of the
  others), one block; per structure the mean over atoms.

This file must not use ``from __future__ import annotations``: TorchScript
and metatomic read the annotations.
"""

from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatensor.torch.learn.nn import EquivariantLinear, ModuleMap
from metatomic.torch import ModelOutput, System

from ..nn import HiddenLayer, Projection, invariant_sources
from .blocks import _mu, _sum_by_system, mu_labels, pooled, summary

KEY_NAMES = ["o3_lambda", "o3_sigma", "center_type"]


class TensorModule(torch.nn.Module):
    """lambda-SOAP -> projection -> equivariant network -> per-atom target blocks.

    :param hypers: featomic spherical-expansion hypers of the lambda-SOAP
    :param species: the center and neighbor types
    :param in_keys: ``(o3_lambda, o3_sigma, center_type)`` of the input blocks;
        the ``(0, 1)`` block of each center type must be among them
    :param in_features: lambda-SOAP features of each input block
    :param projections: the fixed projection of each input block, or None
    :param hidden: widths of the hidden layers
    :param activation: ``silu`` or ``tanh``
    :param layer_norm: layer norm on the invariant blocks
    :param invariant_gate: gate covariant channels by the invariant ones
    :param out_keys: keys of the per-atom output blocks (a subset of ``in_keys``)
    :param out_properties: properties of each output block
    :param target: the target's name
    :param per_atom: per-atom target (else: summed over the atoms)
    :param dtype: the precision of the weights
    """

    def __init__(
        self,
        hypers: Dict[str, object],
        species: List[int],
        in_keys: List[List[int]],
        in_features: List[int],
        projections: Optional[List[torch.Tensor]],
        hidden: List[int],
        activation: str,
        layer_norm: bool,
        invariant_gate: bool,
        out_keys: List[List[int]],
        out_properties: List[Labels],
        target: str,
        per_atom: bool,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        import featomic.torch
        from featomic.torch.clebsch_gordan import EquivariantPowerSpectrum

        self.species = [int(z) for z in species]
        # the alchemical lambda-SOAP (neighbor types mixed) is computed for
        # training and layers, not yet inside the module (forward refuses it)
        self.alchemical = "alchemical" in hypers
        featomic_hypers = {k: v for k, v in hypers.items() if k != "alchemical"}
        self.calculator = EquivariantPowerSpectrum(
            featomic.torch.SphericalExpansion(**featomic_hypers),
            neighbor_types=self.species,
            dtype=dtype,
        )
        self.in_keys = [[int(v) for v in k] for k in in_keys]
        self.out_keys = [[int(v) for v in k] for k in out_keys]
        self.in_labels = Labels(KEY_NAMES, torch.tensor(self.in_keys, dtype=torch.int32))
        self.out_labels = Labels(KEY_NAMES, torch.tensor(self.out_keys, dtype=torch.int32))
        symmetries = sorted({(k[0], k[1]) for k in self.in_keys})
        self.selected_keys = Labels(
            ["o3_lambda", "o3_sigma"], torch.tensor(symmetries, dtype=torch.int32)
        )
        self.in_features = [int(f) for f in in_features]
        self.out_index = output_positions(self.in_keys, self.out_keys)
        self.source = invariant_sources(self.in_keys)
        widths = list(self.in_features)
        self.projection: Optional[ModuleMap] = None
        if projections is not None:
            self.projection = ModuleMap(
                self.in_labels,
                [Projection(p.to(dtype)) for p in projections],
                [Labels.range("feature", int(p.shape[1])) for p in projections],
            )
            widths = [int(p.shape[1]) for p in projections]
        layers = []
        layer_widths = [list(widths)]
        for width in hidden:
            layers.append(
                HiddenLayer(
                    self.in_labels,
                    self.in_keys,
                    self.source,
                    widths,
                    int(width),
                    activation,
                    layer_norm,
                    invariant_gate,
                    dtype,
                )
            )
            widths = [int(width)] * len(self.in_keys)
            layer_widths.append(list(widths))
        layer_widths.append([len(p) for p in out_properties])
        self.hidden = torch.nn.ModuleList(layers)
        self.output = EquivariantLinear(
            self.out_labels,
            [widths[i] for i in self.out_index],
            out_properties=[Labels.range("feature", len(p)) for p in out_properties],
            dtype=dtype,
        )
        self.out_properties = list(out_properties)
        self.target = target
        self.per_atom = per_atom
        self.layer_names = ["input"] + [f"hidden_{i + 1}" for i in range(len(hidden))] + ["output"]
        # the width of every block of every layer, in layer_names order
        self.block_widths: List[List[int]] = layer_widths
        # per-structure targets: the output blocks of one (o3_lambda, o3_sigma) are summed
        self.target_symmetries: List[List[int]] = []
        self.target_slot: List[int] = []
        self.symmetry_properties: List[Labels] = []
        for k, key in enumerate(self.out_keys):
            if key[:2] not in self.target_symmetries:
                self.target_symmetries.append(key[:2])
                self.symmetry_properties.append(self.out_properties[k])
            self.target_slot.append(self.target_symmetries.index(key[:2]))

    # -- the network, on lambda-SOAP ----------------------------------------

    @torch.jit.export
    def layers(self, tensor: TensorMap) -> Dict[str, TensorMap]:
        """Every layer: ``input`` (after the projection), ``hidden_1`` ...,
        ``output``; each a TensorMap with the input's samples, keys
        ``in_keys`` (``out_keys`` for the output)."""
        tensor = self._select(tensor)
        projection = self.projection
        if projection is not None:
            tensor = projection(tensor)
        result: Dict[str, TensorMap] = {"input": tensor}
        for i, layer in enumerate(self.hidden):
            tensor = layer(tensor)
            result[self.layer_names[i + 1]] = tensor
        blocks: List[TensorBlock] = []
        for index in self.out_index:
            block = tensor.block_by_id(index)
            blocks.append(
                TensorBlock(block.values, block.samples, block.components, block.properties)
            )
        result["output"] = self.output(TensorMap(self.out_labels.to(tensor.device), blocks))
        return result

    def _select(self, tensor: TensorMap) -> TensorMap:
        """The input blocks in ``in_keys`` order (empty blocks for absent keys)."""
        device = tensor.device
        dtype = tensor.dtype
        blocks: List[TensorBlock] = []
        for b, key in enumerate(self.in_keys):
            position = tensor.keys.position(torch.tensor(key, dtype=torch.int32, device=device))
            if position is None:
                ell = key[0]
                blocks.append(
                    TensorBlock(
                        torch.zeros(
                            (0, 2 * ell + 1, self.in_features[b]), dtype=dtype, device=device
                        ),
                        Labels(
                            ["system", "atom"],
                            torch.zeros((0, 2), dtype=torch.int32, device=device),
                        ),
                        [mu_labels(ell, device)],
                        Labels(
                            ["feature"],
                            torch.arange(
                                self.in_features[b], dtype=torch.int32, device=device
                            ).reshape(-1, 1),
                        ),
                    )
                )
            else:
                block = tensor.block_by_id(position)
                blocks.append(
                    TensorBlock(block.values, block.samples, block.components, block.properties)
                )
        return TensorMap(self.in_labels.to(device), blocks)

    # -- metatomic: lambda-SOAP inside --------------------------------------

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        result: Dict[str, TensorMap] = {}
        if len(outputs) == 0 or len(systems) == 0:
            return result
        if self.alchemical:
            raise ValueError("the alchemical lambda-SOAP is not computed inside the module yet")
        device = systems[0].positions.device
        descriptor = self.calculator.compute(
            systems,
            selected_keys=self.selected_keys.to(device),
            selected_samples=selected_atoms,
            neighbors_to_properties=True,
        )
        layers = self.layers(descriptor)
        n_systems = len(systems)
        for name, output in outputs.items():
            per_atom = output.sample_kind == "atom"
            if name == "equilens::" + self.target:
                result[name] = self.target_tensor(layers["output"], n_systems)
            elif name.startswith("equilens::feature/"):
                layer = self._layer(name[len("equilens::feature/") :])
                result[name] = pooled(layers[layer], n_systems, per_atom)
            elif name == "feature" or name.startswith("feature/"):
                layer = self.layer_names[-2] if name == "feature" else self._layer(name[8:])
                result[name] = summary(layers[layer], self.species, n_systems, per_atom)
            else:
                raise ValueError("unsupported output '" + name + "'")
        return result

    def _layer(self, name: str) -> str:
        if name not in self.layer_names:
            raise ValueError("unknown layer '" + name + "'")
        return name

    @torch.jit.export
    def target_tensor(self, output: TensorMap, n_systems: int) -> TensorMap:
        """The target from the output layer: the per-atom blocks with the
        target's properties, or their sums over the atoms of each structure
        (``n_systems`` rows)."""
        device = output.device
        if self.per_atom:
            blocks: List[TensorBlock] = []
            for k in range(len(self.out_keys)):
                block = output.block_by_id(k)
                blocks.append(
                    TensorBlock(
                        block.values,
                        block.samples,
                        [_mu(block.values)],
                        self.out_properties[k].to(device),
                    )
                )
            return TensorMap(self.out_labels.to(device), blocks)
        totals: List[torch.Tensor] = []
        for k in range(len(self.out_keys)):
            total, _ = _sum_by_system(output.block_by_id(k), n_systems)
            slot = self.target_slot[k]
            if slot < len(totals):
                totals[slot] = totals[slot] + total
            else:
                totals.append(total)
        system = Labels(
            ["system"], torch.arange(n_systems, dtype=torch.int32, device=device).reshape(-1, 1)
        )
        summed: List[TensorBlock] = []
        for t, p in zip(totals, self.symmetry_properties):
            summed.append(TensorBlock(t, system, [_mu(t)], p.to(device)))
        labels = Labels(
            ["o3_lambda", "o3_sigma"],
            torch.tensor(self.target_symmetries, dtype=torch.int32, device=device),
        )
        return TensorMap(labels, summed)


def output_positions(in_keys: List[List[int]], out_keys: List[List[int]]) -> List[int]:
    """The position among the input blocks of each output block's symmetry."""
    for key in out_keys:
        if key not in in_keys:
            raise ValueError(f"output block {key} has no input block of the same symmetry")
    return [in_keys.index(k) for k in out_keys]
