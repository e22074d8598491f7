"""ASE calculator of any equilens potential whose module follows metatomic's interface.

Energy, forces, stress and atomic energies come from one forward pass of the
family's torch module (e.g. :class:`~equilens.models.bpnn.module.BPNNModule`:
SOAP with featomic-torch inside) and one backward pass: the forces are minus the
gradient of the energy with respect to the positions, the stress the
gradient with respect to a strain applied to positions and cell, divided by
the volume. It is the code path of the exported metatomic model, in float64
by default.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress


class EquilensCalculator(Calculator):
    """ASE calculator of a potential: ``energy``, ``forces``, ``stress``
    (periodic cells) and ``energies`` (per atom).

    :param model: the equilens model (checks the elements of each structure)
    :param module: its torch module in ``dtype`` (metatomic's interface, an
        ``energy`` output per atom)
    :param dtype: precision of the evaluation (``torch.float64`` by default,
        whatever the training precision)
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, model, module, dtype: torch.dtype = torch.float64, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.dtype = dtype
        self.module = module
        self._neighbors: Optional[list] = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.model.check_species([self.atoms], where="ASE atoms")
        periodic = bool(np.all(self.atoms.pbc))
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError(
                "stress needs a cell periodic in all three directions"
            )
        results = evaluate(self.module, self.atoms, self.dtype, stress=periodic, cache=self)
        self.results = results

    def neighbor_calculators(self, system):
        """vesin's neighbor-list calculators for the module (made once)."""
        if self._neighbors is None:
            from vesin.metatomic import neighbor_lists_for_model

            self._neighbors = neighbor_lists_for_model(
                "angstrom", self.module, model_length_unit="angstrom"
            )
        return self._neighbors


def module_device(module) -> torch.device:
    """The device of ``module``'s parameters and buffers (CPU when it has none)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device
    return torch.device("cpu")


def atoms_to_system(atoms, module, dtype: torch.dtype, positions=None, cell=None, cache=None):
    """A metatomic ``System`` of ``atoms`` with the neighbor lists ``module``
    asks for (``positions`` / ``cell``: tensors to use instead of the atoms',
    e.g. strained ones that carry gradients), on ``module``'s device."""
    from metatomic.torch import System

    device = module_device(module)
    if positions is None:
        positions = torch.tensor(np.asarray(atoms.positions), dtype=dtype, device=device)
    if cell is None:
        cell = torch.tensor(np.asarray(atoms.cell.array), dtype=dtype, device=device)
    system = System(
        types=torch.tensor(atoms.numbers, dtype=torch.int32, device=device),
        positions=positions,
        cell=cell,
        pbc=torch.tensor(atoms.pbc, dtype=torch.bool, device=device),
    )
    if cache is not None:
        calculators = cache.neighbor_calculators(system)
    else:
        from vesin.metatomic import neighbor_lists_for_model

        calculators = neighbor_lists_for_model("angstrom", module, model_length_unit="angstrom")
    for calculator in calculators:
        calculator.add_neighbor_list([system])
    return system


def evaluate(module, atoms, dtype: torch.dtype, stress: bool = True, cache=None) -> dict:
    """Energy, forces, atomic energies and (periodic cells) stress of ``atoms``
    with a module of metatomic's interface (an ``energy`` output), by autograd.

    :param cache: an object whose ``neighbor_calculators(system)`` gives the
        neighbor-list calculators (made here when ``None``)
    """
    from metatomic.torch import ModelOutput

    device = module_device(module)
    positions = torch.tensor(
        np.asarray(atoms.positions), dtype=dtype, device=device, requires_grad=True
    )
    cell = torch.tensor(np.asarray(atoms.cell.array), dtype=dtype, device=device)
    strain = torch.eye(3, dtype=dtype, device=device, requires_grad=stress)
    system = atoms_to_system(atoms, module, dtype, positions @ strain, cell @ strain, cache)
    output = module([system], {"energy": ModelOutput(unit="eV", sample_kind="atom")}, None)
    atomic = output["energy"].block().values.reshape(-1)
    energy = atomic.sum()
    inputs = [positions, strain] if stress else [positions]
    gradients = torch.autograd.grad(energy, inputs)
    total = float(energy.detach())
    results = {
        "energy": total,
        "free_energy": total,
        "forces": -gradients[0].detach().cpu().numpy().astype(np.float64),
        "energies": atomic.detach().cpu().numpy().astype(np.float64),
    }
    if stress:
        sigma = gradients[1].detach().cpu().numpy().astype(np.float64) / abs(atoms.get_volume())
        results["stress"] = full_3x3_to_voigt_6_stress(sigma)
    return results


class PredictionCalculator(Calculator):
    """ASE calculator of any model that predicts ``energy`` (and ``forces``):
    one :meth:`~equilens.models.base.Model.predict` call per structure.

    :param model: the model
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if "stress" in properties:
            raise PropertyNotImplementedError(f"{self.model.kind} models give no stress here")
        wanted = ["energy"] + (["forces"] if "forces" in self.model.outputs else [])
        prediction = self.model.predict([self.atoms], outputs=wanted)
        energy = float(prediction["energy"].block().values[0, 0])
        self.results = {"energy": energy, "free_energy": energy}
        if "forces" in prediction:
            self.results["forces"] = np.asarray(prediction["forces"].block().values[:, :, 0])
