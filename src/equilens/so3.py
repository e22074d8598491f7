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
from scipy.spatial.transform import Rotation
from scipy.special import sph_harm_y


def real_spherical_harmonics(o3_lambda: int, xyz: np.ndarray) -> np.ndarray:
    """Real spherical harmonics of degree ``o3_lambda`` at the points ``xyz``.

    :param xyz: array of shape ``(n, 3)``; only the direction matters
    :returns: array of shape ``(n, 2 * o3_lambda + 1)``, columns ``m = -l..l``
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    r = np.linalg.norm(xyz, axis=1)
    theta = np.arccos(np.clip(xyz[:, 2] / r, -1.0, 1.0))
    phi = np.arctan2(xyz[:, 1], xyz[:, 0])
    ell = o3_lambda
    out = np.empty((len(xyz), 2 * ell + 1))
    for m in range(-ell, ell + 1):
        # scipy includes the Condon-Shortley phase (-1)^m in Y_l^m; the factor
        # (-1)^m below removes it, giving the convention featomic uses
        complex_y = sph_harm_y(ell, abs(m), theta, phi)
        if m < 0:
            out[:, m + ell] = np.sqrt(2) * (-1) ** m * complex_y.imag
        elif m == 0:
            out[:, ell] = complex_y.real
        else:
            out[:, m + ell] = np.sqrt(2) * (-1) ** m * complex_y.real
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


def vector_to_spherical(vectors: np.ndarray) -> np.ndarray:
    """Cartesian vectors ``(n, 3)`` as ``o3_lambda = 1`` components ``(n, 3)``.

    In featomic's convention the ``m = -1, 0, 1`` components are ``(y, z, x)``
    (the l = 1 harmonics are proportional to them with one positive factor).
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors[..., [1, 2, 0]]


def spherical_to_vector(components: np.ndarray) -> np.ndarray:
    """Inverse of :func:`vector_to_spherical`: ``(y, z, x)`` -> ``(x, y, z)``."""
    components = np.asarray(components, dtype=np.float64)
    return components[..., [2, 0, 1]]


def _quadratic_forms() -> np.ndarray:
    """Symmetric traceless matrices ``Q_m`` (Frobenius-orthonormal) with
    ``Y_2m(r) ∝ r^T Q_m r``, ordered ``m = -2..2``."""
    points = np.random.default_rng(7).normal(size=(60, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    y = real_spherical_harmonics(2, points)
    # basis of symmetric 3x3 matrices: r^T Q r = sum_ab Q_ab r_a r_b
    pairs = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
    design = np.stack(
        [points[:, a] * points[:, b] * (1 if a == b else 2) for a, b in pairs], axis=1
    )
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    forms = np.zeros((5, 3, 3))
    for m in range(5):
        for (a, b), value in zip(pairs, coefficients[:, m]):
            forms[m, a, b] = forms[m, b, a] = value
        forms[m] -= np.trace(forms[m]) / 3 * np.eye(3)  # r on the unit sphere: trace is free
        forms[m] /= np.linalg.norm(forms[m])
    return forms


def symmetric_tensor_to_spherical(tensors: np.ndarray):
    """Symmetric rank-2 tensors ``(n, 3, 3)`` as ``(lambda0 (n, 1), lambda2 (n, 5))``.

    ``lambda0 = trace / sqrt(3)`` and ``lambda2[m] = <Q_m, T>`` (Frobenius),
    where ``Q_m`` are the orthonormal symmetric traceless matrices of the
    l = 2 harmonics; under ``T -> R T R^T`` the l = 2 part transforms with
    :func:`wigner_d_real`, and the total Frobenius norm is preserved.
    """
    tensors = np.asarray(tensors, dtype=np.float64)
    lambda0 = np.trace(tensors, axis1=-2, axis2=-1)[..., None] / np.sqrt(3.0)
    lambda2 = np.einsum("mab,nab->nm", _quadratic_forms(), tensors)
    return lambda0, lambda2


def spherical_to_symmetric_tensor(lambda0: np.ndarray, lambda2: np.ndarray) -> np.ndarray:
    """Inverse of :func:`symmetric_tensor_to_spherical`."""
    lambda0 = np.asarray(lambda0, dtype=np.float64).reshape(-1)
    identity = np.eye(3) / np.sqrt(3.0)
    return lambda0[:, None, None] * identity + np.einsum(
        "nm,mab->nab", np.asarray(lambda2, dtype=np.float64), _quadratic_forms()
    )
