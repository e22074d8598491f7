"""Relaxation benchmark: models against a reference level of theory.

``equilens relax CONFIG.yaml`` (:func:`~equilens.relax.run.run_relax`) relaxes
reference minima rattled around themselves (in distribution) and parent
crystals (out of distribution) with every calculator of the configuration
and scores the results against the reference minima: RMSD, reference energy
above the minimum, steps, convergence, time per step.
"""

from __future__ import annotations

from .._lazy import lazy_getattr

__all__ = ["RelaxConfig", "run_relax"]

_LAZY = {"RelaxConfig": "config", "run_relax": "run"}

__getattr__ = lazy_getattr(__name__, _LAZY)
