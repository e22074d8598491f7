"""What the latent space knows it does not know: uncertainty estimators,
their calibration, and the curation they drive.

- :mod:`~equilens.uncertainty.estimators`: :class:`LLPR` (last-layer
  prediction rigidity), :class:`LatentDistance` (k nearest training atoms
  in any layer), and :mod:`~equilens.uncertainty.ensemble`:
  :class:`Ensemble` (spread of several models); each
  ``fit`` on the training frames, ``calibrate`` on held-out frames (one
  scale factor by likelihood), ``predict`` and ``evaluate``;
- :mod:`~equilens.uncertainty.calibration`: miscalibration area, negative
  log-likelihood, rank correlation, calibration plots;
- :mod:`~equilens.uncertainty.selection`: pick structures of a pool by
  uncertainty or by farthest-point sampling in a layer;
- :mod:`~equilens.uncertainty.calculator`: an ASE calculator returning
  uncertainties with energies and forces;
- :mod:`~equilens.uncertainty.forces`: LLPR uncertainties of the forces,
  through autograd of the family's torch module;
- :mod:`~equilens.uncertainty.features`: a layer as rows of one matrix.
"""

from __future__ import annotations

from .calculator import UncertaintyCalculator
from .calibration import calibration_metrics, calibration_plot, fit_scale
from .ensemble import Ensemble
from .estimators import (
    LLPR,
    LatentDistance,
    Uncertainties,
    UncertaintyEstimator,
    reference_energies,
)
from .methods import METHODS, make_estimator
from .selection import select_by_uncertainty, select_by_variance_reduction, select_farthest

__all__ = [
    "LLPR",
    "METHODS",
    "Ensemble",
    "LatentDistance",
    "Uncertainties",
    "UncertaintyCalculator",
    "UncertaintyEstimator",
    "calibration_metrics",
    "calibration_plot",
    "fit_scale",
    "make_estimator",
    "reference_energies",
    "select_by_uncertainty",
    "select_by_variance_reduction",
    "select_farthest",
]
