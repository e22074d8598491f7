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
:func:`~equilens.models.equivariant.invariant_summary` turns one into
invariant per-atom features.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import ase
import numpy as np
import torch
from metatensor import Labels, TensorBlock, TensorMap

from .config import from_mapping, to_mapping
from .descriptors.lambda_soap import compute_lambda_soap
from .errors import EquilensError
from .models.equivariant import (
    EquivariantConfig,
    EquivariantNetwork,
    EquivariantPCA,
    invariant_summary,
    key_tuple,
)
from .storage import atomic_write, load_model_state

PathLike = Union[str, "os.PathLike[str]"]
Key = Tuple[int, ...]


@dataclass
class TargetLayout:
    """Metadata of a target TensorMap: enough to rebuild predictions."""

    key_names: List[str]
    keys: List[Key]
    properties: List[Tuple[List[str], np.ndarray]]
    per_atom: bool

    @classmethod
    def of(cls, target: TensorMap) -> "TargetLayout":
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
        )

    def property_labels(self, index: int) -> Labels:
        names, values = self.properties[index]
        return Labels(names, np.asarray(values, dtype=np.int32))


def to_torch(tensor: TensorMap, dtype: torch.dtype = torch.float64) -> TensorMap:
    """The same TensorMap with torch values (no gradients)."""
    return TensorMap(
        tensor.keys,
        [
            TensorBlock(
                torch.as_tensor(np.asarray(b.values), dtype=dtype),
                b.samples,
                b.components,
                b.properties,
            )
            for b in tensor.blocks()
        ],
    )


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


class TensorModel(torch.nn.Module):
    """lambda-SOAP, an equivariant network and the target's layout.

    :param network: the trained network
    :param hypers: featomic hyper-parameters of the spherical expansion
    :param species: the species the descriptor and the network cover
    :param layout: the target's layout (:meth:`TargetLayout.of`)
    :param in_features: lambda-SOAP features of each input block
    :param projection: the fitted projection inside ``network`` (saved with it)
    """

    def __init__(
        self,
        network: EquivariantNetwork,
        hypers: dict,
        species: Sequence[int],
        layout: TargetLayout,
        in_features: Sequence[int],
        projection: Optional[EquivariantPCA] = None,
    ):
        super().__init__()
        self.network = network
        self.in_features = [int(f) for f in in_features]
        self.projection = projection
        self.hypers = hypers
        self.species = tuple(int(z) for z in species)
        self.layout = layout
        self.lambda_max = max(int(k.values[0]) for k in network.in_keys)

    def descriptor(self, frames: Sequence[ase.Atoms]) -> TensorMap:
        """The network's input blocks of lambda-SOAP, as torch float64."""
        soap = compute_lambda_soap(
            frames, self.species, self.hypers, self.lambda_max, include_improper=False
        )
        return to_torch(select_blocks(soap, self.network.in_keys))

    def layers(self, frames: Sequence[ase.Atoms], batch_size: int = 0) -> Dict[str, TensorMap]:
        """Every layer of the network for the atoms of ``frames``: ``input``
        (projected lambda-SOAP), ``hidden_1`` ..., ``output``, each with keys
        ``(o3_lambda, o3_sigma, center_type)``, samples ``(system, atom)`` and
        components ``o3_mu`` (torch values).

        :param batch_size: frames per forward pass (``0``: all at once)
        """
        frames = list(frames)
        size = batch_size or max(len(frames), 1)
        parts: Dict[str, list] = {}
        with torch.no_grad():
            for start in range(0, len(frames), size):
                layers = self.network.layers(self.descriptor(frames[start : start + size]))
                for name, tensor in layers.items():
                    parts.setdefault(name, []).append((start, tensor))
        if all(len(p) == 1 for p in parts.values()):
            return {name: p[0][1] for name, p in parts.items()}
        return {name: _join(p) for name, p in parts.items()}

    def layer_activations(
        self, frames: Sequence[ase.Atoms], batch_size: int = 50
    ) -> Dict[str, TensorMap]:
        """Invariant summaries of every layer (keys ``center_type``), the
        layout :func:`equilens.latents.latents` and the scalar measures use."""
        layers = self.layers(frames, batch_size)
        return {name: to_numpy(invariant_summary(t)) for name, t in layers.items()}

    def predict(self, frames: Sequence[ase.Atoms]) -> TensorMap:
        """Predictions with the target's keys, samples and properties."""
        with torch.no_grad():
            atomic = self.network(self.descriptor(frames))
            values = assemble(atomic, self.layout, np.arange(len(frames)))
        return to_target(values, self.layout, atomic, len(frames))

    def save(self, path: PathLike) -> None:
        """Atomic ``torch.save`` of everything needed by :meth:`load`."""
        state = {
            "config": to_mapping(self.network.config),
            "state_dict": self.network.state_dict(),
            "in_keys": np.asarray(self.network.in_keys.values),
            "in_features": self.in_features,
            "out_keys": np.asarray(self.network.out_keys.values),
            "hypers": self.hypers,
            "species": self.species,
            "layout": {
                "key_names": self.layout.key_names,
                "keys": self.layout.keys,
                "properties": [(n, np.asarray(v)) for n, v in self.layout.properties],
                "per_atom": self.layout.per_atom,
            },
            "projection": None if self.projection is None else self.projection.projections,
        }
        with atomic_write(path, "wb") as handle:
            torch.save(state, handle)

    @classmethod
    def load(cls, path: PathLike) -> "TensorModel":
        """A model written by :meth:`save`."""
        state = load_model_state(path)
        if not is_tensor_state(state):
            raise EquilensError(f"{path}: not a tensor model written by equilens")
        layout = TargetLayout(**state["layout"])
        names = ["o3_lambda", "o3_sigma", "center_type"]
        in_keys = Labels(names, np.asarray(state["in_keys"], dtype=np.int32))
        out_keys = Labels(names, np.asarray(state["out_keys"], dtype=np.int32))
        projection = None
        if state["projection"] is not None:
            projection = EquivariantPCA(0)
            projection.projections = state["projection"]
        network = EquivariantNetwork(
            in_keys,
            state["in_features"],
            out_keys,
            output_properties(layout, out_keys),
            from_mapping(EquivariantConfig, state["config"]),
            projection,
        )
        network.load_state_dict(state["state_dict"])
        return cls(
            network, state["hypers"], state["species"], layout, state["in_features"], projection
        )


def is_tensor_state(state) -> bool:
    """Whether a loaded ``model.pt`` dictionary is a :class:`TensorModel`'s."""
    return isinstance(state, dict) and "layout" in state and "in_keys" in state


def is_tensor_model(path: PathLike) -> bool:
    """Whether ``path`` holds a :class:`TensorModel` (rather than a potential)."""
    return is_tensor_state(load_model_state(path))


def to_numpy(tensor: TensorMap) -> TensorMap:
    """The same TensorMap with numpy values (detached)."""
    return TensorMap(
        tensor.keys,
        [
            TensorBlock(
                b.values.detach().numpy() if isinstance(b.values, torch.Tensor) else b.values,
                b.samples,
                b.components,
                b.properties,
            )
            for b in tensor.blocks()
        ],
    )


def _join(parts) -> TensorMap:
    """Join per-batch layers along samples with global system ids."""
    from .descriptors._batches import join_batches

    return to_torch(join_batches([(start, to_numpy(t)) for start, t in parts]))


def select_blocks(tensor: TensorMap, keys: Labels) -> TensorMap:
    """The blocks of ``tensor`` with ``keys``, in that order (copies of the
    references, so the result owns its blocks)."""
    blocks = []
    for key in keys:
        block = tensor.block(dict(zip(keys.names, (int(v) for v in key.values))))
        blocks.append(TensorBlock(block.values, block.samples, block.components, block.properties))
    return TensorMap(keys, blocks)


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
