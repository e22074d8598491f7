"""Uncertainty estimators (equilens.uncertainty): known answers of the
calibration measures, LLPR's leverages, invariances, the ensemble, the ASE
calculator, selection, and the command lines with their bad input."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.calculators.singlepoint import SinglePointCalculator

from equilens.cli import main
from equilens.config import from_mapping
from equilens.data.examples import iron_water_example
from equilens.errors import DataError, ModelError
from equilens.export.chemiscope import validate_chemiscope
from equilens.models.bpnn.config import PotentialConfig
from equilens.models.bpnn.task import train_potential
from equilens.uncertainty import (
    LLPR,
    Ensemble,
    LatentDistance,
    UncertaintyCalculator,
    calibration_metrics,
    fit_scale,
    select_by_uncertainty,
    select_by_variance_reduction,
    select_farthest,
    selection,
)
from equilens.uncertainty.calibration import miscalibration_area, negative_log_likelihood


def _labelled(frames):
    for atoms in frames:
        atoms.calc = LennardJones(sigma=0.8, epsilon=0.05, rc=3.0, smooth=True)
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return frames


@pytest.fixture(scope="module")
def models(lj_files, tmp_path_factory):
    """Two small potentials (seeds 0 and 1) trained on the same frames."""
    folder = tmp_path_factory.mktemp("uncertainty")
    trained = []
    for seed in (0, 1):
        mapping = {
            "name": "lj",
            "data": {"train": str(lj_files["train"]), "validation": str(lj_files["validation"])},
            "descriptor": {"preset": "small", "species": [1, 8, 26]},
            "compression": {"n_components": 24},
            "model": {"hidden": [16, 16]},
            "training": {"epochs": 4, "batch_size": 4, "learning_rate": 0.01, "seed": seed},
            "output_dir": str(folder / f"run{seed}"),
            "cache_dir": str(folder / "cache"),
        }
        model, _ = train_potential(from_mapping(PotentialConfig, mapping), progress=False)
        trained.append(model)
    return trained, folder


@pytest.fixture(scope="module")
def frames(lj_files, tmp_path_factory):
    far = _labelled(iron_water_example(n_frames=6, seed=12, rattle=0.15))
    path = tmp_path_factory.mktemp("far") / "far.extxyz"
    ase.io.write(path, far)
    return {
        "train": ase.io.read(lj_files["train"], ":"),
        "validation": ase.io.read(lj_files["validation"], ":"),
        "far": far,
        "far_path": path,
    }


def test_calibration_measures_known_answers():
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.1, 2.0, 20000)
    errors = rng.normal(0.0, sigma)
    assert fit_scale(errors, sigma) == pytest.approx(1.0, abs=0.02)
    assert fit_scale(3 * errors, sigma) == pytest.approx(3.0, abs=0.06)
    calibrated = calibration_metrics(errors, sigma)
    assert calibrated["miscalibration_area"] < 0.01
    assert calibrated["spearman"] > 0.3  # larger sigma, larger errors on average
    # overconfident by 3x: most errors fall outside their intervals
    assert miscalibration_area(errors, sigma / 3) > 0.25
    # the likelihood is best at the fitted scale
    alpha = fit_scale(errors, sigma)
    best = negative_log_likelihood(errors, alpha * sigma)
    assert best < negative_log_likelihood(errors, 0.9 * alpha * sigma)
    assert best < negative_log_likelihood(errors, 1.1 * alpha * sigma)
    # uncertainties unrelated to the errors rank nothing
    assert abs(calibration_metrics(errors, rng.permutation(sigma))["spearman"]) < 0.03
    with pytest.raises(DataError, match="not positive"):
        fit_scale(errors, np.zeros_like(sigma))


def test_llpr_leverages_sum_to_the_rank(models, frames):
    model = models[0][0]
    estimator = LLPR(model).fit(frames["train"])
    estimator.regularizer = 1e-12
    sums = estimator.rows(frames["train"]).structure_sums()
    leverages = estimator.predict(frames["train"]).energy_uncertainty ** 2
    # sum_i f_i^T (F^T F)^-1 f_i = trace of the projector on the span of F
    assert leverages.sum() == pytest.approx(np.linalg.matrix_rank(sums), rel=1e-4)
    # the structure's sums are the sums of its atoms' rows, per-species blocks apart
    layout = estimator.layout
    assert layout.n_columns == 3 * 16 + 3 and not layout.shared
    estimator.calibrate(frames["validation"])
    assert estimator.regularizer in estimator.regularizers
    assert estimator.calibration["z_rms"] == pytest.approx(1.0)


def test_invariance_under_rotation_and_permutation(models, frames):
    model = models[0][0]
    atoms = frames["far"][0]
    rotated = atoms.copy()
    rotated.rotate(37, (1, 2, 3), rotate_cell=True)
    order = np.random.default_rng(1).permutation(len(atoms))
    permuted = atoms[order]
    for estimator in (LLPR(model), LatentDistance(model, "hidden_1")):
        estimator.fit(frames["train"])
        base, turned, shuffled = (estimator.predict([a]) for a in (atoms, rotated, permuted))
        assert turned.energy_uncertainty[0] == pytest.approx(base.energy_uncertainty[0], rel=1e-6)
        assert shuffled.energy_uncertainty[0] == pytest.approx(base.energy_uncertainty[0], rel=1e-6)
        np.testing.assert_allclose(
            shuffled.atom_uncertainty[0], base.atom_uncertainty[0][order], rtol=1e-6
        )


def test_latent_distance_is_larger_far_from_the_training_set(models, frames):
    estimator = LatentDistance(models[0][0]).fit(frames["train"])
    near = estimator.predict(frames["train"]).energy_uncertainty
    far = estimator.predict(frames["far"]).energy_uncertainty
    assert np.median(far) > 1.5 * np.median(near)
    with pytest.raises(ModelError, match="no layer 'nope'"):
        LatentDistance(models[0][0], "nope")


def test_ensemble_mean_and_spread(models, frames):
    (a, b), _ = models
    result = Ensemble([a, b]).predict(frames["far"], forces=True)
    ea = a.predict(frames["far"], ["energy"])["energy"].block().values[:, 0]
    eb = b.predict(frames["far"], ["energy"])["energy"].block().values[:, 0]
    np.testing.assert_allclose(result.energy, (ea + eb) / 2, rtol=1e-10)
    np.testing.assert_allclose(result.energy_uncertainty, np.abs(ea - eb) / np.sqrt(2), rtol=1e-8)
    assert result.atom_quantity == "forces" and all(f.shape[1] == 3 for f in result.forces)
    with pytest.raises(ModelError, match="at least 2"):
        Ensemble([a])
    # identical members have no spread: calibration refuses, in one line
    with pytest.raises(DataError, match="not positive"):
        Ensemble([a, a]).calibrate(frames["validation"])


def test_calculator_returns_uncertainties(models, frames):
    model = models[0][0]
    estimator = LLPR(model).fit(frames["train"]).calibrate(frames["validation"])
    atoms = frames["far"][1].copy()
    atoms.calc = UncertaintyCalculator(estimator)
    energy = atoms.get_potential_energy()
    expected = estimator.predict([atoms])
    # the calculator runs in float64, predict in the training precision (float32)
    assert energy == pytest.approx(float(expected.energy[0]), rel=1e-6)
    assert atoms.calc.results["energy_uncertainty"] == pytest.approx(expected.energy_uncertainty[0])
    assert atoms.calc.results["energies_uncertainty"].shape == (len(atoms),)
    assert atoms.get_forces().shape == (len(atoms), 3)
    ensemble = UncertaintyCalculator(Ensemble(models[0]).calibrate(frames["validation"]))
    atoms.calc = ensemble
    atoms.get_potential_energy()
    assert ensemble.results["forces_uncertainty"].shape == (len(atoms),)
    assert np.all(ensemble.results["forces_uncertainty"] > 0)


def test_selection(models, frames):
    model = models[0][0]
    pool = frames["train"][:4] + frames["far"]
    chosen, scores = select_farthest(model, pool, 3, frames["train"])
    # the training frames in the pool are at distance 0: never chosen first
    assert chosen[0] >= 4 and scores[0] > 0 and np.all(np.diff(scores) <= 1e-12)
    estimator = LatentDistance(model).fit(frames["train"])
    picked, sigma = select_by_uncertainty(estimator, pool, 2)
    assert np.all(picked >= 4) and sigma[0] >= sigma[1]
    # LLPR chooses greedily: the copy of a chosen structure is known by then
    llpr = LLPR(model).fit(frames["train"])
    picked, _ = select_by_uncertainty(llpr, frames["far"] + frames["far"], 2)
    assert picked[0] % len(frames["far"]) != picked[1] % len(frames["far"])
    with pytest.raises(DataError, match="cannot select 20"):
        select_by_uncertainty(estimator, pool, 20)


def test_selection_by_variance_reduction(models, frames):
    """Each pick is the pool structure whose label lowers the pool's summed
    LLPR variance most, checked against covariances inverted directly, in a
    pool where one structure has near-copies (they count, the greedy update
    then knows them)."""
    llpr = LLPR(models[0][0]).fit(frames["train"])
    pool = frames["validation"] + frames["far"] + [frames["validation"][0].copy()] * 6
    chosen, gains = select_by_variance_reduction(llpr, pool, 3)
    sums = llpr.rows(pool).structure_sums()
    covariance = np.linalg.inv(selection._inverse_covariance(llpr))

    def summed_variance(matrix):
        return np.einsum("ij,jk,ik->", sums, np.linalg.inv(matrix), sums)

    for pick, gain in zip(chosen, gains):
        before = summed_variance(covariance)
        reductions = [before - summed_variance(covariance + np.outer(f, f)) for f in sums]
        assert pick == int(np.argmax(reductions))
        assert gain == pytest.approx(llpr.scale**2 * reductions[pick], rel=1e-6)
        covariance = covariance + np.outer(sums[pick], sums[pick])
    assert len(set(chosen)) == 3
    with pytest.raises(DataError, match="needs the LLPR estimator"):
        select_by_variance_reduction(LatentDistance(models[0][0]).fit(frames["train"]), pool, 1)


def test_command_lines_and_bad_input(models, frames, tmp_path, capsys):
    (_, _), folder = models
    model = str(folder / "run0" / "model.pt")
    out = tmp_path / "u"
    code = main(["uncertainty", model, str(frames["far_path"]), "--output", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "llpr" and summary["layer"] == "hidden_2"
    assert summary["frames"]["n"] == len(frames["far"])
    rows = (out / "structures.csv").read_text().splitlines()
    assert len(rows) == 1 + len(frames["far"])
    for name in ("atoms.csv", "calibration.png"):
        assert (out / name).stat().st_size > 0
    data = validate_chemiscope(out / "uncertainty.chemiscope.json.gz")
    n_atoms = sum(len(a) for a in frames["far"])
    assert len(data["properties"]["energy uncertainty"]["values"]) == len(frames["far"])
    assert len(data["properties"]["atom energy uncertainty"]["values"]) == n_atoms
    assert data["settings"]["map"]["color"]["property"] == "atom energy uncertainty"
    capsys.readouterr()
    # bad input: one line each, exit 2
    bare = tmp_path / "bare.extxyz"
    ase.io.write(bare, [a.copy() for a in frames["far"][:2]])  # no energies
    gold = frames["far"][0].copy()
    gold.numbers[0] = 79
    alien = tmp_path / "alien.extxyz"
    ase.io.write(alien, [gold])
    cases = [
        (["uncertainty", model, str(bare), "--layer", "nope"], "no layer 'nope'"),
        (["uncertainty", model, str(bare), "--calibration", str(bare)], "frame 0"),
        (
            [
                "data",
                "select",
                str(alien),
                str(tmp_path / "s.extxyz"),
                "--model",
                model,
                "--n",
                "1",
            ],
            "frame 0",
        ),
    ]
    for argv, expected in cases:
        assert (
            main(argv + ["--output", str(tmp_path / "x")] if argv[0] == "uncertainty" else argv)
            == 2
        )
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
    selected = tmp_path / "sel.extxyz"
    code = main(
        [
            "data",
            "select",
            str(frames["far_path"]),
            str(selected),
            "--model",
            model,
            "--n",
            "2",
            "--by",
            "fps",
        ]
    )
    assert code == 0 and len(ase.io.read(selected, ":")) == 2
    table = (tmp_path / "sel.extxyz.selection.csv").read_text().splitlines()
    assert table[0] == "rank,pool_index,distance_to_nearest_known" and len(table) == 3
    argv = ["data", "select", str(frames["far_path"]), str(tmp_path / "vr.extxyz")]
    argv += ["--model", model, "--n", "2", "--by", "variance-reduction"]
    assert main(argv + ["--method", "distance"]) == 2
    assert "needs --method llpr" in capsys.readouterr().err
    assert main(argv) == 0
    table = (tmp_path / "vr.extxyz.selection.csv").read_text().splitlines()
    assert table[0].endswith("pool_variance_reduction_uncalibrated") and len(table) == 3


def test_llpr_force_uncertainty_is_the_finite_difference_one(make_potential, frames):
    """Through autograd of the torch module: equal to the finite differences
    of the structure's rows (float64 model), and returned by the calculator."""
    from equilens.uncertainty.forces import llpr_force_uncertainty

    model = make_potential(12, (8, 6), seed=3)
    model.module.double()
    llpr = LLPR(model).fit(frames["train"]).calibrate(frames["validation"])
    atoms = frames["far"][2]
    sigma = llpr_force_uncertainty(llpr, atoms)
    assert sigma.shape == (len(atoms), 3) and np.all(sigma > 0)
    shift = llpr.regularizer * llpr.eigenvalues.mean()
    factor = llpr.eigenvectors / np.sqrt(llpr.eigenvalues + shift)

    def projected(positions):
        moved = atoms.copy()
        moved.positions = positions
        return factor.T @ llpr.rows([moved]).structure_sums()[0]

    step = 1e-4
    for atom, axis in ((0, 0), (7, 2), (len(atoms) - 1, 1)):
        plus, minus = atoms.positions.copy(), atoms.positions.copy()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        gradient = (projected(plus) - projected(minus)) / (2 * step)
        expected = llpr.scale * np.linalg.norm(gradient)
        assert sigma[atom, axis] == pytest.approx(expected, rel=1e-4), (atom, axis)
    moved = atoms.copy()
    moved.calc = UncertaintyCalculator(llpr)
    moved.get_potential_energy()
    np.testing.assert_allclose(
        moved.calc.results["forces_uncertainty"], np.sqrt(np.mean(sigma**2, axis=1)), rtol=1e-10
    )
    # random projections: seeded, and unbiased (the mean variance over many
    # seeds approaches the exact one; 4 projections of more columns each)
    columns = llpr.layout.n_columns
    assert columns > 4
    once = llpr_force_uncertainty(llpr, atoms, projections=4, seed=1)
    np.testing.assert_array_equal(once, llpr_force_uncertainty(llpr, atoms, projections=4, seed=1))
    assert not np.allclose(once, sigma, rtol=1e-3)
    mean = np.mean(
        [llpr_force_uncertainty(llpr, atoms, projections=4, seed=k) ** 2 for k in range(60)], axis=0
    )
    assert np.mean(mean) == pytest.approx(np.mean(sigma**2), rel=0.1)
    np.testing.assert_array_equal(llpr_force_uncertainty(llpr, atoms, projections=columns), sigma)
