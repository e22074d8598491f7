"""Real Wigner-D matrices: group properties and featomic's l = 1 convention."""

import numpy as np
import pytest

from equilens.so3 import random_rotation, real_spherical_harmonics, wigner_d_real


@pytest.mark.parametrize("o3_lambda", range(6))
def test_wigner_d_is_an_orthogonal_representation(o3_lambda):
    r1, r2 = random_rotation(1), random_rotation(2)
    d1, d2 = wigner_d_real(o3_lambda, r1), wigner_d_real(o3_lambda, r2)
    eye = np.eye(2 * o3_lambda + 1)
    np.testing.assert_allclose(d1 @ d1.T, eye, atol=1e-12)
    np.testing.assert_allclose(wigner_d_real(o3_lambda, r1 @ r2), d1 @ d2, atol=1e-12)
    np.testing.assert_allclose(wigner_d_real(o3_lambda, np.eye(3)), eye, atol=1e-12)


def test_l1_is_yzx_with_positive_sign():
    xyz = np.random.default_rng(0).normal(size=(5, 3))
    y1 = real_spherical_harmonics(1, xyz)
    direction = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
    np.testing.assert_allclose(y1, np.sqrt(3 / (4 * np.pi)) * direction[:, [1, 2, 0]], atol=1e-12)
    rotation = random_rotation(3)
    permutation = np.eye(3)[[1, 2, 0]]
    np.testing.assert_allclose(
        wigner_d_real(1, rotation), permutation @ rotation @ permutation.T, atol=1e-12
    )


def test_spherical_harmonics_are_orthonormal():
    # Lebedev-free check: Monte-Carlo average over the sphere approaches 1/(4 pi)
    points = np.random.default_rng(1).normal(size=(200_000, 3))
    for l in range(4):
        y = real_spherical_harmonics(l, points)
        gram = 4 * np.pi * (y.T @ y) / len(points)
        np.testing.assert_allclose(gram, np.eye(2 * l + 1), atol=0.03)


def test_improper_rotation_rejected():
    with pytest.raises(ValueError, match="proper rotation"):
        wigner_d_real(1, -np.eye(3))
