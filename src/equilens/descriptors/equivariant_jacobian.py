"""Position gradients of the projected lambda-SOAP through each atom's Jacobian.

An atom's projected features ``x_i = Q^T CG(r_i, r_i)``
(:mod:`equilens.descriptors.equivariant`) are a quadratic function of its
compressed density ``r_i`` alone, so for any moving atom ``j``::

    dx_i / dR_j = (dr_i / dR_j) J_i,        J_i = dx_i / dr_i   (D x W)

``J_i`` holds both terms of the product rule at once and is built once per
atom from featomic's Clebsch-Gordan coefficients and the projection ``Q``;
each ``(atom, neighbor, direction)`` row of the density gradient then costs
one row-matrix product, instead of a Clebsch-Gordan product of its own
followed by a projection (the product rule applied row by row). Since ``x_i``
is homogeneous of degree 2 in ``r_i``, ``r_i J_i = 2 x_i`` (Euler), which the
tests check against featomic's product.

Rows of ``J`` (and columns of the density gradients) follow the compressed
density, ``l = 0 .. max_angular``, each ``(2 l + 1) x density_components``
(``m`` major); columns follow the features, ``lambda = 0 .. lambda_max``, each
``(2 lambda + 1) x n_lambda``.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import numpy as np
from metatensor import TensorBlock

from .budget import BYTES

#: the most bytes of Jacobians held at once (atoms are taken in chunks)
JACOBIAN_BYTES = 128 * 2**20


def coupling_coefficients(
    max_angular: int, lambda_max: int
) -> Dict[Tuple[int, int, int], np.ndarray]:
    """featomic's real Clebsch-Gordan coefficients ``C[m_1, m_2, mu]`` of
    every ``(l_1, l_2, lambda)`` with ``l_1 <= l_2 <= max_angular``, ``lambda
    <= lambda_max`` and ``l_1 + l_2 + lambda`` even (the ``o3_sigma = 1``
    blocks of :class:`~equilens.descriptors.equivariant.DensityProduct`),
    with the sign featomic's product applies."""
    from featomic.clebsch_gordan import calculate_cg_coefficients

    table = calculate_cg_coefficients(2 * max_angular, "python-dense", "numpy", np.float64, "cpu")
    coefficients = {}
    for l1 in range(max_angular + 1):
        for l2 in range(l1, max_angular + 1):
            for lam in range(abs(l2 - l1), min(l1 + l2, lambda_max) + 1):
                if (l1 + l2 + lam) % 2:
                    continue
                block = table.block({"l1": l1, "l2": l2, "lambda": lam})
                sign = (-1) ** (l1 + l2 + lam)
                coefficients[(l1, l2, lam)] = sign * np.asarray(block.values)[0, ..., 0]
    return coefficients


class DensityJacobian:
    """``J_i = dx_i / dr_i`` of the atoms of one center type.

    :param coefficients: :func:`coupling_coefficients`
    :param projection: the padded projection of block ``(lambda, 1, z)``
        (rows: ``(l_1, l_2)`` pairs, then ``n_1``, ``n_2``)
    :param pair_offset: ``(l_1, l_2) ->`` the pair's position in those rows
    :param channels: the density's channels per ``l`` (``density_components``)
    :param max_angular: the density's largest ``l``
    :param lambda_max: the largest ``lambda`` of the features
    :param n_components: features per ``(lambda, center type)`` block, for
        each ``lambda = 0 .. lambda_max``
    """

    def __init__(
        self,
        coefficients: Dict[Tuple[int, int, int], np.ndarray],
        projection: Callable[[int], np.ndarray],
        pair_offset: Dict[Tuple[int, int], int],
        channels: int,
        max_angular: int,
        lambda_max: int,
        n_components: Sequence[int],
    ):
        self.channels = channels
        self.rows = density_offsets(max_angular, channels)
        self.columns = [0]
        for lam in range(lambda_max + 1):
            self.columns.append(self.columns[-1] + (2 * lam + 1) * n_components[lam])
        matrices = {lam: projection(lam) for lam in range(lambda_max + 1)}
        width = channels * channels
        # per (l_1, l_2, lambda): C and the pair's rows of Q as (n_1, n_2, k)
        self.terms = []
        for (l1, l2, lam), c in coefficients.items():
            start = pair_offset[(l1, l2)] * width
            q = matrices[lam][start : start + width].reshape(channels, channels, -1)
            self.terms.append((l1, l2, lam, c, q))

    @property
    def shape(self) -> Tuple[int, int]:
        """``(D, W)``: density entries by features."""
        return self.rows[-1], self.columns[-1]

    def __call__(self, density: Sequence[np.ndarray]) -> np.ndarray:
        """``(atoms, D, W)`` from the density blocks ``(atoms, 2 l + 1,
        channels)``, ``l = 0 .. max_angular``."""
        atoms = len(density[0])
        n = self.channels
        jacobian = np.zeros((atoms, *self.shape))
        for l1, l2, lam, c, q in self.terms:
            mu, k = 2 * lam + 1, q.shape[2]
            columns = slice(self.columns[lam], self.columns[lam + 1])
            # derivative by the first factor: sum over m_2, n_2 of C r_2 Q
            t = np.matmul(density[l2], q.transpose(1, 0, 2).reshape(n, n * k))
            a = np.tensordot(t.reshape(atoms, 2 * l2 + 1, n, k), c, axes=([1], [1]))
            # (atoms, n_1, k, m_1, mu) -> (atoms, m_1, n_1, mu, k)
            a = a.transpose(0, 3, 1, 4, 2).reshape(atoms, (2 * l1 + 1) * n, mu * k)
            jacobian[:, self.rows[l1] : self.rows[l1 + 1], columns] += a
            # derivative by the second factor: sum over m_1, n_1 of C r_1 Q
            u = np.matmul(density[l1], q.reshape(n, n * k))
            b = np.tensordot(u.reshape(atoms, 2 * l1 + 1, n, k), c, axes=([1], [0]))
            # (atoms, n_2, k, m_2, mu) -> (atoms, m_2, n_2, mu, k)
            b = b.transpose(0, 3, 1, 4, 2).reshape(atoms, (2 * l2 + 1) * n, mu * k)
            jacobian[:, self.rows[l2] : self.rows[l2 + 1], columns] += b
        return jacobian

    def chunk(self) -> int:
        """Atoms whose Jacobians fit in :data:`JACOBIAN_BYTES`."""
        rows, columns = self.shape
        return max(1, JACOBIAN_BYTES // (BYTES * rows * columns))


def density_offsets(max_angular: int, channels: int) -> List[int]:
    """Where each ``l`` starts in a row of the flat density (and its end)."""
    offsets = [0]
    for l in range(max_angular + 1):  # noqa: E741
        offsets.append(offsets[-1] + (2 * l + 1) * channels)
    return offsets


def pair_rows(
    blocks: Sequence[TensorBlock], atom_rows: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The density gradients of one center type, every ``l`` side by side:
    ``(center, moving, values)`` with ``center`` the position of the
    density's atom among the block's samples, ``moving`` the row of the atom
    that moves (``atom_rows[system] + atom``) and ``values`` of shape
    ``(pairs, 3, D)``, pairs sorted by center."""
    first = blocks[0].gradient("positions")
    samples = np.asarray(first.samples.values)
    order = np.lexsort((samples[:, 2], samples[:, 0]))
    keys = samples[order]
    widths = [int(np.prod(b.values.shape[1:])) for b in blocks]
    values = np.empty((len(keys), 3, sum(widths)))
    start = 0
    for block, width in zip(blocks, widths):
        gradient = block.gradient("positions")
        found = np.asarray(gradient.samples.values)
        if len(found) != len(keys) or not np.array_equal(found[order], keys):
            raise ValueError("the density blocks of one center type differ in their pairs")
        values[:, :, start : start + width] = np.asarray(gradient.values)[order].reshape(
            len(keys), 3, width
        )
        start += width
    moving = atom_rows[keys[:, 1]] + keys[:, 2]
    return keys[:, 0], moving, values


def projected_gradients(
    jacobian: DensityJacobian,
    density: Sequence[np.ndarray],
    center: np.ndarray,
    values: np.ndarray,
) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """``(pairs, gradients)`` chunk by chunk of centers: the indices into
    :func:`pair_rows`' arrays and ``values[pairs] @ J[center]`` of shape
    ``(len(pairs), 3, W)``. ``center`` must be sorted."""
    atoms = len(density[0])
    size = jacobian.chunk()
    bounds = np.searchsorted(center, np.arange(0, atoms + size, size).clip(max=atoms))
    for index in range(len(bounds) - 1):
        lo, hi = int(bounds[index]), int(bounds[index + 1])
        if lo == hi:
            continue
        first, last = index * size, min(atoms, (index + 1) * size)
        j = jacobian([d[first:last] for d in density])
        local = center[lo:hi] - first
        counts = np.bincount(local, minlength=last - first)
        most = int(counts.max())
        # neighbours padded per center, so that one batched product does all
        slot = np.arange(hi - lo) - np.repeat(np.cumsum(counts) - counts, counts)
        padded = np.zeros((last - first, most, 3, j.shape[1]))
        padded[local, slot] = values[lo:hi]
        product = np.matmul(padded.reshape(last - first, most * 3, -1), j)
        yield (
            np.arange(lo, hi),
            product.reshape(last - first, most, 3, -1)[local, slot],
        )


def check_density_samples(blocks: Sequence[TensorBlock]) -> None:
    """The blocks of one center type list the same atoms in the same order."""
    first = np.asarray(blocks[0].samples.values)
    for block in blocks[1:]:
        if not np.array_equal(np.asarray(block.samples.values), first):
            raise ValueError("the density blocks of one center type differ in their atoms")
