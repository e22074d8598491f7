"""Symmetry checks shared by the model contract and the descriptor tests:
structures moved by a rotation or an improper rotation, and TensorMaps
checked to transform as their keys say (featomic's Wigner-D convention)."""

from __future__ import annotations

from typing import Dict, Tuple

import ase
import numpy as np
from metatensor import TensorMap

from ..so3 import wigner_d_real


def transformed(atoms: ase.Atoms, matrix: np.ndarray) -> ase.Atoms:
    """``atoms`` with positions and cell mapped by ``r -> matrix @ r`` (a
    rotation, or an improper rotation such as ``-identity``)."""
    moved = atoms.copy()
    moved.positions = atoms.positions @ np.asarray(matrix).T
    if atoms.pbc.any():
        moved.cell = atoms.cell.array @ np.asarray(matrix).T
    return moved


def key_dict(tensor: TensorMap, key) -> Dict[str, int]:
    """A key of ``tensor`` as ``{name: value}``."""
    return dict(zip(tensor.keys.names, (int(v) for v in key.values)))


def block_error(tensor: TensorMap, key, values: np.ndarray, atol: float) -> Tuple[float, float]:
    """``(error, tolerance)`` of ``values`` against the block ``key`` of
    ``tensor``: the largest absolute difference, and ``atol`` times the
    block's largest value, floored at 1 % of the tensor's largest value.

    The floor keeps a block that is small by cancellation (a lambda = 1
    block of nearly symmetric environments) from turning float32 rounding of
    the layer into a failure, while a wrong block still fails: its values
    are compared to ``atol`` of a hundredth of the layer's scale.
    """
    block = tensor.block(key_dict(tensor, key))
    if not block.values.size:
        return 0.0, 0.0
    largest = max(float(np.abs(b.values).max()) for b in tensor.blocks() if b.values.size)
    scale = max(float(np.abs(block.values).max()), 1e-2 * largest, 1e-12)
    return float(np.abs(np.asarray(values) - block.values).max()), atol * scale


def assert_covariant(
    original: TensorMap,
    moved: TensorMap,
    matrix: np.ndarray,
    atol: float = 1e-6,
    where: str = "",
) -> int:
    """Assert that ``moved`` (computed on frames mapped by ``matrix``) is
    ``original`` transformed as its keys say: blocks without ``o3_lambda``
    are invariant; a block ``(o3_lambda, o3_sigma)`` is multiplied by the
    Wigner-D matrix of ``matrix``'s rotation on its ``o3_mu`` axis (axis 1),
    and by ``o3_sigma (-1)^lambda`` when ``matrix`` is improper. The
    tolerance is relative to the largest value of the tensor.

    :returns: the number of blocks that did change (so a caller can refuse a
        vacuous check)
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    improper = np.linalg.det(matrix) < 0
    rotation = -matrix if improper else matrix
    changed = 0
    sizes = [float(np.abs(block.values).max()) for block in original.blocks() if block.values.size]
    scale = max(sizes + [1e-12])
    for key, block in original.items():
        selection = key_dict(original, key)
        values = np.asarray(block.values)
        actual = np.asarray(moved.block(selection).values)
        assert actual.shape == values.shape, f"{where} block {selection}: shapes differ"
        ell = selection.get("o3_lambda", 0)
        expected = values
        if ell > 0:
            expected = np.einsum("mn,snp->smp", wigner_d_real(ell, rotation), values)
        if improper:
            expected = expected * selection.get("o3_sigma", 1) * (-1) ** ell
        error = float(np.abs(actual - expected).max()) if values.size else 0.0
        assert error <= atol * scale, (
            f"{where} block {selection}: differs from its transform by {error:.3g} "
            f"(tolerance {atol * scale:.3g})"
        )
        if values.size and np.abs(actual - values).max() > 1e-3 * scale:
            changed += 1
    return changed


def should_change(layers: Dict[str, TensorMap], matrix: np.ndarray) -> bool:
    """Whether some block of ``layers`` is not invariant under ``matrix``."""
    improper = np.linalg.det(matrix) < 0
    for tensor in layers.values():
        for key in tensor.keys:
            selection = key_dict(tensor, key)
            ell, sigma = selection.get("o3_lambda", 0), selection.get("o3_sigma", 1)
            if (ell > 0 and not improper) or (improper and sigma * (-1) ** ell < 0):
                return True
    return False
