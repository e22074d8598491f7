"""LLPR uncertainties of forces, through the model's own torch module.

With ``u = A^T f``, ``A = V (Lambda + s)^-1/2`` the factor of LLPR's inverse
covariance and ``f`` a structure's summed layer rows, the variance of the
energy is ``alpha^2 |u|^2``; forces are minus the gradient of an energy
linear in ``f``, so the variance of the force component ``r_c`` is
``alpha^2 sum_k (d u_k / d r_c)^2`` (Bigi et al. 2024, section on
derivatives). The gradients come from autograd through the family's torch
module (its ``feature/<layer>`` output, the one the metatomic export
serves), one backward pass per column of the row space: exact, and about
``n_columns`` times the cost of one force evaluation.
"""

from __future__ import annotations

import ase
import numpy as np
import torch

from ..errors import ModelError


def llpr_force_uncertainty(estimator, atoms: ase.Atoms) -> np.ndarray:
    """``(n_atoms, 3)``: the calibrated uncertainty of every force component
    of ``atoms`` under a fitted :class:`~equilens.uncertainty.LLPR`.

    :raises ModelError: for a model without a torch module that gives its layers
    """
    from metatomic.torch import ModelOutput

    from ..models.calculator import atoms_to_system

    model, layout = estimator.model, estimator.layout
    if layout is None or estimator.eigenvectors is None:
        raise ModelError("LLPR: call fit(training frames) before asking for force uncertainties")
    if not hasattr(model, "torch_module"):
        raise ModelError(
            f"force uncertainties from LLPR need a model whose torch module gives its layers "
            f"(equilens families); this is a {model.kind} model: use an ensemble"
        )
    model.check_species([atoms], where="ASE atoms")
    module = model.torch_module(torch.float64)
    positions = torch.tensor(np.asarray(atoms.positions), dtype=torch.float64, requires_grad=True)
    system = atoms_to_system(atoms, module, torch.float64, positions=positions)
    name = f"feature/{estimator.layer}"
    block = module([system], {name: ModelOutput(sample_kind="atom")}, None)[name].block()
    order = torch.argsort(block.samples.column("atom"))
    values = block.values[order]
    numbers = torch.tensor(atoms.numbers)
    summed = torch.zeros(layout.n_columns, dtype=torch.float64)
    for z in np.unique(atoms.numbers):
        width = layout.widths[layout.species.index(int(z))]
        if values.shape[1] != width:
            raise ModelError(
                f"layer '{estimator.layer}': the torch module gives {values.shape[1]} features "
                f"per atom, the model's layers {width}"
            )
        start = layout.offset(int(z))
        columns = torch.arange(start, start + values.shape[1])
        summed = summed.index_add(0, columns, values[numbers == int(z)].sum(dim=0))
    shift = estimator.regularizer * max(float(estimator.eigenvalues.mean()), 1e-300)
    factor = estimator.eigenvectors / np.sqrt(estimator.eigenvalues + shift)
    projected = torch.as_tensor(factor.T) @ summed
    variance = torch.zeros_like(positions)
    for component in projected:
        if not component.requires_grad:
            continue
        (gradient,) = torch.autograd.grad(component, positions, retain_graph=True)
        variance += gradient.detach() ** 2
    return estimator.scale * np.sqrt(variance.numpy())
