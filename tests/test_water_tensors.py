"""PySCF tensorial targets: conventions proven by rotating real molecules."""

import numpy as np
import pytest

pytest.importorskip("pyscf", reason="PySCF not installed (pip install equilens[pyscf])")

from ase.build import molecule  # noqa: E402

from equilens.data.basis import pyscf_to_featomic  # noqa: E402
from equilens.data.generate.water_tensors import (  # noqa: E402
    WaterTensorsConfig,
    compute_targets,
    density_tensor,
)
from equilens.errors import DataError  # noqa: E402
from equilens.so3 import (  # noqa: E402
    random_rotation,
    symmetric_tensor_to_spherical,
    vector_to_spherical,
    wigner_d_real,
)
from equilens.testing import assert_covariant  # noqa: E402

CONFIG = WaterTensorsConfig(monomers=1, dimers=0, trimers=0)


@pytest.fixture(scope="module")
def rotated_pair():
    water = molecule("H2O")
    water.positions += [0.3, -0.2, 0.1]  # off the origin: rotation about the origin
    rotation = random_rotation(7)
    turned = water.copy()
    turned.positions = water.positions @ rotation.T
    return rotation, compute_targets(water, CONFIG), compute_targets(turned, CONFIG), water


def test_conversion_is_a_signed_permutation():
    for ell in range(5):
        t = pyscf_to_featomic(ell)
        assert np.allclose(t @ t.T, np.eye(2 * ell + 1))
        assert set(np.abs(t).ravel().tolist()) <= {0.0, 1.0}
    # PySCF's p functions are (x, y, z); featomic's l = 1 order is (y, z, x)
    assert np.array_equal(pyscf_to_featomic(1), np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]]))


def test_dipole_rotates_as_a_vector(rotated_pair):
    rotation, one, two, _ = rotated_pair
    assert np.allclose(two["dipole"], rotation @ one["dipole"], atol=1e-6)
    spherical = vector_to_spherical(np.stack([one["dipole"], two["dipole"]]))
    assert np.allclose(spherical[1], wigner_d_real(1, rotation) @ spherical[0], atol=1e-6)
    assert 0.6 < np.linalg.norm(one["dipole"]) < 0.9  # ~0.75 e bohr at this level


def test_polarizability_is_symmetric_and_rotates_as_rank_2(rotated_pair):
    rotation, one, two, _ = rotated_pair
    alpha, beta = one["polarizability"], two["polarizability"]
    assert np.allclose(alpha, alpha.T)
    assert np.all(np.linalg.eigvalsh(alpha) > 0)
    assert np.allclose(beta, rotation @ alpha @ rotation.T, atol=1e-3)
    l0, l2 = symmetric_tensor_to_spherical(np.stack([alpha, beta]))
    assert np.allclose(l0[0], l0[1], atol=1e-3)
    assert np.allclose(l2[1], wigner_d_real(2, rotation) @ l2[0], atol=1e-3)


def test_density_coefficients_transform_with_wigner_d(rotated_pair):
    rotation, one, two, water = rotated_pair
    before = density_tensor([water], [one])
    after = density_tensor([water], [two])
    assert before.keys.names == ["o3_lambda", "o3_sigma", "center_type"]
    lambdas = {int(key["o3_lambda"]) for key in before.keys}
    for block in before.blocks():
        assert block.components[0].names == ["o3_mu"] and block.properties.names == ["n"]
    assert_covariant(before, after, rotation, 1e-5, "density")
    assert {0, 1, 2, 3} <= lambdas  # the JKFIT basis reaches f functions
    # the fitted density integrates to the 10 electrons of water
    from pyscf import dft

    from equilens.data.basis import _auxiliary_layout, _conversion, _pyscf, molecule

    _, _, df = _pyscf()
    auxmol = df.addons.make_auxmol(molecule(water, CONFIG.basis), CONFIG.auxbasis)
    grids = dft.gen_grid.Grids(auxmol)
    grids.build()
    integrals = grids.weights @ auxmol.eval_gto("GTOval_sph", grids.coords)
    pyscf_order = _conversion(_auxiliary_layout(auxmol)).T @ one["coefficients"]
    assert integrals @ pyscf_order == pytest.approx(10.0, abs=1e-3)


def test_broken_geometry_fails_fast():
    water = molecule("H2O")
    water.positions[2] = water.positions[0] + [0.05, 0, 0]
    with pytest.raises(DataError, match="broken geometry"):
        compute_targets(water, CONFIG)
