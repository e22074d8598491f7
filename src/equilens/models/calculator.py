"""ASE calculator of an equilens :class:`~equilens.models.potential.Potential`."""

from __future__ import annotations

from typing import List

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from .potential import Potential, energy_and_forces


class EquilensCalculator(Calculator):
    """ASE calculator for a :class:`Potential`: energy, forces and atomic energies."""

    implemented_properties = ["energy", "free_energy", "forces", "energies"]

    def __init__(self, potential: Potential, **kwargs):
        super().__init__(**kwargs)
        self.potential = potential

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.potential.check_species([self.atoms], where="ASE atoms")
        features = self.potential.featurize([self.atoms], gradients=True)
        self.potential.model.eval()
        atomic: List[torch.Tensor] = []
        energy, forces = energy_and_forces(
            self.potential.model, features, forces=True, atomic=atomic
        )
        total = float(energy.detach()[0])
        self.results = {
            "energy": total,
            "free_energy": total,
            "forces": forces.detach().numpy().astype(np.float64),
            "energies": atomic[0].detach().numpy().astype(np.float64),
        }
