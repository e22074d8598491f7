"""The tables and chemiscope file of ``equilens uncertainty``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Sequence

import ase
import numpy as np

from ..storage import atomic_write


def write_tables(output: Path, frames: Sequence[ase.Atoms], result, errors: Optional[np.ndarray]):
    """``structures.csv`` (one row per frame) and ``atoms.csv`` (one per atom)."""
    output.mkdir(parents=True, exist_ok=True)
    with atomic_write(output / "structures.csv", "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["frame", "n_atoms", "energy_eV", "energy_uncertainty_eV", "energy_error_eV"]
        )
        for index, atoms in enumerate(frames):
            error = "" if errors is None else f"{errors[index]:.8g}"
            writer.writerow(
                [
                    index,
                    len(atoms),
                    f"{result.energy[index]:.10g}",
                    f"{result.energy_uncertainty[index]:.6g}",
                    error,
                ]
            )
    unit = "eV" if result.atom_quantity == "energy" else "eV_per_A"
    with atomic_write(output / "atoms.csv", "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "atom", "symbol", f"{result.atom_quantity}_uncertainty_{unit}"])
        for index, (atoms, values) in enumerate(zip(frames, result.atom_uncertainty)):
            for atom, (symbol, value) in enumerate(zip(atoms.get_chemical_symbols(), values)):
                writer.writerow([index, atom, symbol, f"{value:.6g}"])


def write_chemiscope(output: Path, estimator, model, frames, result, errors, layers) -> Path:
    """The layer of the estimator (the model's last hidden one for an
    ensemble) mapped per atom and coloured by the atoms' uncertainty
    (``layers``: that layer, already read for ``frames``)."""
    from ..export.chemiscope import export_chemiscope

    (layer,) = layers
    atom_name = f"atom {result.atom_quantity} uncertainty"
    structures = {
        "energy": result.energy,
        "energy uncertainty": result.energy_uncertainty,
        "energy uncertainty per atom": result.energy_uncertainty
        / np.array([len(a) for a in frames]),
    }
    if errors is not None:
        structures["|energy error|"] = np.abs(errors)
    return export_chemiscope(
        output / "uncertainty.chemiscope.json.gz",
        frames,
        layers=layers,
        atom_properties={atom_name: list(result.atom_uncertainty)},
        structure_properties=structures,
        units={
            "energy": "eV",
            "energy uncertainty": "eV",
            "energy uncertainty per atom": "eV",
            "|energy error|": "eV",
            atom_name: "eV" if result.atom_quantity == "energy" else "eV/Å",
        },
        species_maps=[layer] if model.per_species_coordinates else [],
        name=f"equilens uncertainty ({estimator.method})",
        description=f"{estimator.method} uncertainties of a {model.kind} model in layer {layer}",
        color=atom_name,
    )
