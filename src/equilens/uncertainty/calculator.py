"""An ASE calculator that returns uncertainties with its results.

:class:`UncertaintyCalculator` wraps a calibrated estimator: the energy,
forces (and stress, where the model's own calculator gives it) come from
the model (from the ensemble's mean for an :class:`~equilens.uncertainty.Ensemble`),
and ``results`` gain

- ``energy_uncertainty``: the calibrated uncertainty of the energy (eV);
- ``energies_uncertainty``: per atom, the uncertainty of its energy
  contribution (eV; LLPR and latent distance);
- ``forces_uncertainty``: per atom, the RMS over x, y, z of the uncertainty
  of its force (eV/Å): the spread for an ensemble; for LLPR, through the
  gradients of the layer (:mod:`~equilens.uncertainty.forces`, about as
  many backward passes as the layer has columns: ``forces=False`` skips it).

Read them with ``atoms.calc.results["energy_uncertainty"]`` after
``atoms.get_potential_energy()``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .ensemble import Ensemble
from .estimators import LLPR, UncertaintyEstimator
from .forces import llpr_force_uncertainty


class UncertaintyCalculator(Calculator):
    """ASE calculator of a model with its uncertainties.

    :param estimator: a fitted (and calibrated) estimator
    :param calculator: the calculator of the predictions (default: the
        model's own; the ensemble's mean for an ensemble)
    :param forces: also the LLPR uncertainty of the forces
    :param force_projections: estimate the LLPR force uncertainty from this
        many random projections (:func:`~equilens.uncertainty.forces.llpr_force_uncertainty`)
        instead of one backward pass per column of the layer
    """

    def __init__(
        self,
        estimator: UncertaintyEstimator,
        calculator: Optional[Calculator] = None,
        forces: bool = True,
        force_projections: Optional[int] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.estimator = estimator
        self.force_projections = force_projections
        self.llpr_forces = forces and isinstance(estimator, LLPR)
        if calculator is None and not isinstance(estimator, Ensemble):
            calculator = estimator.model.calculator()  # type: ignore[attr-defined]
        self.calculator = calculator
        base = calculator.implemented_properties if calculator is not None else []
        per_atom = "energies" if estimator.atom_quantity == "energy" else "forces"
        self.implemented_properties = sorted(
            {"energy", "free_energy", "forces", *base}
            | {"energy_uncertainty", f"{per_atom}_uncertainty"}
            | ({"forces_uncertainty"} if self.llpr_forces else set())
        )

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        wanted = [p for p in properties if not p.endswith("_uncertainty")] or ["energy"]
        result = self.estimator.predict([self.atoms], forces=self.calculator is None)
        if self.calculator is not None:
            self.calculator.calculate(self.atoms.copy(), wanted, all_changes)
            results = dict(self.calculator.results)
        else:
            energy = float(result.energy[0])
            results = {"energy": energy, "free_energy": energy}
            if result.forces is not None:
                results["forces"] = np.asarray(result.forces[0])
        per_atom = "energies" if result.atom_quantity == "energy" else "forces"
        results["energy_uncertainty"] = float(result.energy_uncertainty[0])
        results[f"{per_atom}_uncertainty"] = np.asarray(result.atom_uncertainty[0])
        if self.llpr_forces:
            components = llpr_force_uncertainty(
                self.estimator, self.atoms, projections=self.force_projections
            )
            results["forces_uncertainty"] = np.sqrt(np.mean(components**2, axis=1))
        self.results = results
