"""Training machinery shared by every model family: one loop, one
configuration shape, the files every run writes.

- :func:`~equilens.training.loop.fit` is the loop every family's task uses
  (schedules, early stopping, atomic checkpoints, exact resume);
- :mod:`~equilens.training.config`: command-line overrides, the run
  fingerprint and the claim on an output folder;
- every task writes ``model.pt``, ``metrics.json``
  (:func:`~equilens.training.run.run_summary`), ``log.csv``,
  ``checkpoint.pt``, ``run.json`` and the plots of
  :mod:`~equilens.training.plots`;
- :mod:`~equilens.training.metrics`: energy, force and tensor errors.

The tasks themselves live with their families (``equilens.models.<family>.task``);
:func:`equilens.models.train` runs any of them from its configuration.
"""

from .config import claim_output, run_fingerprint, with_overrides
from .loop import FitResult, TrainConfig, fit
from .run import headline, run_summary

__all__ = [
    "FitResult",
    "TrainConfig",
    "claim_output",
    "fit",
    "headline",
    "run_fingerprint",
    "run_summary",
    "with_overrides",
]
