"""The contract every model keeps, and the symmetry checks the tests share.

:func:`check_model` runs the checks of the model protocol on one model and a
few frames, as scikit-learn's ``check_estimator`` does for estimators and
e3nn's ``assert_equivariant`` for layers. It is parametrised over every
family and adapter in the test suite (``tests/test_contract.py``); a new
family passes it before it is registered. Each check raises an
``AssertionError`` naming the check, the layer, block or frame; a check that
does not apply is skipped with its reason in the returned report.

- ``metadata``: layers in :attr:`~equilens.models.base.Model.layer_names`
  order, with the conventions of :mod:`equilens.models.base`;
- ``batches``: the same layers whatever the batch size;
- ``rotation`` / ``inversion``: every ``lambda > 0`` block transforms with
  featomic's real Wigner-D matrix (:func:`equilens.so3.wigner_d_real`),
  invariant blocks and energies do not change, forces and tensor targets
  rotate; under inversion a block picks ``o3_sigma * (-1)^lambda`` (models
  built without parity are checked under rotations only);
- ``permutation``: reordering the atoms of a frame reorders its per-atom
  layers and leaves its energy unchanged;
- ``predictions``: every output has the documented shape;
- ``forces``: forces are minus the central finite differences of the energy;
- ``stress``: the calculator's stress is the strain derivative of the energy
  over the volume (periodic frames, calculators that give stress);
- ``devices``: :meth:`~equilens.models.base.Model.to` the CPU returns the
  model; with a CUDA GPU, the layers and predictions on it equal the CPU's
  (or the model refuses the GPU in one line);
- ``unknown element``: a frame with an element the model does not know is
  refused in one line naming the frame and the element;
- ``reload``: the same layers from the model saved (or reopened from its
  source) in a fresh process;
- ``export``: the metatomic export of the family gives the model's energies
  and layers (families that export).

:func:`transformed` and :func:`assert_covariant` are the symmetry checks the
descriptor and adapter tests use too.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import ase

from .checks import (
    Context,
    check_batches,
    check_devices,
    check_forces,
    check_inversion,
    check_metadata,
    check_permutation,
    check_predictions,
    check_rotation,
    check_stress,
    check_unknown_element,
)
from .files import check_export, check_reload
from .symmetry import assert_covariant, transformed

#: the checks of :func:`check_model`, in order
CHECKS: Dict[str, Callable[[Context], Optional[str]]] = {
    "metadata": check_metadata,
    "batches": check_batches,
    "rotation": check_rotation,
    "inversion": check_inversion,
    "permutation": check_permutation,
    "predictions": check_predictions,
    "forces": check_forces,
    "stress": check_stress,
    "devices": check_devices,
    "unknown element": check_unknown_element,
    "reload": check_reload,
    "export": check_export,
}


def check_model(
    model,
    frames: Sequence[ase.Atoms],
    *,
    atol: float = 1e-6,
    force_atol: float = 1e-4,
    fd_step: float = 1e-4,
    seed: int = 0,
    skip: Sequence[str] = (),
) -> Dict[str, str]:
    """Run every check of the model contract on ``model`` and ``frames``.

    :param atol: tolerance of layers and predictions, relative to the largest
        value of each block (``1e-4`` suits float32 models)
    :param force_atol: tolerance of forces and stress against finite
        differences, relative to their size (at least 1 eV/Å)
    :param fd_step: displacement (Å) and strain of the finite differences
    :param seed: seeds the rotations, the permutation and the moved atoms
    :param skip: names of checks not to run (see :data:`CHECKS`)
    :returns: ``{check: "ok" or "skipped: <reason>"}``
    :raises AssertionError: at the first broken check, naming it
    """
    unknown = [name for name in skip if name not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; the checks are {list(CHECKS)}")
    context = Context(model, frames, atol, force_atol, fd_step, seed)
    report: Dict[str, str] = {}
    for name, check in CHECKS.items():
        if name in skip:
            report[name] = "skipped: asked"
            continue
        try:
            reason = check(context)
        except AssertionError as error:
            raise AssertionError(f"{model.kind} model, check '{name}': {error}") from None
        report[name] = "ok" if reason is None else f"skipped: {reason}"
    return report


__all__ = ["CHECKS", "assert_covariant", "check_model", "transformed"]
