"""How well predicted uncertainties describe the errors they claim to.

An uncertainty ``sigma`` of a prediction is read as the standard deviation
of a Gaussian centred on the prediction. On frames with reference values
(errors ``e = predicted - reference``):

- :func:`fit_scale`: the factor ``alpha`` that maximises the Gaussian
  likelihood of the errors under ``alpha * sigma``, in closed form
  ``alpha^2 = mean(e^2 / sigma^2)`` (the calibration LLPR uses, Bigi et
  al., Mach. Learn.: Sci. Technol. 5, 045018, 2024);
- :func:`negative_log_likelihood`: the mean Gaussian NLL;
- :func:`miscalibration_area`: the area between the observed and the
  expected fraction of errors inside the central Gaussian intervals, over
  confidence levels 0 to 1 (Tran et al., Mach. Learn.: Sci. Technol. 1,
  025006, 2020): 0 for a perfect calibration, 0.5 at worst;
- :func:`rank_correlation`: Spearman's correlation between ``sigma`` and
  ``|e|``: whether the estimator orders the frames by their error, whatever
  its scale;
- :func:`binned_errors`: RMS of ``sigma`` against RMSE of ``e`` in bins of
  equal counts, the "predicted against observed error" plot of
  :func:`calibration_plot`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Mapping, Tuple, Union

import numpy as np
from scipy.special import erfinv
from scipy.stats import spearmanr

from ..errors import DataError

PathLike = Union[str, "os.PathLike[str]"]


def _checked(errors, sigma, positive: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    errors = np.asarray(errors, dtype=np.float64).ravel()
    sigma = np.asarray(sigma, dtype=np.float64).ravel()
    if errors.shape != sigma.shape or len(errors) == 0:
        raise DataError(
            f"calibration needs as many errors as uncertainties (got {len(errors)} and "
            f"{len(sigma)}), at least one"
        )
    if not (np.all(np.isfinite(errors)) and np.all(np.isfinite(sigma))):
        raise DataError("calibration: errors and uncertainties must be finite")
    if positive and np.any(sigma <= 0):
        raise DataError(
            f"calibration: {int(np.sum(sigma <= 0))} uncertainties are not positive "
            "(a structure identical to a training one has a zero latent distance)"
        )
    return errors, sigma


def fit_scale(errors, sigma) -> float:
    """The maximum-likelihood factor ``alpha`` of ``alpha * sigma``."""
    errors, sigma = _checked(errors, sigma)
    return float(np.sqrt(np.mean((errors / sigma) ** 2)))


def negative_log_likelihood(errors, sigma) -> float:
    """Mean Gaussian negative log-likelihood of ``errors`` under ``sigma``."""
    errors, sigma = _checked(errors, sigma)
    return float(np.mean(0.5 * np.log(2 * np.pi * sigma**2) + 0.5 * (errors / sigma) ** 2))


def coverage(errors, sigma, levels: np.ndarray) -> np.ndarray:
    """Observed fraction of ``|errors|`` inside the central Gaussian interval
    of each confidence level."""
    errors, sigma = _checked(errors, sigma)
    half_width = np.sqrt(2.0) * erfinv(np.asarray(levels))
    ratio = np.abs(errors) / sigma
    return np.mean(ratio[None, :] <= half_width[:, None], axis=1)


def miscalibration_area(errors, sigma, n_levels: int = 99) -> float:
    """Mean absolute difference between observed and expected coverage over
    ``n_levels`` confidence levels evenly spaced in (0, 1)."""
    levels = np.linspace(0, 1, n_levels + 2)[1:-1]
    return float(np.mean(np.abs(coverage(errors, sigma, levels) - levels)))


def rank_correlation(errors, sigma) -> float:
    """Spearman correlation between ``sigma`` and ``|errors|`` (NaN when
    ``sigma`` is constant)."""
    errors, sigma = _checked(errors, sigma, positive=False)
    if len(errors) < 3 or np.ptp(sigma) == 0:
        return float("nan")
    return float(spearmanr(sigma, np.abs(errors)).statistic)


def binned_errors(errors, sigma, n_bins: int = 8) -> Tuple[np.ndarray, np.ndarray]:
    """``(rms sigma, rmse)`` in ``n_bins`` bins of increasing ``sigma`` with
    equal counts (fewer bins for few values)."""
    errors, sigma = _checked(errors, sigma)
    order = np.argsort(sigma)
    bins = np.array_split(order, max(1, min(n_bins, len(order) // 3)))
    rms_sigma = np.array([np.sqrt(np.mean(sigma[b] ** 2)) for b in bins])
    rmse = np.array([np.sqrt(np.mean(errors[b] ** 2)) for b in bins])
    return rms_sigma, rmse


def calibration_metrics(errors, sigma) -> Dict[str, float]:
    """Every measure of this module for calibrated ``sigma`` (no refit):
    ``n``, ``rmse``, ``rms_sigma``, ``nll``, ``miscalibration_area``,
    ``spearman``, ``z_rms`` (RMS of ``e / sigma``, 1 when calibrated)."""
    errors, sigma = _checked(errors, sigma)
    return {
        "n": len(errors),
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "rms_sigma": float(np.sqrt(np.mean(sigma**2))),
        "nll": negative_log_likelihood(errors, sigma),
        "miscalibration_area": miscalibration_area(errors, sigma),
        "spearman": rank_correlation(errors, sigma),
        "z_rms": float(np.sqrt(np.mean((errors / sigma) ** 2))),
    }


def calibration_plot(
    sets: Mapping[str, Tuple[np.ndarray, np.ndarray]],
    path: PathLike,
    title: str = "",
    unit: str = "eV",
) -> Path:
    """Two panels for each ``{label: (errors, sigma)}``: observed RMSE
    against predicted RMS uncertainty in bins (log scales, the diagonal is a
    perfect calibration), and observed against expected coverage of the
    Gaussian intervals (with the miscalibration area in the legend)."""
    from ..figures import pyplot, save_figure

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4))
    left.set_xscale("log")
    left.set_yscale("log")
    levels = np.linspace(0, 1, 41)
    extremes = []
    for label, (errors, sigma) in sets.items():
        rms_sigma, rmse = binned_errors(errors, sigma)
        metrics = calibration_metrics(errors, sigma)
        (line,) = left.plot(
            rms_sigma,
            rmse,
            "o-",
            label=f"{label} (n={metrics['n']}, Spearman {metrics['spearman']:.2f})",
        )
        extremes.extend([rms_sigma.min(), rms_sigma.max(), rmse.min(), rmse.max()])
        right.plot(
            levels,
            coverage(errors, sigma, levels),
            color=line.get_color(),
            label=f"{label} (area {metrics['miscalibration_area']:.3f})",
        )
    low, high = min(extremes), max(extremes)
    left.plot([low, high], [low, high], color="black", lw=0.8, ls="--", label="calibrated")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis in (left.xaxis, left.yaxis):
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(NullFormatter())
    left.set_xlabel(f"predicted uncertainty, RMS in bin ({unit})")
    left.set_ylabel(f"observed error, RMSE in bin ({unit})")
    left.legend(fontsize=7)
    right.plot([0, 1], [0, 1], color="black", lw=0.8, ls="--", label="calibrated")
    right.set_xlabel("expected fraction inside the interval")
    right.set_ylabel("observed fraction inside the interval")
    right.set_xlim(0, 1)
    right.set_ylim(0, 1)
    right.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
