"""The summary every training task writes, and its headline figures.

Every task (:func:`equilens.models.train` runs one) writes the same files into
its output folder:

- ``model.pt``: the trained model (:func:`equilens.models.load` reads it);
- ``metrics.json``: :func:`run_summary`: ``task``, ``name``, ``best_epoch``,
  ``epochs_run``, ``stopped_early``, ``seconds``, ``seconds_per_epoch``,
  ``timings``, ``n_frames`` per split, ``metrics`` per split and
  ``baselines`` (per baseline, per split);
- ``log.csv``: one row per epoch;
- ``checkpoint.pt``: to resume an interrupted run (rerun the same command);
- ``run.json``: the fingerprint of the run that owns the folder;
- ``parity_<split>.png``, ``learning_curve.png``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import numpy as np

from .loop import FitResult


def run_summary(
    config,
    result: FitResult,
    timings: Dict[str, float],
    splits: Mapping[str, Any],
    metrics: Dict[str, Dict[str, float]],
    baselines: Optional[Dict[str, Dict[str, Dict[str, float]]]] = None,
    **extra: Any,
) -> Dict[str, Any]:
    """The content of ``metrics.json``, the same for every task.

    :param splits: ``{split: frames or indices}`` (only the sizes are kept)
    """
    epochs = max(1, len(result.history))
    return {
        "task": config.task,
        "name": config.name,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "seconds": float(sum(timings.values())),
        "seconds_per_epoch": result.seconds / epochs,
        "timings": dict(timings),
        "n_frames": {name: int(len(value)) for name, value in splits.items()},
        "metrics": metrics,
        "baselines": baselines or {},
        **extra,
    }


#: the figures people quote, in print order: (metrics key, label, format)
HEADLINE = (
    ("energy_rmse_meV_per_atom", "energy RMSE", "{:.2f} meV/atom"),
    ("force_rmse_eV_per_A", "force RMSE", "{:.3f} eV/A"),
    ("relative_rmse", "RMSE / std", "{:.4f}"),
    ("cartesian_relative_rmse", "Cartesian RMSE / std", "{:.4f}"),
    ("overlap_percent_rmse", "overlap %RMSE", "{:.2f}"),
)


def headline(metrics: Dict[str, float]) -> str:
    """The figures people quote from one split's ``metrics``, as one line."""
    parts = []
    for key, label, form in HEADLINE:
        if key in metrics and np.isfinite(metrics[key]):
            parts.append(f"{label} {form.format(metrics[key])}")
    return "   ".join(parts)
