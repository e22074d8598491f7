"""Representation measures beyond reconstruction errors, with known answers."""

import numpy as np
import pytest
from scipy.stats import ortho_group

from equilens.analysis.compare import compare
from equilens.analysis.measures import information_imbalance, intrinsic_dimension, linear_cka


def _plain_cka(x, y):
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_cka_is_one_for_rotations_and_scalings_and_zero_for_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6))
    y = 3.0 * x @ ortho_group.rvs(6, random_state=1) + 7.0
    assert linear_cka(x, y) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert abs(linear_cka(x, rng.normal(size=(300, 6)))) < 0.05


def test_debiased_cka_removes_the_bias_of_wide_features():
    """With more features than samples the plain estimator reports a large
    similarity between independent sets; the debiased one does not."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 800)), rng.normal(size=(40, 800))
    assert _plain_cka(x, y) > 0.5
    assert abs(linear_cka(x, y)) < 0.1


def test_information_imbalance_known_cases():
    rng = np.random.default_rng(3)
    full = rng.normal(size=(400, 6))
    part = full[:, :2]
    # the same space: the nearest neighbour is always rank 1
    assert information_imbalance(full, full) == pytest.approx(2 / 400)
    # the full space predicts the part's neighbours, not the reverse
    assert information_imbalance(full, part) < information_imbalance(part, full)
    # unrelated spaces: about 1
    assert information_imbalance(full, rng.normal(size=(400, 6))) == pytest.approx(1.0, abs=0.15)


def test_intrinsic_dimension_of_a_plane_in_ten_dimensions():
    pytest.importorskip("skdim", reason="scikit-dimension not installed")
    rng = np.random.default_rng(4)
    plane = rng.uniform(size=(1500, 2)) @ rng.normal(size=(2, 10))
    assert intrinsic_dimension(plane) == pytest.approx(2.0, abs=0.3)


def test_compare_adds_the_measures_without_changing_the_others():
    pytest.importorskip("skdim", reason="scikit-dimension not installed")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 5))
    data = {
        "x": x,
        "rotated": x @ ortho_group.rvs(5, random_state=2),
        "noise": rng.normal(size=(600, 4)),
    }
    plain = compare(data, measures=("gfre", "lfre"), lfre_samples=200, lfre_neighbors=30)
    full = compare(
        data, measures=("gfre", "lfre", "cka", "ii", "id"), lfre_samples=200, lfre_neighbors=30,
        rank_samples=400,
    )  # fmt: skip
    for measure in ("gfre", "lfre"):
        np.testing.assert_array_equal(plain.matrices[measure], full.matrices[measure])
    cka = full.matrices["cka"]
    assert cka[0, 1] == pytest.approx(1.0, abs=1e-8) and abs(cka[0, 2]) < 0.1
    np.testing.assert_allclose(cka, cka.T)
    ii = full.matrices["ii"]
    assert ii[0, 1] < 0.05 and ii[0, 2] > 0.7
    assert set(full.per_set["id"]) == set(data) and full.rank_samples == 400
    assert full.per_set["id"]["x"] == pytest.approx(5, abs=1.5)


def test_information_imbalance_matches_dadapy():
    """Rank sums S (Delta = 2 S / N^2) computed with DADApy 0.3.4 in its own
    environment (it pins numpy < 2), MetricComparisons(A, maxk=N - 1)
    .return_information_imbalace(B, k=1), on these seeded datasets; see
    docs/benchmarks.md, "Representation measures"."""
    datasets = {}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6))
    datasets["linear"] = (x[:, :3], x)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    m = rng.normal(size=(4, 4))
    datasets["noisy"] = (x, x @ m + 0.3 * rng.normal(size=(300, 4)))
    rng = np.random.default_rng(2)
    datasets["independent"] = (rng.normal(size=(300, 5)), rng.normal(size=(300, 5)))
    dadapy = {
        "linear": (18430, 3855),
        "noisy": (3155, 8832),
        "independent": (40860, 42584),
    }
    for name, (a, b) in datasets.items():
        forward = information_imbalance(a, b) * 300**2 / 2
        backward = information_imbalance(b, a) * 300**2 / 2
        assert (round(forward), round(backward)) == dadapy[name], name
        assert abs(forward - round(forward)) < 1e-6
