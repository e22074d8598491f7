"""A trained model of a tensorial property: lambda-SOAP -> equivariant network.

:class:`TensorModel` bundles the descriptor settings, the
:class:`~equilens.models.equivariant.EquivariantNetwork` and the layout of the
target, so that ``predict(frames)`` returns a TensorMap shaped like the
training target:

- per-structure targets (samples ``system``; dipoles, polarizabilities): the
  sum over atoms of per-atom contributions of the same ``(o3_lambda,
  o3_sigma)``, one output block per center type;
- per-atom targets (samples ``system, atom``; density coefficients): one
  output block per ``(o3_lambda, o3_sigma, center_type)``.

``layers(frames)`` gives every layer as an equivariant TensorMap and
:func:`~equilens.tensormaps.invariant_summary` turns one into invariant
per-atom features.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union, cast

import ase
import numpy as np
import torch
from metatensor import Labels, TensorBlock, TensorMap

from ..config import from_mapping, to_mapping
from ..descriptors.compression import EquivariantPCA
from ..descriptors.lambda_soap import compute_lambda_soap
from ..errors import EquilensError
from ..storage import arrays_from_torch, arrays_to_torch
from ..tensormaps import Key, join_by_system, key_tuple, select_blocks, to_numpy, to_torch
from .base import Model, to_plain, write_model_file
from .equivariant import EquivariantConfig, EquivariantNetwork

PathLike = Union[str, "os.PathLike[str]"]


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


class TensorModel(Model, torch.nn.Module):
    """lambda-SOAP, an equivariant network and the target's layout.

    Layers: ``input`` (projected lambda-SOAP), ``hidden_1`` ..., ``output``
    (per-atom contributions), each with keys ``(o3_lambda, o3_sigma,
    center_type)`` and components ``o3_mu``. :meth:`predict` gives
    ``{target name: TensorMap}`` laid out like the training target.

    :param network: the trained network
    :param hypers: featomic hyper-parameters of the spherical expansion
    :param species: the species the descriptor and the network cover
    :param layout: the target's layout (:meth:`TargetLayout.of`)
    :param in_features: lambda-SOAP features of each input block
    :param projection: the fitted projection inside ``network`` (saved with it)
    :param metadata: provenance (configs, training metrics), JSON-able
    """

    kind = "equilens.tensor_model"
    per_species_coordinates = True

    def __init__(
        self,
        network: EquivariantNetwork,
        hypers: dict,
        species: Sequence[int],
        layout: TargetLayout,
        in_features: Sequence[int],
        projection: Optional[EquivariantPCA] = None,
        metadata: Optional[dict] = None,
    ):
        torch.nn.Module.__init__(self)
        self.network = network
        self.in_features = [int(f) for f in in_features]
        self.projection = projection
        self.hypers = hypers
        self._species = tuple(int(z) for z in species)
        self.layout = layout
        self.metadata = metadata or {}
        self.lambda_max = max(int(k.values[0]) for k in network.in_keys)

    @property
    def species(self) -> Tuple[int, ...]:
        return self._species

    @property
    def layer_names(self) -> List[str]:
        hidden = [f"hidden_{i + 1}" for i in range(len(self.network.config.hidden))]
        return ["input", *hidden, "output"]

    def descriptor(self, frames: Sequence[ase.Atoms]) -> TensorMap:
        """The network's input blocks of lambda-SOAP, as torch float64."""
        self.check_species(frames)
        soap = compute_lambda_soap(
            frames, self.species, self.hypers, self.lambda_max, include_improper=False
        )
        return to_torch(select_blocks(soap, self.network.in_keys))

    def layers(self, frames: Sequence[ase.Atoms], batch_size: int = 50) -> Dict[str, TensorMap]:
        """Every layer of the network for the atoms of ``frames``: keys
        ``(o3_lambda, o3_sigma, center_type)``, samples ``(system, atom)``,
        components ``o3_mu``, numpy values.

        :param batch_size: frames per forward pass (``0``: all at once)
        """
        frames = list(frames)
        size = batch_size or max(len(frames), 1)
        parts: Dict[str, list] = {}
        with torch.no_grad():
            for start in range(0, len(frames), size):
                layers = self.network.layers(self.descriptor(frames[start : start + size]))
                for name, tensor in layers.items():
                    parts.setdefault(name, []).append((start, to_numpy(tensor)))
        return {name: join_by_system(p) for name, p in parts.items()}

    def predict(self, frames: Sequence[ase.Atoms], batch_size: int = 0) -> Dict[str, TensorMap]:
        """``{target name: TensorMap}`` with the target's keys, samples and properties."""
        with torch.no_grad():
            atomic = self.network(self.descriptor(frames))
            values = assemble(atomic, self.layout, np.arange(len(frames)))
        return {self.layout.name: to_target(values, self.layout, atomic, len(frames))}

    def save(self, path: PathLike) -> Path:
        """Write the model to one model file (atomically)."""
        return write_model_file(
            path,
            self.kind,
            {
                "config": to_mapping(self.network.config),
                "state_dict": dict(self.network.state_dict()),
                "in_keys": torch.tensor(np.array(self.network.in_keys.values)),
                "in_features": self.in_features,
                "out_keys": torch.tensor(np.array(self.network.out_keys.values)),
                "hypers": to_plain(self.hypers),
                "species": list(self.species),
                "layout": arrays_to_torch(self.layout.state()),
                "projection": None
                if self.projection is None
                else arrays_to_torch(self.projection.state()),
                "metadata": to_plain(self.metadata),
            },
        )

    @classmethod
    def from_file(cls, payload: Dict[str, Any], path: Path) -> TensorModel:
        layout = TargetLayout.from_state(arrays_from_torch(payload["layout"]))
        names = ["o3_lambda", "o3_sigma", "center_type"]
        in_keys = Labels(names, payload["in_keys"].numpy().astype(np.int32))
        out_keys = Labels(names, payload["out_keys"].numpy().astype(np.int32))
        projection = None
        if payload["projection"] is not None:
            projection = EquivariantPCA.from_state(arrays_from_torch(payload["projection"]))
        network = EquivariantNetwork(
            in_keys,
            payload["in_features"],
            out_keys,
            output_properties(layout, out_keys),
            from_mapping(EquivariantConfig, payload["config"], where=f"{path}: model"),
            projection,
        )
        network.load_state_dict(payload["state_dict"])
        return cls(
            network,
            payload["hypers"],
            payload["species"],
            layout,
            payload["in_features"],
            projection,
            payload["metadata"],
        )

    @classmethod
    def load(cls, path: PathLike) -> TensorModel:
        """Read a model written by :meth:`save`."""
        from .loading import load

        return cast(TensorModel, load(path, expect=cls))


def output_properties(layout: TargetLayout, out_keys: Labels) -> List[Labels]:
    """Properties of each per-atom output block: those of its target block."""
    result = []
    for key in out_keys:
        key = key_tuple(key)
        index = layout.keys.index(key if layout.per_atom else key[:2])
        result.append(layout.property_labels(index))
    return result


def assemble(
    atomic: TensorMap, layout: TargetLayout, systems: np.ndarray
) -> Dict[Key, torch.Tensor]:
    """Per-atom network outputs -> target-shaped values.

    Per-structure targets: ``{(lambda, sigma): (len(systems), 2l+1, q)}``,
    the sum over all atoms of every center type, rows in the order of
    ``systems`` (the system ids of the rows). Per-atom targets: the output
    blocks as they are, ``{(lambda, sigma, center_type): values}``.
    """
    if layout.per_atom:
        return {key_tuple(k): b.values for k, b in atomic.items()}
    systems = np.asarray(systems)
    order = np.argsort(systems)
    result: Dict[Key, torch.Tensor] = {}
    for key, block in atomic.items():
        key = key_tuple(key)
        ids = np.asarray(block.samples.column("system"))
        position = order[np.searchsorted(systems, ids, sorter=order)]
        values = block.values
        total = result.get(key[:2])
        if total is None:
            total = torch.zeros((len(systems),) + tuple(values.shape[1:]), dtype=values.dtype)
        result[key[:2]] = total.index_add(0, torch.as_tensor(position), values)
    return result


def to_target(
    values: Dict[Key, torch.Tensor], layout: TargetLayout, atomic: TensorMap, n_frames: int
) -> TensorMap:
    """Assembled values as a TensorMap laid out like the target."""
    blocks = []
    for index, key in enumerate(layout.keys):
        ell = key[0]
        components = [Labels(["o3_mu"], np.arange(-ell, ell + 1, dtype=np.int32)[:, None])]
        if layout.per_atom:
            source = atomic.block(dict(zip(layout.key_names, key)))
            samples = source.samples
        else:
            samples = Labels(["system"], np.arange(n_frames, dtype=np.int32)[:, None])
        array = values[key].detach().numpy().copy()
        blocks.append(TensorBlock(array, samples, components, layout.property_labels(index)))
    return TensorMap(Labels(layout.key_names, np.array(layout.keys, dtype=np.int32)), blocks)
