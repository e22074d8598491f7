"""A trained potential: SOAP hypers + compression + BPNN, usable from ASE.

:func:`energy_and_forces` is the one place where forces are computed: the
exact negative gradient of the model energy, contracted with the projected
descriptor gradients of a :class:`~equilens.features.FeatureSet`.
:class:`Potential` bundles everything a trained model needs to go from
``ase.Atoms`` to energies, forces and per-layer latent TensorMaps, and saves
to / loads from one file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import ase
import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from metatensor import Labels, TensorBlock, TensorMap

from .config import from_mapping, to_mapping
from .errors import EquilensError
from .features import FeatureSet, SpeciesPCA, featurize
from .models.bpnn import BPNN, BPNNConfig
from .storage import atomic_write, load_model_state

FORMAT_VERSION = 1
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
    contributions = torch.bmm(
        features.grad_values.to(d_energy.dtype), d_energy[features.grad_center].unsqueeze(-1)
    ).squeeze(-1)
    force = -torch.zeros((len(x), 3), dtype=atomic_energy.dtype).index_add(
        0, features.grad_neighbor, contributions
    )
    return energy, force


class Potential:
    """Everything needed to evaluate a trained BPNN on new structures.

    :param hypers: featomic SOAP hypers
    :param pca: the fitted compression
    :param model: the network
    :param metadata: free-form provenance (configs, training metrics)
    """

    def __init__(self, hypers: dict, pca: SpeciesPCA, model: BPNN, metadata: Optional[dict] = None):
        self.hypers = hypers
        self.pca = pca
        self.model = model
        self.metadata = metadata or {}

    @property
    def species(self) -> List[int]:
        return self.model.species

    @property
    def dtype(self) -> torch.dtype:
        return self.model.baseline.dtype

    def featurize(
        self, frames: Sequence[ase.Atoms], gradients: bool, progress: bool = False
    ) -> FeatureSet:
        return featurize(
            frames, self.hypers, self.pca, gradients=gradients, dtype=self.dtype, progress=progress
        )

    def predict(
        self, frames: Sequence[ase.Atoms], forces: bool = True, batch_size: int = 8
    ) -> Tuple[np.ndarray, Optional[List[np.ndarray]]]:
        """Energies (eV) and forces (eV/Å, one array per frame) of ``frames``."""
        energies, all_forces = [], []
        self.model.eval()
        for start in range(0, len(frames), batch_size):
            batch = list(frames[start : start + batch_size])
            features = self.featurize(batch, gradients=forces)
            energy, force = energy_and_forces(self.model, features, forces=forces)
            energies.append(energy.detach().numpy().astype(np.float64))
            if forces:
                force = force.detach().numpy().astype(np.float64)
                offsets = features.atom_offsets.numpy()
                all_forces.extend(force[a:b] for a, b in zip(offsets[:-1], offsets[1:]))
        return np.concatenate(energies), (all_forces if forces else None)

    def layer_activations(
        self, frames: Sequence[ase.Atoms], batch_size: int = 50
    ) -> Dict[str, TensorMap]:
        """Every layer of the model for every atom of ``frames``, as TensorMaps.

        Keys ``center_type`` (one block per species), samples
        ``(system, atom)``, properties ``feature``; the layers, in order, are
        :meth:`BPNN.layer_names`.
        """
        names = self.model.layer_names()
        values: Dict[str, list] = {name: [] for name in names}
        systems, atoms, species = [], [], []
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(frames), batch_size):
                batch = list(frames[start : start + batch_size])
                features = self.featurize(batch, gradients=False)
                layers = self.model.layer_activations(features.x, features.species)
                for name in names:
                    values[name].append(layers[name].numpy().astype(np.float64))
                systems.append(features.system.numpy() + start)
                atoms.append(np.concatenate([np.arange(len(a)) for a in batch]))
                species.append(np.array(self.species)[features.species.numpy()])
        system, atom, centers = (np.concatenate(v) for v in (systems, atoms, species))
        result = {}
        for name in names:
            array = np.concatenate(values[name])
            blocks, keys = [], []
            for z in self.species:
                mask = centers == z
                keys.append([z])
                blocks.append(
                    TensorBlock(
                        array[mask],
                        Labels(
                            ["system", "atom"],
                            np.column_stack([system[mask], atom[mask]]).astype(np.int32),
                        ),
                        [],
                        Labels.range("feature", array.shape[1]),
                    )
                )
            result[name] = TensorMap(
                Labels(["center_type"], np.array(keys, dtype=np.int32)), blocks
            )
        return result

    def calculator(self) -> "EquilensCalculator":
        """An ASE calculator giving this potential's energy and forces."""
        return EquilensCalculator(self)

    def save(self, path: PathLike) -> Path:
        """Write the potential to one file (atomically)."""
        state = {
            "format_version": FORMAT_VERSION,
            "hypers": self.hypers,
            "pca": self.pca.state(),
            "model_config": to_mapping(self.model.config),
            "species": self.species,
            "n_features": self.model.n_features,
            "dtype": str(self.dtype).replace("torch.", ""),
            "state_dict": self.model.state_dict(),
            "metadata": self.metadata,
        }
        path = Path(path)
        with atomic_write(path) as handle:
            torch.save(state, handle)
        return path

    @classmethod
    def load(cls, path: PathLike) -> "Potential":
        """Read a potential written by :meth:`save`."""
        state = load_model_state(path)
        if state.get("format_version") != FORMAT_VERSION:
            raise EquilensError(
                f"{path}: model format {state.get('format_version')} is not supported "
                f"(this equilens reads format {FORMAT_VERSION})"
            )
        config = from_mapping(BPNNConfig, state["model_config"], where=f"{path}:model")
        model = BPNN(state["species"], state["n_features"], config).to(
            getattr(torch, state["dtype"])
        )
        model.load_state_dict(state["state_dict"])
        return cls(state["hypers"], SpeciesPCA.from_state(state["pca"]), model, state["metadata"])


class EquilensCalculator(Calculator):
    """ASE calculator for a :class:`Potential` (energy, forces, atomic energies)."""

    implemented_properties = ["energy", "free_energy", "forces", "energies"]

    def __init__(self, potential: Potential, **kwargs):
        super().__init__(**kwargs)
        self.potential = potential

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        features = self.potential.featurize([self.atoms], gradients=True)
        self.potential.model.eval()
        atomic: List[torch.Tensor] = []
        energy, forces = energy_and_forces(
            self.potential.model, features, forces=True, atomic=atomic
        )
        self.results = {
            "energy": float(energy[0]),
            "free_energy": float(energy[0]),
            "forces": forces.detach().numpy().astype(np.float64),
            "energies": atomic[0].detach().numpy().astype(np.float64),
        }
