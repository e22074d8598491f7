"""A trained equivariant potential on the model protocol.

:class:`EquivariantPotential` bundles the spherical-expansion hypers, the
fixed maps to its features (:class:`~equilens.descriptors.equivariant.EquivariantFeatures`)
and the family's module. ``layers`` and ``predict`` feed the module the
features computed with numpy featomic (with their projected gradients for
forces); the ASE calculator and the metatomic export call its ``forward``
with everything computed inside by featomic-torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, cast

import ase
import numpy as np
import torch
from metatensor import TensorMap

from ...config import from_mapping, to_mapping
from ...descriptors.equivariant import EquivariantFeatures, featurize_equivariant
from ...descriptors.projected import FeatureSet
from ...storage import arrays_from_torch, arrays_to_torch, hash_json
from ...tensormaps import join_by_system, to_metatensor_numpy
from ..base import (
    Model,
    ModelDescription,
    to_plain,
    trained_description,
    write_model_file,
)
from ..energy.model import ProjectedPotential
from .config import EquivariantNetworkConfig
from .module import EquivariantPotentialModule


def build_module(
    features: EquivariantFeatures,
    config: EquivariantNetworkConfig,
    dtype: torch.dtype = torch.float32,
) -> EquivariantPotentialModule:
    """A new module (weights from the current torch seed) for the fitted
    ``features``, in ``dtype``."""
    density = {
        key: torch.tensor(features.density_projection(key))
        for key in features.density_pca.projections
    }
    product = {
        key: torch.tensor(features.product_projection(key))
        for key in features.product_pca.projections
    }
    module = EquivariantPotentialModule(
        features.hypers,
        features.species,
        features.lambda_max,
        density,
        product,
        list(config.hidden),
        config.activation,
        config.layer_norm,
        config.invariant_gate,
        config.contraction,
        config.smooth,
        dtype,
    )
    return module.to(dtype)


class EquivariantPotential(ProjectedPotential, Model):
    """Energies and forces from an equivariant network on lambda-SOAP.

    Layers: ``input`` (the projected lambda-SOAP blocks), ``hidden_1`` ...,
    ``output`` (the atomic energy, eV); keys ``(o3_lambda, o3_sigma,
    center_type)``, components ``o3_mu``, per-species weights.

    :param features: the fitted maps from frames to the module's input
    :param config: the network's architecture
    :param module: the network (:func:`build_module`)
    :param metadata: provenance (configuration, metrics), JSON-able
    """

    kind = "equilens.equivariant_potential"
    per_species_coordinates = True

    def __init__(
        self,
        features: EquivariantFeatures,
        config: EquivariantNetworkConfig,
        module: EquivariantPotentialModule,
        metadata: Optional[dict] = None,
    ):
        self.features = features
        self.hypers = features.hypers
        self.config = config
        self.module = module
        self.metadata = metadata or {}

    @classmethod
    def build(
        cls,
        features: EquivariantFeatures,
        config: EquivariantNetworkConfig,
        dtype: torch.dtype = torch.float32,
        metadata: Optional[dict] = None,
    ) -> EquivariantPotential:
        """An untrained potential (weights from the current torch seed)."""
        return cls(features, config, build_module(features, config, dtype), metadata)

    @property
    def species(self) -> Tuple[int, ...]:
        return tuple(self.features.species)

    def describe(self) -> ModelDescription:
        return trained_description(
            self,
            features={
                "lambda_max": self.features.lambda_max,
                "density_components": self.features.density_components,
                "n_components": self.features.n_components,
            },
            model=to_mapping(self.config),
        )

    def featurize(self, frames: Sequence[ase.Atoms], gradients: bool) -> FeatureSet:
        """The module's input features (and their position gradients)."""
        return featurize_equivariant(frames, self.features, gradients=gradients, dtype=self.dtype)

    def feature_fingerprint(self) -> str:
        """What decides :meth:`featurize`: the fitted maps, the precision."""
        return hash_json({"features": self.features.fingerprint(), "dtype": str(self.dtype)})

    def layers(self, frames: Sequence[ase.Atoms], batch_size: int = 50) -> Dict[str, TensorMap]:
        """Every layer: keys ``(o3_lambda, o3_sigma, center_type)``, samples
        ``(system, atom)``, components ``o3_mu``, numpy values."""
        self.check_species(frames)
        frames = list(frames)
        parts: Dict[str, list] = {name: [] for name in self.layer_names}
        self.module.eval()
        with torch.no_grad():
            for start in range(0, len(frames), batch_size):
                batch = frames[start : start + batch_size]
                features = self.device_features(batch, gradients=False)
                tensors = self.module.layer_tensors(features.x, features.species)
                system = features.system.cpu().numpy()
                atom = np.arange(len(system)) - features.atom_offsets.cpu().numpy()[system]
                for name, tensor in zip(self.layer_names, tensors):
                    tensor = _with_frames(to_metatensor_numpy(tensor), system, atom)
                    parts[name].append((start, tensor))
        return {name: join_by_system(p) for name, p in parts.items()}

    def torch_module(self, dtype: torch.dtype = torch.float64) -> EquivariantPotentialModule:
        """A copy of the network in ``dtype``, in evaluation mode (what the ASE
        calculator and the metatomic export run)."""
        module = build_module(self.features, self.config, dtype)
        module.load_state_dict(self.module.state_dict())
        return module.eval()

    def save(self, path) -> Path:
        """Write the potential to one model file (atomically)."""
        return write_model_file(
            path,
            self.kind,
            {
                "hypers": to_plain(self.hypers),
                "features": arrays_to_torch(self.features.state()),
                "model_config": to_mapping(self.config),
                "dtype": str(self.dtype).replace("torch.", ""),
                "state_dict": dict(self.module.state_dict()),
                "metadata": to_plain(self.metadata),
            },
        )

    @classmethod
    def from_file(cls, payload: Dict[str, Any], path: Path) -> EquivariantPotential:
        config = from_mapping(
            EquivariantNetworkConfig, payload["model_config"], where=f"{path}: model"
        )
        features = EquivariantFeatures.from_state(
            arrays_from_torch(payload["features"]), payload["hypers"]
        )
        module = build_module(features, config, getattr(torch, payload["dtype"]))
        module.load_state_dict(payload["state_dict"])
        return cls(features, config, module, payload["metadata"])

    @classmethod
    def load(cls, path) -> EquivariantPotential:
        """Read a potential written by :meth:`save`."""
        from ..loading import load

        return cast(EquivariantPotential, load(path, expect=cls))


def _with_frames(tensor: TensorMap, system: np.ndarray, atom: np.ndarray) -> TensorMap:
    """``tensor`` (samples ``(0, row)``) with the ``(system, atom)`` of each row."""
    from metatensor import Labels, TensorBlock

    blocks = []
    for block in tensor.blocks():
        rows = np.asarray(block.samples.column("atom"))
        samples = Labels(
            ["system", "atom"], np.column_stack([system[rows], atom[rows]]).astype(np.int32)
        )
        blocks.append(TensorBlock(block.values, samples, block.components, block.properties))
    return TensorMap(tensor.keys, blocks)
