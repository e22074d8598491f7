"""Rotations and real Wigner-D matrices in featomic's convention.

featomic (and metatensor's ``o3_mu`` components) use real spherical harmonics
without the Condon-Shortley phase, ordered ``m = -l ... l``; for ``l = 1``
the components are proportional to ``(y, z, x)``. Under a rotation ``R``
(``r -> R r``) a block with ``o3_lambda = l`` transforms as
``X'[sample, m, property] = sum_m' D_l(R)[m, m'] X[sample, m', property]``,
and under inversion it picks up ``o3_sigma * (-1)**l``.

The real Wigner-D matrices are obtained exactly (to round-off) from their
definition: ``Y_l(R r) = D_l(R) Y_l(r)`` on a set of points, solved by least
squares.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.special import sph_harm_y
from scipy.spatial.transform import Rotation


def real_spherical_harmonics(o3_lambda: int, xyz: np.ndarray) -> np.ndarray:
    """Real spherical harmonics of degree ``o3_lambda`` at the points ``xyz``.

    :param xyz: array of shape ``(n, 3)``; only the direction matters
    :returns: array of shape ``(n, 2 * o3_lambda + 1)``, columns ``m = -l..l``
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    r = np.linalg.norm(xyz, axis=1)
    theta = np.arccos(np.clip(xyz[:, 2] / r, -1.0, 1.0))
    phi = np.arctan2(xyz[:, 1], xyz[:, 0])
    l = o3_lambda
    out = np.empty((len(xyz), 2 * l + 1))
    for m in range(-l, l + 1):
        # scipy includes the Condon-Shortley phase (-1)^m in Y_l^m; the factor
        # (-1)^m below removes it, giving the convention featomic uses
        complex_y = sph_harm_y(l, abs(m), theta, phi)
        if m < 0:
            out[:, m + l] = np.sqrt(2) * (-1) ** m * complex_y.imag
        elif m == 0:
            out[:, l] = complex_y.real
        else:
            out[:, m + l] = np.sqrt(2) * (-1) ** m * complex_y.real
    return out


def wigner_d_real(o3_lambda: int, rotation: np.ndarray) -> np.ndarray:
    """The real Wigner-D matrix of ``rotation`` for degree ``o3_lambda``.

    :param rotation: a proper 3x3 rotation matrix (acting as ``r -> R r``)
    :returns: a ``(2l+1, 2l+1)`` orthogonal matrix ``D`` with
        ``Y_l(R r) = D @ Y_l(r)``
    """
    rotation = np.asarray(rotation, dtype=np.float64)
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-10) or not np.isclose(
        np.linalg.det(rotation), 1.0
    ):
        raise ValueError("wigner_d_real needs a proper rotation matrix (det = +1)")
    n_points = 4 * (2 * o3_lambda + 1) + 8
    points = np.random.default_rng(12345).normal(size=(n_points, 3))
    y = real_spherical_harmonics(o3_lambda, points)
    y_rotated = real_spherical_harmonics(o3_lambda, points @ rotation.T)
    # y_rotated^T = D y^T  <=>  y D^T = y_rotated
    d_transposed, *_ = np.linalg.lstsq(y, y_rotated, rcond=None)
    return d_transposed.T


def random_rotation(seed: Optional[int] = None) -> np.ndarray:
    """A uniformly distributed random proper rotation matrix."""
    return Rotation.random(random_state=seed).as_matrix()
