"""Error metrics in the units people report: meV/atom and eV/Å."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
from ase.data import chemical_symbols


def energy_force_metrics(
    energy_pred: np.ndarray,
    energy_ref: np.ndarray,
    n_atoms: np.ndarray,
    forces_pred: Optional[np.ndarray] = None,
    forces_ref: Optional[np.ndarray] = None,
    numbers: Optional[np.ndarray] = None,
) -> Dict[str, float]:
    """RMSE and MAE of energies per atom (meV/atom) and force components (eV/Å).

    :param energy_pred: predicted total energies (eV), one per frame
    :param energy_ref: reference total energies (eV)
    :param n_atoms: atoms per frame
    :param forces_pred: predicted forces of all atoms stacked, ``(N, 3)``
    :param forces_ref: reference forces, same shape
    :param numbers: atomic number of each stacked atom, for per-species force
        RMSE (``force_rmse_<symbol>``)
    """
    error = 1000.0 * (np.asarray(energy_pred) - np.asarray(energy_ref)) / np.asarray(n_atoms)
    result = {
        "energy_rmse_meV_per_atom": float(np.sqrt(np.mean(error**2))),
        "energy_mae_meV_per_atom": float(np.mean(np.abs(error))),
        "n_frames": int(len(error)),
    }
    if forces_pred is not None and forces_ref is not None:
        delta = np.asarray(forces_pred) - np.asarray(forces_ref)
        result["force_rmse_eV_per_A"] = float(np.sqrt(np.mean(delta**2)))
        result["force_mae_eV_per_A"] = float(np.mean(np.abs(delta)))
        if numbers is not None:
            for z in np.unique(numbers):
                mask = numbers == z
                result[f"force_rmse_{chemical_symbols[z]}_eV_per_A"] = float(
                    np.sqrt(np.mean(delta[mask] ** 2))
                )
    return result


def composition_matrix(
    numbers_per_frame: Sequence[np.ndarray], species: Sequence[int]
) -> np.ndarray:
    """Counts of each species in each frame, ``(n_frames, n_species)``."""
    species = list(species)
    out = np.zeros((len(numbers_per_frame), len(species)))
    for row, numbers in enumerate(numbers_per_frame):
        for column, z in enumerate(species):
            out[row, column] = np.count_nonzero(np.asarray(numbers) == z)
    return out
