"""Training: one loop, one configuration shape, two tasks.

- :func:`train` runs a task from its configuration; :func:`load_run_config`
  reads a YAML file (or a built-in name) whose ``task`` is ``potential``
  (:class:`~equilens.training.potential.PotentialConfig`, a BPNN on energies
  and forces) or ``tensor`` (:class:`~equilens.training.tensor.TensorConfig`,
  an equivariant network on a tensorial target);
- :func:`~equilens.training.loop.fit` is the loop both use (schedules, early
  stopping, atomic checkpoints, exact resume);
- every task writes ``model.pt``, ``metrics.json``
  (:func:`~equilens.training.run.run_summary`), ``log.csv``,
  ``checkpoint.pt``, ``run.json`` and plots.
"""

from .config import claim_output, load_run_config, run_fingerprint, with_overrides
from .loop import FitResult, TrainConfig, fit
from .run import headline, run_summary, train

__all__ = [
    "FitResult",
    "TrainConfig",
    "claim_output",
    "fit",
    "headline",
    "load_run_config",
    "run_fingerprint",
    "run_summary",
    "train",
    "with_overrides",
]
