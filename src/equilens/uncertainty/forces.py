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

With ``projections=m`` the sum over the ``n_columns`` directions is
estimated from ``m`` random sign vectors ``z`` instead (``E[(z . du/dr)^2] =
sum_k (du_k/dr)^2`` for independent signs; Hutchinson's trick): ``m``
backward passes, unbiased, each variance within about ``sqrt(2/m)`` of the
exact one (relative standard deviation), seeded so that a rerun gives the
same values.
"""

from __future__ import annotations

from typing import Optional

import ase
import numpy as np
import torch

from ..errors import ConfigError, ModelError


def llpr_force_uncertainty(
    estimator, atoms: ase.Atoms, projections: Optional[int] = None, seed: int = 0
) -> np.ndarray:
    """``(n_atoms, 3)``: the calibrated uncertainty of every force component
    of ``atoms`` under a fitted :class:`~equilens.uncertainty.LLPR`.

    :param projections: estimate from this many random projections instead
        of one backward pass per column (exact when ``None`` or at least the
        number of columns)
    :param seed: seeds the random projections
    :raises ModelError: for a model without a torch module that gives its layers
    """
    if projections is not None and projections < 1:
        raise ConfigError(f"projections must be >= 1, got {projections}")
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
    weight = 1.0
    if projections is not None and projections < len(projected):
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], (projections, len(projected)))
        projected = torch.as_tensor(signs) @ projected
        weight = 1.0 / projections
    variance = torch.zeros_like(positions)
    for component in projected:
        if not component.requires_grad:
            continue
        (gradient,) = torch.autograd.grad(component, positions, retain_graph=True)
        variance += gradient.detach() ** 2
    return estimator.scale * np.sqrt(weight * variance.numpy())
