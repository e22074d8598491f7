"""Energies and exact forces of a potential from precomputed projected features.

:func:`energy_and_forces` is the one place where the training, the
evaluation and the ``predict`` of every potential family (BPNN, equivariant
potential) compute forces from features with stored position gradients
(the module gives ``atomic_energies(x, species)``): the exact negative
gradient of the model energy, contracted with the projected descriptor
gradients of a
:class:`~equilens.descriptors.projected.FeatureSet` (computed once, so an
epoch with forces costs seconds, not the minutes of recomputing SOAP
gradients). Everything stays on the device of the features.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from ...descriptors.projected import FeatureSet
from ...errors import EquilensError


def energy_and_forces(
    module,
    features: FeatureSet,
    forces: bool = True,
    create_graph: bool = False,
    atomic: Optional[List[torch.Tensor]] = None,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Total energy of each frame and, if asked, the force on each atom.

    :param module: a family's module with ``atomic_energies(x, species)``

    ``F_j = -sum_i dE/dx_i . dx_i/dr_j`` with the projected descriptor
    gradients of ``features``: exactly minus the gradient of the energy.

    :param create_graph: keep the graph of the forces (for training on them)
    :param atomic: if a list is given, the per-atom energies are appended to
        it (they come from the same forward pass)
    """
    x = features.x
    if forces:
        if not features.has_gradients:
            raise EquilensError("forces need features computed with gradients=True")
        x = x.detach().requires_grad_(True)
    atomic_energy = module.atomic_energies(x, features.species)
    if atomic is not None:
        atomic.append(atomic_energy)
    energy = atomic_energy.new_zeros(features.n_frames).index_add(0, features.system, atomic_energy)
    if not forces:
        return energy, None
    (d_energy,) = torch.autograd.grad(
        energy.sum(), x, create_graph=create_graph, retain_graph=create_graph
    )
    contributions = _Contract.apply(d_energy[features.grad_center], features.grad_values)
    force = -atomic_energy.new_zeros((len(x), 3)).index_add(
        0, features.grad_neighbor, contributions
    )
    return energy, force


#: gradient pairs contracted at once: the float32 copy of a chunk of float16
#: gradients stays small (2048 x 3 x 256 x 4 B = 6 MB) and is reused by the
#: allocator; one copy of all the pairs of a batch (~160 MB on iron/water)
#: was a fresh allocation every batch, and the page faults made the epoch
#: time vary from 4.6 to 6.3 s between processes (benchmarks/training_speed.py)
PAIR_CHUNK = 2048


class _Contract(torch.autograd.Function):
    """``c[p] = G[p] @ d[p]`` for gradients ``G`` ``(P, 3, k)`` (any float
    dtype, no gradient) and ``d`` ``(P, k)``, chunk by chunk, in ``d``'s dtype."""

    @staticmethod
    def forward(ctx, d: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gradients)
        out = d.new_empty((len(d), 3))
        for start in range(0, len(d), PAIR_CHUNK):
            stop = start + PAIR_CHUNK
            block = gradients[start:stop].to(d.dtype)
            out[start:stop] = torch.bmm(block, d[start:stop].unsqueeze(-1)).squeeze(-1)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        (gradients,) = ctx.saved_tensors
        grad = grad_output.new_empty((len(grad_output), gradients.shape[2]))
        for start in range(0, len(grad_output), PAIR_CHUNK):
            stop = start + PAIR_CHUNK
            block = gradients[start:stop].to(grad_output.dtype)
            grad[start:stop] = torch.bmm(grad_output[start:stop].unsqueeze(1), block).squeeze(1)
        return grad, None
