"""Error metrics in the units people report.

- potentials: energies per atom in meV/atom and force components in eV/Å
  (:func:`energy_force_metrics`);
- tensorial targets (:func:`tensor_metrics`): for every block the RMSE over
  all its entries and the RMSE relative to the reference's standard deviation
  (``sqrt`` of the mean over entries of the variance over samples); pooled
  over blocks the same two numbers over every entry. A per-structure
  polarizability (blocks ``lambda = 0`` and ``2`` of one property) is also
  scored as the Cartesian 3 x 3 tensor, the figure people quote; a
  per-structure dipole's spherical components are a permutation of its
  Cartesian ones, so its pooled figures are the Cartesian ones.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from ase.data import chemical_symbols

from ..so3 import spherical_to_symmetric_tensor

Key = Tuple[int, ...]


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


def _name(key: Key) -> str:
    return "_".join(str(v) for v in key)


def relative_rmse(predicted: np.ndarray, reference: np.ndarray) -> Tuple[float, float]:
    """``(RMSE, RMSE / std)`` over all entries; the standard deviation is over
    samples (axis 0) per entry, pooled over entries."""
    error = np.asarray(predicted) - np.asarray(reference)
    rmse = float(np.sqrt(np.mean(error**2)))
    spread = float(np.sqrt(np.mean(np.var(reference, axis=0))))
    return rmse, rmse / spread if spread > 0 else float("inf")


def tensor_metrics(
    predictions: Mapping[Key, np.ndarray], references: Mapping[Key, np.ndarray]
) -> Dict[str, float]:
    """Per-block and pooled RMSE and relative RMSE (see the module docstring)."""
    result: Dict[str, float] = {}
    squared, spread, count = 0.0, 0.0, 0
    for key, reference in references.items():
        predicted = np.asarray(predictions[key])
        rmse, relative = relative_rmse(predicted, reference)
        result[f"rmse_{_name(key)}"] = rmse
        result[f"relative_rmse_{_name(key)}"] = relative
        squared += float(np.sum((predicted - reference) ** 2))
        spread += float(np.sum(np.var(reference, axis=0))) * len(reference)
        count += reference.size
    result["rmse"] = float(np.sqrt(squared / count))
    result["relative_rmse"] = float(np.sqrt(squared / spread)) if spread > 0 else float("inf")
    keys = set(references)
    if keys == {(0, 1), (2, 1)} and references[(0, 1)].shape[-1] == 1:
        cartesian = [
            spherical_to_symmetric_tensor(values[(0, 1)][:, :, 0], values[(2, 1)][:, :, 0])
            for values in (predictions, references)
        ]
        rmse, relative = relative_rmse(cartesian[0], cartesian[1])
        result["cartesian_rmse"] = rmse
        result["cartesian_relative_rmse"] = relative
    return result
