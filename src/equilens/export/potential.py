"""chemiscope export of any energy model on a dataset.

:func:`export_potential` gathers what a reader wants to look at for a model
that predicts energies (an equilens potential, SevenNet, MACE, a metatomic
model): its layer maps, atomic energies (its last layer, when that is one
number per atom), energy and force errors, the reference and predicted forces
as arrows, its hypers, and hands it to
:func:`equilens.export.export_chemiscope`. It uses the model protocol only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from ..analysis.latents import latents
from ..data import Dataset
from ..errors import EquilensError
from ..models import Model, energies_and_forces
from ..tensormaps import stack_blocks
from .chemiscope import export_chemiscope


def export_potential(
    path,
    potential: Model,
    dataset: Dataset,
    *,
    layers: Optional[Sequence[str]] = None,
    projections: Sequence[str] = ("pca",),
    forces: bool = True,
    labels: Optional[Mapping[str, np.ndarray]] = None,
    species: Optional[Sequence[int]] = None,
    cutoff: float = 3.5,
    name: Optional[str] = None,
    description: str = "",
    references: Sequence[str] = (),
    color: Optional[str] = None,
    lod: bool = True,
) -> Path:
    """Export ``dataset`` with the layers and predictions of ``potential``
    (any model whose ``outputs`` include ``energy``).

    :param layers: layer names to map (default: every layer but the atomic
        energy, which is in the file as a property: for an equilens potential
        the compressed descriptor input, each hidden layer, the bottleneck)
    :param projections: map methods (``"pca"``, ``"pcovr"``, ``"umap"``);
        PCovR regresses on the model's atomic energies
    :param forces: predict forces (needs descriptor gradients: slower) and
        add force errors and force arrows
    :param labels: extra per-atom labels (e.g. coordination numbers)
    :param species, cutoff, name, description, references, color, lod: as in
        :func:`~equilens.export.export_chemiscope`
    """
    frames = dataset.frames
    if "energy" not in potential.outputs:
        raise EquilensError(
            f"this {potential.kind} model predicts {potential.outputs}, not energies"
        )
    forces = forces and "forces" in potential.outputs
    all_layers = latents(potential, frames, per_species=False)
    output = potential.layer_names[-1]
    atomic_energy: Optional[np.ndarray] = stack_blocks(all_layers[output], output)[0]
    if atomic_energy is not None and atomic_energy.shape[1] == 1:
        atomic_energy = atomic_energy[:, 0]
        default = [n for n in all_layers if n != output]
    else:  # the last layer is not the atomic energy
        atomic_energy, default = None, list(all_layers)
    chosen = list(layers) if layers is not None else default
    unknown = [n for n in chosen if n not in all_layers]
    if unknown:
        raise EquilensError(f"unknown layers {unknown}; the model has {list(all_layers)}")
    if atomic_energy is None and "pcovr" in projections:
        raise EquilensError(
            f"PCovR regresses on atomic energies, which this {potential.kind} model does not give"
        )
    wanted = ("energy", "forces") if forces else ("energy",)
    energies, predicted_forces = energies_and_forces(potential.predict(frames, outputs=wanted))
    n_atoms = np.array([len(f) for f in frames])
    structure_properties = {"predicted energy": energies / n_atoms}
    units = {"predicted energy": "eV/atom", "atomic energy": "eV"}
    if dataset.energies is not None:
        reference = np.asarray(dataset.energies) / n_atoms
        structure_properties["reference energy"] = reference
        structure_properties["energy error"] = energies / n_atoms - reference
        units.update({"reference energy": "eV/atom", "energy error": "eV/atom"})
    atom_properties: Dict[str, Any] = dict(labels or {})
    if atomic_energy is not None:
        atom_properties["atomic energy"] = atomic_energy
    atom_arrows = {}
    if forces and predicted_forces is not None:
        atom_properties["predicted force"] = [np.linalg.norm(f, axis=1) for f in predicted_forces]
        units["predicted force"] = "eV/Å"
        atom_arrows["predicted forces"] = predicted_forces
        if dataset.forces is not None:
            atom_properties["force error"] = [
                np.linalg.norm(p - r, axis=1) for p, r in zip(predicted_forces, dataset.forces)
            ]
            units["force error"] = "eV/Å"
            atom_arrows = {"reference forces": dataset.forces, **atom_arrows}

    described = potential.describe()
    hypers = {"kind": described.kind, **described.hypers}
    if any(value for value in described.provenance.values()):
        hypers["metadata"] = described.provenance
    return export_chemiscope(
        path,
        frames,
        layers={n: all_layers[n] for n in chosen},
        projections=projections,
        projection_target=atomic_energy,
        atom_properties=atom_properties,
        structure_properties=structure_properties,
        atom_arrows=atom_arrows,
        units=units,
        species=species,
        cutoff=cutoff,
        name=name or (Path(dataset.path).stem if dataset.path else "equilens"),
        description=description
        or f"Latent maps of a {potential.kind} model: one map per layer, atomic energies, "
        "energy and force errors against the reference.",
        hypers=hypers,
        references=references,
        color=color,
        lod=lod,
    )
