"""A trained model of a tensorial property on the model protocol.

:class:`TensorModel` bundles the descriptor settings, the family's module
(:class:`~equilens.models.tensor.module.TensorModule`) and the layout of the
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

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, cast

import ase
import numpy as np
import torch
from metatensor import Labels, TensorMap

from ...config import from_mapping, to_mapping
from ...descriptors.compression import EquivariantPCA
from ...descriptors.lambda_soap import compute_lambda_soap
from ...storage import arrays_from_torch, arrays_to_torch
from ...tensormaps import (
    Key,
    join_by_system,
    key_tuple,
    to_metatensor_numpy,
    to_metatensor_torch,
)
from ..base import Model, ModelDescription, to_plain, trained_description, write_model_file
from .config import EquivariantConfig
from .layout import TargetLayout, output_properties
from .module import TensorModule


def build_module(
    config: EquivariantConfig,
    hypers: dict,
    species: Sequence[int],
    layout: TargetLayout,
    in_keys: Labels,
    out_keys: Labels,
    in_features: Sequence[int],
    projection: Optional[EquivariantPCA],
    dtype: torch.dtype = torch.float64,
) -> TensorModule:
    """A new :class:`TensorModule` (weights from the current torch seed) in ``dtype``."""
    import metatensor.torch

    def torch_labels(labels: Labels):
        return metatensor.torch.Labels(labels.names, torch.tensor(np.asarray(labels.values)))

    keys = [key_tuple(k) for k in in_keys]
    projections = None
    if projection is not None:
        projections = [torch.tensor(projection.projections[k]) for k in keys]
    return TensorModule(
        hypers,
        [int(z) for z in species],
        [list(k) for k in keys],
        [int(f) for f in in_features],
        projections,
        list(config.hidden),
        config.activation,
        config.layer_norm,
        config.invariant_gate,
        [list(key_tuple(k)) for k in out_keys],
        [torch_labels(p) for p in output_properties(layout, out_keys)],
        layout.name,
        layout.per_atom,
        dtype,
    )


class TensorModel(Model):
    """lambda-SOAP, the equivariant network and the target's layout.

    Layers: ``input`` (projected lambda-SOAP), ``hidden_1`` ..., ``output``
    (per-atom contributions), each with keys ``(o3_lambda, o3_sigma,
    center_type)`` and components ``o3_mu``. :meth:`predict` gives
    ``{target name: TensorMap}`` laid out like the training target.

    :param module: the network
    :param config: its architecture
    :param hypers: featomic hyper-parameters of the spherical expansion
    :param species: the species the descriptor and the network cover
    :param layout: the target's layout (:meth:`TargetLayout.of`)
    :param projection: the fitted projection inside ``module`` (saved with it)
    :param metadata: provenance (configs, training metrics), JSON-able
    """

    kind = "equilens.tensor_model"
    per_species_coordinates = True

    def __init__(
        self,
        module: TensorModule,
        config: EquivariantConfig,
        hypers: dict,
        species: Sequence[int],
        layout: TargetLayout,
        projection: Optional[EquivariantPCA] = None,
        metadata: Optional[dict] = None,
    ):
        self.module = module
        self.config = config
        self.projection = projection
        self.hypers = hypers
        self._species = tuple(int(z) for z in species)
        self.layout = layout
        self.metadata = metadata or {}
        self.lambda_max = max(k[0] for k in module.in_keys)

    @property
    def species(self) -> Tuple[int, ...]:
        return self._species

    @property
    def layer_names(self) -> List[str]:
        return list(self.module.layer_names)

    @property
    def outputs(self) -> Tuple[str, ...]:
        return (self.layout.name,)

    def describe(self) -> ModelDescription:
        return trained_description(
            self,
            model=to_mapping(self.config),
            target={"name": self.layout.name, "per_atom": self.layout.per_atom},
        )

    def descriptor(self, frames: Sequence[ase.Atoms]):
        """The network's input blocks of lambda-SOAP, as a ``metatensor.torch``
        TensorMap in the module's precision."""
        self.check_species(frames)
        soap = compute_lambda_soap(
            frames, self.species, self.hypers, self.lambda_max, include_improper=False
        )
        dtype = self.module.output.module_map.module_list[0].weight.dtype
        return to_metatensor_torch(soap, dtype)

    def layers(self, frames: Sequence[ase.Atoms], batch_size: int = 50) -> Dict[str, TensorMap]:
        """Every layer of the network for the atoms of ``frames``: keys
        ``(o3_lambda, o3_sigma, center_type)``, samples ``(system, atom)``,
        components ``o3_mu``, numpy values.

        :param batch_size: frames per forward pass (``0``: all at once)
        """
        frames = list(frames)
        size = batch_size or max(len(frames), 1)
        parts: Dict[str, list] = {}
        self.module.eval()
        with torch.no_grad():
            for start in range(0, len(frames), size):
                layers = self.module.layers(self.descriptor(frames[start : start + size]))
                for name, tensor in layers.items():
                    parts.setdefault(name, []).append((start, to_metatensor_numpy(tensor)))
        return {name: join_by_system(p) for name, p in parts.items()}

    def predict(
        self,
        frames: Sequence[ase.Atoms],
        outputs: Optional[Sequence[str]] = None,
        batch_size: int = 0,
    ) -> Dict[str, TensorMap]:
        """``{target name: TensorMap}`` with the target's keys, samples and properties."""
        self.wanted_outputs(outputs)
        self.module.eval()
        with torch.no_grad():
            output = self.module.layers(self.descriptor(frames))["output"]
            target = self.module.target_tensor(output, len(frames))
        return {self.layout.name: self.layout.relabel(to_metatensor_numpy(target))}

    def torch_module(self, dtype: torch.dtype = torch.float64) -> TensorModule:
        """A copy of the network in ``dtype``, in evaluation mode (what the
        metatomic export runs)."""
        names = ["o3_lambda", "o3_sigma", "center_type"]
        module = build_module(
            self.config,
            self.hypers,
            self.species,
            self.layout,
            Labels(names, np.array(self.module.in_keys, dtype=np.int32)),
            Labels(names, np.array(self.module.out_keys, dtype=np.int32)),
            self.module.in_features,
            self.projection,
            dtype,
        )
        module.load_state_dict(self.module.state_dict())  # copied into ``dtype``
        return module.eval()

    def save(self, path) -> Path:
        """Write the model to one model file (atomically)."""
        return write_model_file(
            path,
            self.kind,
            {
                "config": to_mapping(self.config),
                "state_dict": dict(self.module.state_dict()),
                "in_keys": torch.tensor(self.module.in_keys, dtype=torch.int32),
                "in_features": list(self.module.in_features),
                "out_keys": torch.tensor(self.module.out_keys, dtype=torch.int32),
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
        config = from_mapping(EquivariantConfig, payload["config"], where=f"{path}: model")
        module = build_module(
            config,
            payload["hypers"],
            payload["species"],
            layout,
            in_keys,
            out_keys,
            payload["in_features"],
            projection,
        )
        module.load_state_dict(upgrade_state(payload["state_dict"]))
        return cls(
            module,
            config,
            payload["hypers"],
            payload["species"],
            layout,
            projection,
            payload["metadata"],
        )

    @classmethod
    def load(cls, path) -> TensorModel:
        """Read a model written by :meth:`save`."""
        from ..loading import load

        return cast(TensorModel, load(path, expect=cls))


def assemble(output, layout: TargetLayout, systems: np.ndarray) -> Dict[Key, torch.Tensor]:
    """Per-atom network outputs (the ``output`` layer) -> target-shaped values.

    Per-structure targets: ``{(lambda, sigma): (len(systems), 2l+1, q)}``,
    the sum over all atoms of every center type, rows in the order of
    ``systems`` (the system ids of the rows). Per-atom targets: the output
    blocks as they are, ``{(lambda, sigma, center_type): values}``.
    """
    if layout.per_atom:
        return {key_tuple(k): b.values for k, b in zip(output.keys, output.blocks())}
    systems = np.asarray(systems)
    order = np.argsort(systems)
    result: Dict[Key, torch.Tensor] = {}
    for key, block in zip(output.keys, output.blocks()):
        key = key_tuple(key)
        ids = np.asarray(block.samples.column("system").cpu())
        position = torch.as_tensor(order[np.searchsorted(systems, ids, sorter=order)])
        values = block.values
        total = result.get(key[:2])
        if total is None:
            total = values.new_zeros((len(systems),) + tuple(values.shape[1:]))
        result[key[:2]] = total.index_add(0, position.to(values.device), values)
    return result


#: state-dict names of model files written before the module had one list of
#: hidden layers (equilens 0.2: ``linears.<i>``, ``norms.<i>``, ...)
_RENAMES = [
    (re.compile(r"^linears\.(\d+)\."), r"hidden.\1.linear."),
    (re.compile(r"^norms\.(\d+)\."), r"hidden.\1.norm."),
    (re.compile(r"^nonlinear\.(\d+)\."), r"hidden.\1.nonlinear."),
    (re.compile(r"^gates\.(\d+)\."), r"hidden.\1.gate."),
]


def upgrade_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A state dict of an earlier model file under the current names."""
    result = {}
    for name, value in state.items():
        for pattern, replacement in _RENAMES:
            name = pattern.sub(replacement, name)
        result[name] = value
    return result
