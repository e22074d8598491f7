"""A trained BPNN potential on the model protocol: SOAP hypers, compression, network.

:class:`Potential` bundles what a trained model needs to go from
``ase.Atoms`` to energies, forces and per-layer TensorMaps, and saves to /
loads from one model file (:mod:`equilens.models.base`). Its network is the
family's one module (:class:`~equilens.models.bpnn.module.BPNNModule`):
``layers`` and ``predict`` feed it precomputed projected SOAP (numpy
featomic, in batches), the ASE calculator and the metatomic export call its
``forward`` with SOAP computed inside by featomic-torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union, cast

import ase
import numpy as np
import torch
from metatensor import TensorMap

from ...config import from_mapping, to_mapping
from ...descriptors.compression import SpeciesPCA
from ...descriptors.projected import FeatureSet, featurize
from ...storage import arrays_from_torch, arrays_to_torch, hash_json
from ...tensormaps import atom_tensormap, frame_atoms
from ..base import (
    Model,
    ModelDescription,
    to_plain,
    trained_description,
    write_model_file,
)
from ..energy.model import ProjectedPotential
from .config import BPNNConfig
from .module import BPNNModule

PathLike = Union[str, "os.PathLike[str]"]


def build_module(
    hypers: dict, pca: SpeciesPCA, config: BPNNConfig, dtype: torch.dtype = torch.float32
) -> BPNNModule:
    """A new :class:`BPNNModule` (random weights, from the current torch seed)
    for SOAP ``hypers`` compressed by the fitted ``pca``, in ``dtype``."""
    species = [int(z) for z in pca.species_]
    mixing = None
    if "alchemical" in hypers:
        from ...descriptors.alchemical import element_embedding, split_hypers

        compression = split_hypers(hypers)[1]
        mixing = torch.tensor(element_embedding(species, compression))
    projection = np.stack([pca.projection(z) for z in species])
    offset = np.stack([pca.offset(z) for z in species])
    module = BPNNModule(
        hypers,
        species,
        torch.tensor(projection, dtype=dtype),
        torch.tensor(offset, dtype=dtype),
        config.widths(),
        config.activation,
        config.layer_norm,
        ["input", *config.layer_names(), "output"],
        embedding=config.embedding if config.is_shared(len(species)) else 0,
        mixing=mixing,
    )
    return module.to(dtype)


class Potential(ProjectedPotential, Model):
    """Everything needed to evaluate a trained BPNN on new structures.

    Layers: ``input`` (the compressed SOAP), ``hidden_1`` ... (and
    ``bottleneck``), ``output`` (the atomic energy in eV); keys
    ``center_type`` with each species' own network, so the hidden layers of
    different species live in different coordinates (one shared network:
    one coordinate system).

    :param hypers: featomic SOAP hypers
    :param pca: the fitted compression
    :param config: the architecture
    :param module: the network (``build_module``)
    :param metadata: free-form provenance (configs, training metrics), JSON-able
    """

    kind = "equilens.potential"

    def __init__(
        self,
        hypers: dict,
        pca: SpeciesPCA,
        config: BPNNConfig,
        module: BPNNModule,
        metadata: Optional[dict] = None,
    ):
        self.hypers = hypers
        self.pca = pca
        self.config = config
        self.module = module
        self.metadata = metadata or {}

    @classmethod
    def build(
        cls,
        hypers: dict,
        pca: SpeciesPCA,
        config: BPNNConfig,
        dtype: torch.dtype = torch.float32,
        metadata: Optional[dict] = None,
    ) -> Potential:
        """An untrained potential (weights from the current torch seed)."""
        return cls(hypers, pca, config, build_module(hypers, pca, config, dtype), metadata)

    @property  # type: ignore[misc]
    def per_species_coordinates(self) -> bool:  # type: ignore[override]
        """Per-element networks have per-element hidden coordinates; a shared
        network's layers are one space for all elements."""
        return not self.module.shared

    @property
    def species(self) -> Tuple[int, ...]:
        return tuple(self.module.species)

    def describe(self) -> ModelDescription:
        return trained_description(
            self,
            compression={"n_components": int(self.module.n_features)},
            model=to_mapping(self.config),
            architecture=self.metadata.get("architecture", {}),
        )

    def featurize(
        self, frames: Sequence[ase.Atoms], gradients: bool, progress: bool = False
    ) -> FeatureSet:
        """Compressed SOAP (and its position gradients) of ``frames``."""
        return featurize(
            frames, self.hypers, self.pca, gradients=gradients, dtype=self.dtype, progress=progress
        )

    def feature_fingerprint(self) -> str:
        """What decides :meth:`featurize`: the SOAP, the compression, the precision."""
        return hash_json(
            {"hypers": self.hypers, "pca": self.pca.fingerprint(), "dtype": str(self.dtype)}
        )

    def layers(self, frames: Sequence[ase.Atoms], batch_size: int = 50) -> Dict[str, TensorMap]:
        """Every layer for every atom of ``frames``: keys ``center_type`` (one
        block per species), samples ``(system, atom)``, properties ``feature``."""
        self.check_species(frames)
        names = self.layer_names
        values: Dict[str, list] = {name: [] for name in names}
        self.module.eval()
        with torch.no_grad():
            for start in range(0, len(frames), batch_size):
                batch = list(frames[start : start + batch_size])
                features = self.device_features(batch, gradients=False)
                layers = self.module.layer_values(features.x, features.species)
                for name, layer in zip(names, layers):
                    values[name].append(layer.cpu().numpy().astype(np.float64))
        system, atom, centers = frame_atoms(frames)
        return {
            name: atom_tensormap(
                np.concatenate(values[name]), system, atom, centers, species=self.species
            )
            for name in names
        }

    def torch_module(self, dtype: torch.dtype = torch.float64) -> BPNNModule:
        """A copy of the network in ``dtype``, in evaluation mode: what the ASE
        calculator and the metatomic export run."""
        module = build_module(self.hypers, self.pca, self.config, dtype)
        module.load_state_dict(self.module.state_dict())
        return module.eval()

    def save(self, path: PathLike) -> Path:
        """Write the potential to one model file (atomically)."""
        return write_model_file(
            path,
            self.kind,
            {
                "hypers": to_plain(self.hypers),
                "pca": arrays_to_torch(self.pca.state()),
                "model_config": to_mapping(self.config),
                "species": list(self.species),
                "n_features": int(self.module.n_features),
                "dtype": str(self.dtype).replace("torch.", ""),
                "state_dict": dict(self.module.state_dict()),
                "metadata": to_plain(self.metadata),
            },
        )

    @classmethod
    def from_file(cls, payload: Dict[str, Any], path: Path) -> Potential:
        config = from_mapping(BPNNConfig, payload["model_config"], where=f"{path}: model")
        pca = SpeciesPCA.from_state(arrays_from_torch(payload["pca"]))
        if [int(z) for z in pca.species_] != [int(z) for z in payload["species"]]:
            raise ValueError("the compression and the network have different species lists")
        if pca.n_components != int(payload["n_features"]):
            raise ValueError("the compression and the network have different widths")
        module = build_module(payload["hypers"], pca, config, getattr(torch, payload["dtype"]))
        module.load_state_dict(payload["state_dict"])
        return cls(payload["hypers"], pca, config, module, payload["metadata"])

    @classmethod
    def load(cls, path: PathLike) -> Potential:
        """Read a potential written by :meth:`save`."""
        from ..loading import load

        return cast(Potential, load(path, expect=cls))
