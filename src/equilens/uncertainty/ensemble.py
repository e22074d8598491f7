"""The spread of several models' predictions as their uncertainty."""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ..errors import ModelError
from ..models.energy.model import Prediction, predict_shared
from .estimators import UncertaintyEstimator


class Ensemble(UncertaintyEstimator):
    """The spread of several models' predictions.

    :param models: two or more potentials of the protocol
    """

    method = "ensemble"
    atom_quantity = "forces"

    def __init__(self, models: Sequence) -> None:
        super().__init__()
        if len(models) < 2:
            raise ModelError(f"an ensemble needs at least 2 models, got {len(models)}")
        for model in models:
            if "energy" not in model.outputs:
                raise ModelError(f"ensemble: a {model.kind} model predicts no energy")
        self.models = list(models)

    def fit(self, frames=None, **computed):
        """Nothing to learn: the members are trained."""
        return self

    def members(self, frames) -> List[Prediction]:
        """Every member's ``(energies, forces per frame or None)`` for
        ``frames``: forces from the members that predict them; members that
        featurize alike (the seeds of one configuration) share their features."""
        models = {str(i): model for i, model in enumerate(self.models)}
        return list(predict_shared(models, frames).values())

    def raw(self, frames, forces=False, **computed):
        return self.combine(self.members(frames), frames, forces)

    @staticmethod
    def combine(results: Sequence[Prediction], frames, forces: bool = False):
        """The committee's ``raw`` from its members' predictions
        (:meth:`members`): the mean energy, its spread, each atom's force
        spread, and the mean forces when ``forces``."""
        energies = np.array([energy for energy, _ in results])
        counts = [len(atoms) for atoms in frames]
        if any(f is None for _, f in results):
            atoms = [np.zeros(n) for n in counts]
            mean_forces = None
        else:
            stacked = [np.stack([f[i] for _, f in results]) for i in range(len(frames))]
            atoms = [np.sqrt(np.mean(np.var(s, axis=0, ddof=1), axis=1)) for s in stacked]
            mean_forces = [s.mean(axis=0) for s in stacked]
        return (
            energies.mean(axis=0),
            energies.std(axis=0, ddof=1),
            atoms,
            mean_forces if forces else None,
        )
