"""The loss of the potential families (the ``loss:`` section)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LossConfig:
    """Weights of the energy and force terms (the ``loss:`` section).

    Each term is a mean squared error divided by the variance of its target
    in the training set (per-atom energies after the baseline, force
    components), so the weights are comparable.

    :param energy_weight: weight of the per-atom energy term
    :param force_weight: weight of the force term
    """

    energy_weight: float = 1.0
    force_weight: float = 1.0
