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
    contributions = _Contract.apply(d_energy, features.grad_values, features.grad_center)
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


#: widths up to which the backward's per-pair products are three
#: multiply-adds: torch's batched ``1 x 3`` by ``3 x k`` product is 3-5x
#: slower than them for 64-128 features on CPU and 2-3x faster from 192 on
#: (``docs/benchmarks.md``, "The force contraction")
MULTIPLY_ADD_WIDTH = 128


class _Contract(torch.autograd.Function):
    """``c[p] = G[p] @ d[center[p]]`` for gradients ``G`` ``(P, 3, k)`` (any
    float dtype, no gradient), ``d`` ``(n, k)`` and the center atom of every
    pair, chunk by chunk, in ``d``'s dtype.

    The gather of ``d`` is part of the function: ``index_select`` forward,
    and a backward that adds each pair's ``grad[p] @ G[p]`` into its center
    with ``index_add_``. Autograd's backward of a separate ``d[center]``
    accumulates with ``index_put_``, which cost as much as the rest of the
    contraction on CPU.
    """

    @staticmethod
    def forward(ctx, d: torch.Tensor, gradients: torch.Tensor, centers: torch.Tensor):
        ctx.save_for_backward(gradients, centers)
        ctx.n_atoms = len(d)
        out = d.new_empty((len(centers), 3))
        for start in range(0, len(centers), PAIR_CHUNK):
            stop = start + PAIR_CHUNK
            block = gradients[start:stop].to(d.dtype)
            rows = d.index_select(0, centers[start:stop]).unsqueeze(-1)
            out[start:stop] = torch.bmm(block, rows).squeeze(-1)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        gradients, centers = ctx.saved_tensors
        grad = grad_output.new_zeros((ctx.n_atoms, gradients.shape[2]))
        narrow = gradients.shape[2] <= MULTIPLY_ADD_WIDTH
        for start in range(0, len(grad_output), PAIR_CHUNK):
            stop = start + PAIR_CHUNK
            block = gradients[start:stop].to(grad_output.dtype)
            g = grad_output[start:stop]
            if narrow:
                pairs = torch.addcmul(g[:, 0:1] * block[:, 0], g[:, 1:2], block[:, 1])
                pairs = torch.addcmul(pairs, g[:, 2:3], block[:, 2])
            else:
                pairs = torch.bmm(g.unsqueeze(1), block).squeeze(1)
            grad.index_add_(0, centers[start:stop], pairs)
        return grad, None, None
