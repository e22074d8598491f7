"""The layout of a tensorial target, and the blocks of the network that predicts it.

:class:`TargetLayout` keeps the metadata of a target TensorMap (keys,
properties, per structure or per atom), enough to rebuild predictions shaped
like the target; :func:`network_keys` gives the lambda-SOAP blocks the
network reads and the per-atom blocks it writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
from metatensor import Labels, TensorBlock, TensorMap

from ...errors import EquilensError
from ...tensormaps import Key, key_tuple


@dataclass
class TargetLayout:
    """Metadata of a target TensorMap: enough to rebuild predictions."""

    key_names: List[str]
    keys: List[Key]
    properties: List[Tuple[List[str], np.ndarray]]
    per_atom: bool
    name: str = "target"

    @classmethod
    def of(cls, target: TensorMap, name: str = "target") -> TargetLayout:
        """The layout of ``target``, a TensorMap named ``name`` (e.g. ``dipole``)."""
        names = target.keys.names
        if names[:2] != ["o3_lambda", "o3_sigma"]:
            raise EquilensError(f"target keys must start with (o3_lambda, o3_sigma), got {names}")
        samples = target.block(0).samples.names
        per_atom = samples == ["system", "atom"]
        if not per_atom and samples != ["system"]:
            raise EquilensError(f"target samples must be (system) or (system, atom), got {samples}")
        if per_atom and names != ["o3_lambda", "o3_sigma", "center_type"]:
            raise EquilensError(
                f"per-atom target keys must be (o3_lambda, o3_sigma, center_type), got {names}"
            )
        return cls(
            names,
            [key_tuple(k) for k in target.keys],
            [(b.properties.names, np.asarray(b.properties.values)) for b in target.blocks()],
            per_atom,
            name,
        )

    def state(self) -> dict:
        """Plain data and arrays, for saving."""
        return {
            "key_names": list(self.key_names),
            "keys": [list(k) for k in self.keys],
            "properties": [[list(n), np.asarray(v)] for n, v in self.properties],
            "per_atom": self.per_atom,
            "name": self.name,
        }

    @classmethod
    def from_state(cls, state: dict) -> TargetLayout:
        """Rebuild a layout from :meth:`state`."""
        return cls(
            list(state["key_names"]),
            [tuple(int(v) for v in k) for k in state["keys"]],
            [(list(n), np.asarray(v)) for n, v in state["properties"]],
            bool(state["per_atom"]),
            str(state["name"]),
        )

    def property_labels(self, index: int) -> Labels:
        names, values = self.properties[index]
        return Labels(names, np.asarray(values, dtype=np.int32))

    def relabel(self, prediction: TensorMap) -> TensorMap:
        """A prediction (keys ``(o3_lambda, o3_sigma)`` per structure,
        ``(o3_lambda, o3_sigma, center_type)`` per atom) with this layout's
        key names, key order and properties."""
        names = prediction.keys.names
        blocks = []
        for index, key in enumerate(self.keys):
            block = prediction.block(dict(zip(names, key[: len(names)])))
            blocks.append(
                TensorBlock(
                    np.asarray(block.values),
                    block.samples,
                    block.components,
                    self.property_labels(index),
                )
            )
        return TensorMap(Labels(self.key_names, np.array(self.keys, dtype=np.int32)), blocks)


def network_keys(layout: TargetLayout, species: Sequence[int]) -> Tuple[Labels, Labels]:
    """Input keys (sigma = 1 blocks of lambda 0 and of every target lambda, per
    species) and per-atom output keys of the network for ``layout``."""
    names = ["o3_lambda", "o3_sigma", "center_type"]
    if layout.per_atom:
        outputs = sorted(set(layout.keys))
    else:
        outputs = sorted({(k[0], k[1], z) for k in layout.keys for z in species})
    symmetries = sorted({(0, 1)} | {k[:2] for k in outputs})
    inputs = [(lam, sigma, z) for lam, sigma in symmetries for z in species]
    for key in outputs:
        if key[1] != 1:
            raise EquilensError(
                f"target block {key}: only o3_sigma = 1 (proper tensors) is supported"
            )
    as_labels = lambda rows: Labels(names, np.array(rows, dtype=np.int32))  # noqa: E731
    return as_labels(inputs), as_labels(outputs)


def output_properties(layout: TargetLayout, out_keys: Labels) -> List[Labels]:
    """Properties of each per-atom output block: those of its target block."""
    result = []
    for key in out_keys:
        key = key_tuple(key)
        index = layout.keys.index(key if layout.per_atom else key[:2])
        result.append(layout.property_labels(index))
    return result
