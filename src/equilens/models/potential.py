"""A trained potential: SOAP hypers + compression + BPNN, on the model protocol.

:func:`energy_and_forces` is the one place where forces are computed: the
exact negative gradient of the model energy, contracted with the projected
descriptor gradients of a :class:`~equilens.descriptors.projected.FeatureSet`.
:class:`Potential` bundles everything a trained model needs to go from
``ase.Atoms`` to energies, forces and per-layer TensorMaps, and saves to /
loads from one model file (:mod:`equilens.models.base`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union, cast

import ase
import numpy as np
import torch
from metatensor import TensorMap

from ..config import from_mapping, to_mapping
from ..descriptors.compression import SpeciesPCA
from ..descriptors.projected import FeatureSet, featurize
from ..errors import EquilensError
from ..storage import arrays_from_torch, arrays_to_torch
from ..tensormaps import atom_tensormap
from .base import Model, energy_map, forces_map, to_plain, write_model_file
from .bpnn import BPNN, BPNNConfig

PathLike = Union[str, "os.PathLike[str]"]


def energy_and_forces(
    model: BPNN,
    features: FeatureSet,
    forces: bool = True,
    create_graph: bool = False,
    atomic: Optional[List[torch.Tensor]] = None,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Total energy of each frame and, if asked, the force on each atom.

    ``F_j = -sum_i dE/dx_i . dx_i/dr_j`` with the projected descriptor
    gradients of ``features``: exactly minus the gradient of the energy.

    :param create_graph: keep the graph of the forces (for training on them)
    :param atomic: if a list is given, the per-atom energies are appended to
        it (they come from the same forward pass)
    """
    x = features.x
    if forces:
        if not features.has_gradients:
            raise EquilensError("forces need features computed with gradients=True")
        x = x.detach().requires_grad_(True)
    atomic_energy = model(x, features.species)
    if atomic is not None:
        atomic.append(atomic_energy)
    energy = torch.zeros(features.n_frames, dtype=atomic_energy.dtype).index_add(
        0, features.system, atomic_energy
    )
    if not forces:
        return energy, None
    (d_energy,) = torch.autograd.grad(
        energy.sum(), x, create_graph=create_graph, retain_graph=create_graph
    )
    contributions = _Contract.apply(d_energy[features.grad_center], features.grad_values)
    force = -torch.zeros((len(x), 3), dtype=atomic_energy.dtype).index_add(
        0, features.grad_neighbor, contributions
    )
    return energy, force


#: gradient pairs contracted at once: the float32 copy of a chunk of float16
#: gradients stays small (2048 x 3 x 256 x 4 B = 6 MB) and is reused by the
#: allocator; one copy of all the pairs of a batch (~160 MB on iron/water)
#: was a fresh allocation every batch, and the page faults made the epoch
#: time vary from 4.6 to 6.3 s between processes (benchmarks/training_speed.py)
PAIR_CHUNK = 2048


class _Contract(torch.autograd.Function):
    """``c[p] = G[p] @ d[p]`` for gradients ``G`` ``(P, 3, k)`` (any float
    dtype, no gradient) and ``d`` ``(P, k)``, chunk by chunk, in ``d``'s dtype."""

    @staticmethod
    def forward(ctx, d: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gradients)
        out = torch.empty((len(d), 3), dtype=d.dtype)
        for start in range(0, len(d), PAIR_CHUNK):
            stop = start + PAIR_CHUNK
            block = gradients[start:stop].to(d.dtype)
            out[start:stop] = torch.bmm(block, d[start:stop].unsqueeze(-1)).squeeze(-1)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        (gradients,) = ctx.saved_tensors
        grad = torch.empty((len(grad_output), gradients.shape[2]), dtype=grad_output.dtype)
        for start in range(0, len(grad_output), PAIR_CHUNK):
            stop = start + PAIR_CHUNK
            block = gradients[start:stop].to(grad_output.dtype)
            grad[start:stop] = torch.bmm(grad_output[start:stop].unsqueeze(1), block).squeeze(1)
        return grad, None


class Potential(Model):
    """Everything needed to evaluate a trained BPNN on new structures.

    Layers: ``input`` (the compressed SOAP), ``hidden_1`` ... (and
    ``bottleneck``), ``output`` (the atomic energy in eV); keys
    ``center_type`` with each species' own network, so the hidden layers of
    different species live in different coordinates.

    :param hypers: featomic SOAP hypers
    :param pca: the fitted compression
    :param model: the network
    :param metadata: free-form provenance (configs, training metrics), JSON-able
    """

    kind = "equilens.potential"

    def __init__(self, hypers: dict, pca: SpeciesPCA, model: BPNN, metadata: Optional[dict] = None):
        self.hypers = hypers
        self.pca = pca
        self.model = model
        self.metadata = metadata or {}

    @property  # type: ignore[misc]
    def per_species_coordinates(self) -> bool:  # type: ignore[override]
        """Per-element networks have per-element hidden coordinates; a shared
        network's layers are one space for all elements."""
        return not self.model.shared

    @property
    def species(self) -> Tuple[int, ...]:
        return tuple(self.model.species)

    @property
    def layer_names(self) -> List[str]:
        return self.model.layer_names()

    @property
    def dtype(self) -> torch.dtype:
        return self.model.baseline.dtype

    def featurize(
        self, frames: Sequence[ase.Atoms], gradients: bool, progress: bool = False
    ) -> FeatureSet:
        """Compressed SOAP (and its position gradients) of ``frames``."""
        return featurize(
            frames, self.hypers, self.pca, gradients=gradients, dtype=self.dtype, progress=progress
        )

    def energies_and_forces(
        self, frames: Sequence[ase.Atoms], forces: bool = True, batch_size: int = 8
    ) -> Tuple[np.ndarray, Optional[List[np.ndarray]]]:
        """Energies (eV) and forces (eV/Å, one array per frame) as numpy arrays."""
        self.check_species(frames)
        energies: List[np.ndarray] = []
        all_forces: List[np.ndarray] = []
        self.model.eval()
        for start in range(0, len(frames), batch_size):
            batch = list(frames[start : start + batch_size])
            features = self.featurize(batch, gradients=forces)
            energy, force = energy_and_forces(self.model, features, forces=forces)
            energies.append(energy.detach().numpy().astype(np.float64))
            if force is not None:
                array = force.detach().numpy().astype(np.float64)
                offsets = features.atom_offsets.numpy()
                all_forces.extend(array[a:b] for a, b in zip(offsets[:-1], offsets[1:]))
        return np.concatenate(energies), (all_forces if forces else None)

    def predict(
        self, frames: Sequence[ase.Atoms], batch_size: int = 8, forces: bool = True
    ) -> Dict[str, TensorMap]:
        """``energy`` (eV) and, with ``forces``, ``forces`` (eV/Å) as TensorMaps."""
        energies, all_forces = self.energies_and_forces(frames, forces, batch_size)
        result = {"energy": energy_map(energies)}
        if all_forces is not None:
            result["forces"] = forces_map(all_forces)
        return result

    def layers(self, frames: Sequence[ase.Atoms], batch_size: int = 50) -> Dict[str, TensorMap]:
        """Every layer for every atom of ``frames``: keys ``center_type`` (one
        block per species), samples ``(system, atom)``, properties ``feature``."""
        self.check_species(frames)
        names = self.layer_names
        values: Dict[str, list] = {name: [] for name in names}
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(frames), batch_size):
                batch = list(frames[start : start + batch_size])
                features = self.featurize(batch, gradients=False)
                layers = self.model.layer_activations(features.x, features.species)
                for name in names:
                    values[name].append(layers[name].numpy().astype(np.float64))
        system = np.concatenate([np.full(len(f), s) for s, f in enumerate(frames)])
        atom = np.concatenate([np.arange(len(f)) for f in frames])
        centers = np.concatenate([f.numbers for f in frames])
        return {
            name: atom_tensormap(
                np.concatenate(values[name]), system, atom, centers, species=self.species
            )
            for name in names
        }

    def calculator(self, dtype: torch.dtype = torch.float64):
        """An ASE calculator: energy, forces, stress (periodic cells) and atomic
        energies, evaluated in ``dtype``."""
        from .calculator import EquilensCalculator

        return EquilensCalculator(self, dtype)

    def save(self, path: PathLike) -> Path:
        """Write the potential to one model file (atomically)."""
        return write_model_file(
            path,
            self.kind,
            {
                "hypers": to_plain(self.hypers),
                "pca": arrays_to_torch(self.pca.state()),
                "model_config": to_mapping(self.model.config),
                "species": list(self.species),
                "n_features": int(self.model.n_features),
                "dtype": str(self.dtype).replace("torch.", ""),
                "state_dict": dict(self.model.state_dict()),
                "metadata": to_plain(self.metadata),
            },
        )

    @classmethod
    def from_file(cls, payload: Dict[str, Any], path: Path) -> Potential:
        config = from_mapping(BPNNConfig, payload["model_config"], where=f"{path}: model")
        model = BPNN(payload["species"], payload["n_features"], config).to(
            getattr(torch, payload["dtype"])
        )
        model.load_state_dict(payload["state_dict"])
        pca = SpeciesPCA.from_state(arrays_from_torch(payload["pca"]))
        return cls(payload["hypers"], pca, model, payload["metadata"])

    @classmethod
    def load(cls, path: PathLike) -> Potential:
        """Read a potential written by :meth:`save`."""
        from .loading import load

        return cast(Potential, load(path, expect=cls))
