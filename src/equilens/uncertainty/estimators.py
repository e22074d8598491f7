"""Uncertainty estimators over any model of the equilens protocol.

Every estimator follows one shape: ``fit(train_frames)`` learns what the
model saw, ``calibrate(frames, energies)`` fits one scale factor by
likelihood on held-out frames with reference energies
(:func:`~equilens.uncertainty.calibration.fit_scale`), and
``predict(frames)`` returns the model's energies with calibrated
uncertainties (:class:`Uncertainties`); ``evaluate(frames, energies)``
scores them (:func:`~equilens.uncertainty.calibration.calibration_metrics`).

- :class:`LLPR`: last-layer prediction rigidity (Bigi, Chong, Ceriotti,
  Grasselli, Mach. Learn.: Sci. Technol. 5, 045018, 2024). With ``f`` the
  sum over a structure's atoms of a layer's rows
  (:class:`~equilens.uncertainty.features.LayerLayout`), ``F`` those of the
  training structures and ``C = F^T F``, the variance is
  ``alpha^2 f^T (C + s I)^-1 f``; ``s`` (relative to the mean eigenvalue)
  and ``alpha`` are chosen on the calibration frames by likelihood. Per
  atom, the same form of each atom's row. Exact for a readout linear in the
  layer (the last hidden layer of a per-species network); for another
  layer it is the rigidity of a linear model on that layer.
- :class:`LatentDistance`: distance of each atom, in a layer's space, to
  its ``k`` nearest training atoms of the same species, in units of the
  median such distance between training atoms; a structure's uncertainty is
  ``alpha sqrt(sum_i d_i^2)`` (independent atomic errors scaling with
  distance).
- :class:`~equilens.uncertainty.ensemble.Ensemble`: the spread (standard
  deviation) of the energies and forces of several models (the study's
  seeds or any list), around their mean, which is the ensemble's prediction.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import ase
import numpy as np
from metatensor import TensorMap

from ..errors import DataError, ModelError
from ..models.base import energies_and_forces
from .calibration import (
    calibration_metrics,
    fit_scale,
    negative_log_likelihood,
    rank_correlation,
)
from .features import AtomRows, LayerLayout, check_layer, layer_tensors


@dataclass
class Uncertainties:
    """Predictions of a model with their calibrated uncertainties.

    :param energy: predicted total energies (eV), one per frame
    :param energy_uncertainty: their uncertainties (eV)
    :param atom_uncertainty: per frame, one value per atom: the
        uncertainty of the atom's energy contribution (eV; LLPR, latent
        distance) or of its force (eV/Å, RMS over x, y, z; ensemble)
    :param atom_quantity: ``"energy"`` or ``"forces"``: what
        ``atom_uncertainty`` is the uncertainty of
    :param forces: predicted forces per frame (eV/Å) when asked
    """

    energy: np.ndarray
    energy_uncertainty: np.ndarray
    atom_uncertainty: List[np.ndarray]
    atom_quantity: str
    forces: Optional[List[np.ndarray]] = None


def reference_energies(frames: Sequence[ase.Atoms], where: str = "frames") -> np.ndarray:
    """The reference energy of every frame; a :class:`DataError` names the
    first frame without one."""
    energies = []
    for index, atoms in enumerate(frames):
        try:
            energies.append(float(atoms.get_potential_energy()))
        except Exception:
            raise DataError(
                f"{where}: frame {index} has no reference energy; calibration and "
                "evaluation need frames with energies"
            ) from None
    return np.array(energies)


class UncertaintyEstimator(abc.ABC):
    """What every estimator provides: ``fit``, ``calibrate``, ``predict``,
    ``evaluate``; ``scale`` is 1 until :meth:`calibrate`."""

    #: the name of the method on the command line
    method: ClassVar[str] = ""
    #: what the per-atom uncertainty is the uncertainty of
    atom_quantity: ClassVar[str] = "energy"

    def __init__(self) -> None:
        self.scale = 1.0
        self.calibration: Dict[str, float] = {}

    @abc.abstractmethod
    def fit(self, frames: Sequence[ase.Atoms], **computed: Any) -> UncertaintyEstimator:
        """Learn from the training frames of the model."""

    @abc.abstractmethod
    def raw(
        self, frames: Sequence[ase.Atoms], forces: bool = False, **computed: Any
    ) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray], Optional[List[np.ndarray]]]:
        """``(energies, uncalibrated sigma, per-atom sigma, forces or None)``;
        ``computed`` may hold what was already evaluated for ``frames``
        (``layers``, ``predictions``: see :func:`evaluated`)."""

    def calibrate(
        self, frames: Sequence[ase.Atoms], energies: Optional[np.ndarray] = None, **computed: Any
    ) -> UncertaintyEstimator:
        """Fit ``scale`` on ``frames`` with reference ``energies`` (default:
        those the frames carry)."""
        reference = self._reference(frames, energies, "calibration frames")
        predicted, sigma, _, _ = self.raw(frames, **computed)
        errors = predicted - reference
        self.scale = fit_scale(errors, sigma)
        self.calibration = calibration_metrics(errors, self.scale * sigma)
        return self

    def predict(
        self, frames: Sequence[ase.Atoms], forces: bool = False, **computed: Any
    ) -> Uncertainties:
        """Energies (and forces) of the model with calibrated uncertainties."""
        energy, sigma, atoms, predicted_forces = self.raw(frames, forces, **computed)
        return Uncertainties(
            energy,
            self.scale * sigma,
            [self.scale * values for values in atoms],
            self.atom_quantity,
            predicted_forces,
        )

    def evaluate(
        self,
        frames: Sequence[ase.Atoms],
        energies: Optional[np.ndarray] = None,
        forces: Optional[Sequence[np.ndarray]] = None,
        **computed: Any,
    ) -> Dict[str, float]:
        """:func:`score` of the predictions for ``frames``."""
        reference = self._reference(frames, energies, "evaluation frames")
        return score(self.predict(frames, forces is not None, **computed), reference, forces)

    @staticmethod
    def _reference(frames, energies, where: str) -> np.ndarray:
        if energies is None:
            return reference_energies(frames, where)
        energies = np.asarray(energies, dtype=np.float64).ravel()
        if len(energies) != len(frames):
            raise DataError(f"{where}: {len(energies)} energies for {len(frames)} frames")
        return energies


def score(
    result: Uncertainties, energies: np.ndarray, forces: Optional[Sequence[np.ndarray]] = None
) -> Dict[str, float]:
    """:func:`~equilens.uncertainty.calibration.calibration_metrics` of the
    energies of ``result`` against the reference ``energies``; with reference
    ``forces`` (and predicted ones in ``result``), also the rank correlation
    between each atom's uncertainty and the norm of its force error
    (``atom_spearman``)."""
    metrics = calibration_metrics(result.energy - energies, result.energy_uncertainty)
    if forces is not None and result.forces is not None:
        error = np.concatenate(
            [np.linalg.norm(p - r, axis=1) for p, r in zip(result.forces, forces)]
        )
        metrics["atom_spearman"] = rank_correlation(
            error, np.maximum(np.concatenate(result.atom_uncertainty), 1e-300)
        )
    return metrics


def evaluated(
    model, frames: Sequence[ase.Atoms], layers: Sequence[str], forces: bool, predictions=None
) -> dict:
    """What the layer estimators of ``model`` need for ``frames``, computed
    once for all of them: ``{"layers": ..., "predictions": (energies, forces)}``
    to pass as keyword arguments to ``fit``, ``calibrate``, ``predict``
    (``predictions``: the model's already, when the caller has them)."""
    return {
        "layers": layer_tensors(model, frames, layers),
        "predictions": _predictions(model, frames, forces, predictions),
    }


def _predictions(model, frames, forces: bool, predictions=None):
    if predictions is not None and (predictions[1] is not None or not forces):
        return predictions
    outputs = ["energy", "forces"] if forces else ["energy"]
    return energies_and_forces(model.predict(frames, outputs))


class _LayerEstimator(UncertaintyEstimator):
    """An estimator that works in the space of one layer of one model."""

    def __init__(self, model, layer: Optional[str] = None, batch_size: int = 50) -> None:
        super().__init__()
        if "energy" not in model.outputs:
            raise ModelError(
                f"uncertainties are of energies; this {model.kind} model predicts "
                f"{', '.join(model.outputs)}"
            )
        self.model = model
        self.layer = check_layer(model, layer)
        self.batch_size = batch_size
        self.layout: Optional[LayerLayout] = None

    def rows(self, frames: Sequence[ase.Atoms], layers: Optional[Dict[str, TensorMap]] = None):
        """The rows of :attr:`layer` for ``frames`` (``layers``: already
        computed with :func:`~equilens.uncertainty.features.layer_tensors`)."""
        if layers is None:
            layers = layer_tensors(self.model, frames, [self.layer], self.batch_size)
        tensor = layers[self.layer]
        if self.layout is None:
            self.layout = LayerLayout.of(self.model, self.layer, tensor)
        return self.layout.rows(tensor, frames)

    def raw(self, frames, forces=False, layers=None, predictions=None):
        rows = self.rows(frames, layers)
        energies, predicted_forces = _predictions(self.model, frames, forces, predictions)
        predicted_forces = predicted_forces if forces else None
        sigma, atoms = self.spread(rows)
        return energies, sigma, rows.per_frame(atoms), predicted_forces

    @abc.abstractmethod
    def spread(self, rows: AtomRows) -> Tuple[np.ndarray, np.ndarray]:
        """Uncalibrated ``(sigma per structure, sigma per atom)``."""


#: the candidate regularizers of :class:`LLPR`, relative to the mean eigenvalue
REGULARIZERS = tuple(10.0**power for power in range(-10, 1))


class LLPR(_LayerEstimator):
    """Last-layer prediction rigidity (see the module's description).

    :param model: a potential of the protocol
    :param layer: the layer (default: the last hidden one)
    :param regularizers: the candidate ``s / mean eigenvalue`` of ``C``;
        :meth:`calibrate` keeps the one of lowest likelihood loss
    """

    method = "llpr"

    def __init__(
        self,
        model,
        layer: Optional[str] = None,
        batch_size: int = 50,
        regularizers: Sequence[float] = REGULARIZERS,
    ) -> None:
        super().__init__(model, layer, batch_size)
        self.regularizers = tuple(regularizers)
        #: used until :meth:`calibrate` chooses one
        self.regularizer = 1e-6
        self.eigenvalues: Optional[np.ndarray] = None
        self.eigenvectors: Optional[np.ndarray] = None

    def fit(self, frames, layers=None, predictions=None):
        sums = self.rows(frames, layers).structure_sums()
        eigenvalues, self.eigenvectors = np.linalg.eigh(sums.T @ sums)
        self.eigenvalues = np.clip(eigenvalues, 0.0, None)
        return self

    def _variances(self, rows: np.ndarray, regularizer: float) -> np.ndarray:
        if self.eigenvalues is None:
            raise ModelError("LLPR: call fit(training frames) first")
        shift = regularizer * max(float(self.eigenvalues.mean()), 1e-300)
        projected = rows @ self.eigenvectors
        return np.sum(projected**2 / (self.eigenvalues + shift), axis=1)

    def spread(self, rows):
        structures = np.sqrt(self._variances(rows.structure_sums(), self.regularizer))
        return structures, np.sqrt(self._variances(rows.values, self.regularizer))

    def calibrate(self, frames, energies=None, layers=None, predictions=None):
        reference = self._reference(frames, energies, "calibration frames")
        rows = self.rows(frames, layers)
        errors = _predictions(self.model, frames, False, predictions)[0] - reference
        sums = rows.structure_sums()
        best = None
        for regularizer in self.regularizers:
            sigma = np.sqrt(self._variances(sums, regularizer))
            scale = fit_scale(errors, sigma)
            loss = negative_log_likelihood(errors, scale * sigma)
            if best is None or loss < best[0]:
                best = (loss, regularizer, scale, sigma)
        assert best is not None
        _, self.regularizer, self.scale, sigma = best
        self.calibration = calibration_metrics(errors, self.scale * sigma)
        return self


class LatentDistance(_LayerEstimator):
    """Distance to the training atoms in one layer (see the module's description).

    :param model: a potential of the protocol
    :param layer: the layer (default: the last hidden one)
    :param neighbours: ``k``, the number of nearest training atoms averaged
    :param reference_atoms: at most this many training atoms per species
        set the unit distance (seeded subset)
    """

    method = "distance"

    def __init__(
        self,
        model,
        layer: Optional[str] = None,
        batch_size: int = 50,
        neighbours: int = 5,
        reference_atoms: int = 2000,
    ) -> None:
        super().__init__(model, layer, batch_size)
        if neighbours < 1:
            raise ModelError(f"neighbours must be at least 1, got {neighbours}")
        self.neighbours = neighbours
        self.reference_atoms = reference_atoms
        self.searches: Dict[int, Any] = {}
        self.units: Dict[int, float] = {}

    def _columns(self, species: int) -> slice:
        assert self.layout is not None
        start = self.layout.offset(species)
        return slice(start, start + self.layout.widths[self.layout.species.index(species)])

    def fit(self, frames, layers=None, predictions=None):
        from sklearn.neighbors import NearestNeighbors

        rows = self.rows(frames, layers)
        rng = np.random.default_rng(0)
        for species in np.unique(rows.center_type):
            values = rows.values[rows.center_type == species][:, self._columns(int(species))]
            k = min(self.neighbours, len(values) - 1)
            if k < 1:
                raise DataError(
                    f"latent distance: the training frames have {len(values)} atom(s) of "
                    f"species {int(species)}; at least 2 are needed"
                )
            search = NearestNeighbors(n_neighbors=k).fit(values)
            subset = rng.permutation(len(values))[: self.reference_atoms]
            distances, _ = search.kneighbors(values[subset], n_neighbors=k + 1)
            unit = float(np.median(distances[:, 1:].mean(axis=1)))
            self.searches[int(species)] = search
            self.units[int(species)] = unit if unit > 0 else 1.0
        return self

    def atom_distances(self, rows: AtomRows) -> np.ndarray:
        """Each atom's mean distance to its nearest training atoms, in units."""
        distances = np.zeros(len(rows.values))
        for species in np.unique(rows.center_type):
            search = self.searches.get(int(species))
            if search is None:
                raise DataError(
                    f"latent distance: no training atom of species {int(species)}; fit on "
                    "frames that contain it"
                )
            mask = rows.center_type == species
            found, _ = search.kneighbors(rows.values[mask][:, self._columns(int(species))])
            distances[mask] = found.mean(axis=1) / self.units[int(species)]
        return distances

    def spread(self, rows):
        atoms = self.atom_distances(rows)
        structures = np.zeros(rows.n_frames)
        np.add.at(structures, rows.system, atoms**2)
        return np.sqrt(structures), atoms
