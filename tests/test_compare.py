"""Reconstruction measures through equilens, against known answers."""

import numpy as np
import pytest
from metatensor import Labels, TensorBlock, TensorMap

from equilens.analysis.compare import compare
from equilens.errors import EquilensError


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    return {
        "x": x,
        "noise": rng.normal(size=(400, 6)),
        "linear": x @ rng.normal(size=(6, 3)),  # a linear function of x, narrower
    }


def test_known_answers(data):
    result = compare(data, measures=("gfre", "gfrd", "lfre"), lfre_samples=200, lfre_neighbors=50)
    index = {name: i for i, name in enumerate(result.names)}
    gfre = result.matrices["gfre"]
    assert gfre[index["x"], index["x"]] < 1e-6
    assert gfre[index["x"], index["noise"]] > 0.9
    assert gfre[index["x"], index["linear"]] < 1e-6
    assert gfre[index["linear"], index["x"]] > 0.3  # 3 of 6 directions are lost
    # GFRD from a wider source to a narrower target works (zero padding)
    assert np.isfinite(result.matrices["gfrd"][index["x"], index["linear"]])
    assert result.matrices["lfre"][index["x"], index["x"]] < 1e-3
    assert len(result.table) == 3 * 3 * 3


def test_degenerate_ch4_manifold_matches_skmatter():
    from skmatter.datasets import load_degenerate_CH4_manifold
    from skmatter.metrics import global_reconstruction_error
    from skmatter.model_selection import train_test_split

    data = load_degenerate_CH4_manifold().data
    x3, x4 = data.SOAP_power_spectrum, data.SOAP_bispectrum
    # scikit-matter's default split
    train, test = train_test_split(
        np.arange(len(x3)),
        test_size=0.5,
        train_size=0.5,
        random_state=0x5F3759DF,
        shuffle=True,
        train_test_overlap=False,
    )
    result = compare({"3-body": x3, "4-body": x4}, measures=("gfre",), split=(train, test))
    forward, backward = result.matrices["gfre"][0, 1], result.matrices["gfre"][1, 0]
    assert forward == pytest.approx(global_reconstruction_error(x3, x4), abs=1e-12)
    assert forward == pytest.approx(0.229, abs=0.002)
    assert backward < 1e-3


def test_tensormaps_are_aligned_by_samples():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(10, 4))
    samples = np.array([[s, a] for s in range(2) for a in range(5)], dtype=np.int32)

    def tensor(rows, vals):
        species = np.array([1, 8] * 5)[rows[:, 1]]
        blocks = []
        for z in (1, 8):
            mask = species == z
            blocks.append(
                TensorBlock(
                    vals[mask],
                    Labels(["system", "atom"], rows[mask]),
                    [],
                    Labels.range("feature", vals.shape[1]),
                )
            )
        return TensorMap(Labels(["center_type"], np.array([[1], [8]], dtype=np.int32)), blocks)

    a = tensor(samples, values)
    shuffled = np.random.default_rng(2).permutation(10)
    b = tensor(samples[shuffled], values[shuffled])  # same rows, other order
    result = compare({"a": a, "b": b}, measures=("gfre",), n_samples=10, train_fraction=0.6)
    assert result.matrices["gfre"][0, 1] < 1e-6


def test_selected_rows_of_blocks_are_the_stacked_rows():
    """A comparison gathers only its chosen rows from the blocks: the same
    rows, in sample order, as stacking every block first."""
    from equilens.tensormaps import StackedBlocks, stack_blocks

    rng = np.random.default_rng(3)
    rows = np.array([[s, a] for s in range(4) for a in range(6)], dtype=np.int32)
    rows = rows[rng.permutation(len(rows))]
    species = rng.choice([1, 8, 26], len(rows))
    values = rng.normal(size=(len(rows), 3))
    blocks = [
        TensorBlock(
            values[species == z],
            Labels(["system", "atom"], rows[species == z]),
            [],
            Labels.range("feature", 3),
        )
        for z in (1, 8, 26)
    ]
    tensor = TensorMap(Labels(["center_type"], np.array([[1], [8], [26]], dtype=np.int32)), blocks)
    stacked, samples = stack_blocks(tensor, "t")
    order = np.lexsort(rows.T[::-1])
    np.testing.assert_array_equal(stacked, values[order])
    np.testing.assert_array_equal(samples.values, rows[order])
    chosen = np.sort(rng.choice(len(rows), 9, replace=False))
    np.testing.assert_array_equal(StackedBlocks(tensor, "t").rows(chosen), stacked[chosen])
    other = rng.normal(size=(len(rows), 2))
    by_map = compare({"t": tensor, "o": other[order]}, measures=("gfre",), n_samples=20)
    by_array = compare({"t": stacked, "o": other[order]}, measures=("gfre",), n_samples=20)
    np.testing.assert_array_equal(by_map.matrices["gfre"], by_array.matrices["gfre"])


def test_files_without_a_structure_fingerprint_are_named(tmp_path, capsys):
    """.mts files written by another tool carry no structure fingerprint:
    `equilens compare` says it could not check their structures."""
    import metatensor

    from equilens.cli import main

    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        block = TensorBlock(rng.normal(size=(40, 3)), Labels.range("sample", 40), [],
                            Labels.range("feature", 3))  # fmt: skip
        metatensor.save(str(tmp_path / f"{name}.mts"), TensorMap(Labels.single(), [block]))
    files = [str(tmp_path / "a.mts"), str(tmp_path / "b.mts")]
    with pytest.warns(UserWarning, match="'a', 'b' carry no structure fingerprint"):
        assert main(["compare", *files, "--measures", "gfre", "--output", str(tmp_path / "o")]) == 0


def test_errors(data):
    with pytest.raises(EquilensError, match="unknown measures"):
        compare(data, measures=("gfre", "mmd"))
    with pytest.raises(EquilensError, match="constant"):
        compare({"x": data["x"], "c": np.ones((400, 3))})
    with pytest.raises(EquilensError, match="different numbers of samples"):
        compare({"x": data["x"], "y": data["x"][:10]})
    with pytest.raises(EquilensError, match="lfre_neighbors"):
        compare(data, measures=("lfre",), lfre_samples=20, lfre_neighbors=50)


def test_outputs(data, tmp_path):
    import csv
    import json

    from equilens.export.comparisons import save_comparison

    result = compare(data, measures=("gfre", "gfrd"))
    files = save_comparison(result, tmp_path / "cmp")
    rows = list(csv.DictReader(open(files["table"])))
    assert len(rows) == 2 * 9 and {r["measure"] for r in rows} == {"gfre", "gfrd"}
    matrices = json.loads(open(files["matrices"]).read())
    assert np.allclose(matrices["matrices"]["gfre"], result.matrices["gfre"])
    assert (tmp_path / "cmp" / "heatmap_gfre.png").stat().st_size > 5000


def _related_sets(shape):
    """A correlated source (``shape``) and a noisy nonlinear function of it
    (6 columns), and the generator that made them."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape) @ rng.normal(size=(shape[1], shape[1]))
    y = np.tanh(x[:, :5] @ rng.normal(size=(5, 6))) + 0.1 * rng.normal(size=(shape[0], 6))
    return x, y, rng


@pytest.mark.parametrize("shape", [(300, 8), (120, 40)])
def test_factorized_estimator_reproduces_skmatter(shape):
    """The fast estimator gives skmatter's default measures (wide and narrow sources)."""
    from skmatter.metrics import (
        global_reconstruction_distortion,
        global_reconstruction_error,
        local_reconstruction_error,
    )

    from equilens.analysis.estimators import FactorizedRidge2FoldCV

    x, y, rng = _related_sets(shape)
    train, test = np.arange(0, shape[0], 2), np.arange(1, shape[0], 2)
    # cache_min_samples=0: the cached path is exercised on these small sets
    fast = FactorizedRidge2FoldCV(cache_min_samples=0)
    for a, b in ((x, y), (y, x)):
        for _ in range(2):  # the second call reuses the cached factorisation
            ours = global_reconstruction_error(a, b, train_idx=train, test_idx=test, estimator=fast)
            assert ours == pytest.approx(
                global_reconstruction_error(a, b, train_idx=train, test_idx=test), rel=1e-9
            )
        wide = b if b.shape[1] >= a.shape[1] else np.hstack([b, np.zeros((len(b), 2))])
        if wide.shape[1] == a.shape[1]:
            ours = global_reconstruction_distortion(
                a, wide, train_idx=train, test_idx=test, estimator=fast
            )
            assert ours == pytest.approx(
                global_reconstruction_distortion(a, wide, train_idx=train, test_idx=test),
                rel=1e-9,
            )
        ours = local_reconstruction_error(
            a, b, 30, train_idx=train, test_idx=test[:20], estimator=fast
        )
        assert ours == pytest.approx(
            local_reconstruction_error(a, b, 30, train_idx=train, test_idx=test[:20]), rel=1e-9
        )


@pytest.mark.parametrize("shape", [(300, 8), (120, 40), (120, 75)])
def test_measures_of_many_targets_at_once_equal_skmatter(shape):
    """One fit per source (per test point for LFRE) serves every target, each
    with its own cutoff: scikit-matter's GFRE, GFRD (target zero-padded to
    the source's width where narrower) and LFRE with its default estimator,
    target by target (targets wider and narrower than the source, noise, the
    source itself; a source wider than its 60 training rows, whose local
    fits run in the span of those rows)."""
    from skmatter.metrics import (
        global_reconstruction_distortion,
        global_reconstruction_error,
        local_reconstruction_error,
    )

    from equilens.analysis.reconstruction import global_measures, local_reconstruction_errors

    x, y, rng = _related_sets(shape)
    noise = 100.0 + rng.normal(size=(shape[0], 2))  # offset: the scaler centres it
    train, test = np.arange(0, shape[0], 2), np.arange(1, shape[0], 2)[:25]
    for source in (x, y):
        targets = [x, y, noise, np.hstack([y, x])]
        errors, distortions = global_measures(source, targets, train, test)
        for target, error, distortion in zip(targets, errors, distortions):
            reference = global_reconstruction_error(source, target, train_idx=train, test_idx=test)
            assert error == pytest.approx(reference, rel=1e-9, abs=1e-12)
            if target.shape[1] <= source.shape[1]:  # scikit-matter needs it padded
                pad = np.zeros((len(target), source.shape[1] - target.shape[1]))
                reference = global_reconstruction_distortion(
                    source, np.hstack([target, pad]), train_idx=train, test_idx=test
                )
                # abs: |x|^2 - |xU|^2 of the thin form cancels to ~1e-15 when the
                # target spans the source (a GFRD of ~3e-8 instead of ~1e-15)
                assert distortion == pytest.approx(reference, rel=1e-7, abs=1e-7)
        ours = local_reconstruction_errors(source, targets, 30, train, test)
        reference = [
            local_reconstruction_error(source, t, 30, train_idx=train, test_idx=test)
            for t in targets
        ]
        # the source onto itself is round-off (1e-15): absolute tolerance there
        np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)
        assert ours[2] > 0.5 and min(ours[:2]) < ours[2]  # noise is not reconstructed


def test_fps_selection_reaches_outliers():
    """Farthest-point sampling picks the isolated points that random sampling misses."""
    rng = np.random.default_rng(4)
    cluster = 0.01 * rng.normal(size=(995, 3))
    outliers = 10.0 * np.eye(3)[[0, 1, 2, 0, 1]] * np.array([1, 1, 1, -1, -1])[:, None]
    x = np.vstack([cluster, outliers])
    y = np.hstack([x, x**2])
    from equilens.analysis.sampling import _select

    for selection in ("fps", "random"):
        result = compare(
            {"x": x, "y": y}, measures=("gfre",), n_samples=20, selection=selection, seed=1
        )
        assert result.n_samples == 20

    picked = _select(x, 20, "fps", np.random.default_rng(1))
    assert set(range(995, 1000)) <= set(picked.tolist())
    again = _select(x, 20, "fps", np.random.default_rng(1))
    assert np.array_equal(picked, again)
    random = _select(x, 20, "random", np.random.default_rng(1))
    assert len(set(range(995, 1000)) & set(random.tolist())) < 5


def _species_tensor(values, species, per_species):
    samples = np.array([[0, i] for i in range(len(values))], dtype=np.int32)
    if per_species:
        blocks, keys = [], []
        for z in np.unique(species):
            mask = species == z
            keys.append([z])
            blocks.append(
                TensorBlock(
                    values[mask],
                    Labels(["system", "atom"], samples[mask]),
                    [],
                    Labels.range("feature", values.shape[1]),
                )
            )
        return TensorMap(Labels(["center_type"], np.array(keys, dtype=np.int32)), blocks)
    rows = np.hstack([samples, species[:, None]]).astype(np.int32)
    block = TensorBlock(
        values,
        Labels(["system", "atom", "center_type"], rows),
        [],
        Labels.range("feature", values.shape[1]),
    )
    return TensorMap(Labels.single(), [block])


@pytest.mark.parametrize("per_species", [True, False])
def test_compare_by_species(per_species):
    """Each species is its own space: linear per species, not across species."""
    from equilens.analysis.compare import compare_by_species

    rng = np.random.default_rng(5)
    n = 600
    species = np.where(np.arange(n) % 3 == 0, 8, 1)
    x = rng.normal(size=(n, 5))
    # a different linear map per species: exactly linear within each species
    maps = {1: rng.normal(size=(5, 4)), 8: rng.normal(size=(5, 4))}
    y = np.stack([x[i] @ maps[z] for i, z in enumerate(species)])
    features = {
        "x": _species_tensor(x, species, per_species),
        "y": _species_tensor(y, species, per_species),
    }
    results = compare_by_species(features, measures=("gfre",))
    assert list(results) == [1, 8]
    for result in results.values():
        assert result.matrices["gfre"][0, 1] < 1e-6
    # over all atoms at once the map is not linear
    merged = compare({"x": x, "y": y}, measures=("gfre",))
    assert merged.matrices["gfre"][0, 1] > 0.1
    with pytest.raises(EquilensError, match="different center species"):
        compare_by_species({"x": features["x"], "y": _species_tensor(y, species * 0 + 1, True)})


@pytest.mark.parametrize("widths", [(12, 5), (5, 12), (7, 7)])
def test_thin_gfrd_equals_skmatter_on_the_padded_problem(widths):
    from skmatter.metrics import global_reconstruction_distortion

    from equilens.analysis.reconstruction import global_reconstruction_distortion_thin

    p, q = widths
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, p)) @ rng.normal(size=(p, p))
    y = np.tanh(x @ rng.normal(size=(p, q)) / 3) + 0.2 * rng.normal(size=(300, q))
    train, test = np.arange(0, 300, 2), np.arange(1, 300, 2)
    padded = np.hstack([y, np.zeros((300, max(0, p - q)))])
    expected = global_reconstruction_distortion(x, padded, train_idx=train, test_idx=test)
    ours = global_reconstruction_distortion_thin(x, y, train, test)
    assert ours == pytest.approx(expected, rel=1e-8)


def test_lfre_in_worker_processes_gives_the_same_values(data):
    one = compare(data, measures=("lfre",), lfre_samples=200, lfre_neighbors=30, n_jobs=1)
    two = compare(data, measures=("lfre",), lfre_samples=200, lfre_neighbors=30, n_jobs=2)
    assert np.array_equal(one.matrices["lfre"], two.matrices["lfre"])


def test_a_handful_of_samples_is_flagged():
    """Six samples of twenty features: the GFRE is then the ridge's noise
    (a set reconstructed from itself far from 0), and says so."""
    rng = np.random.default_rng(1)
    few = {"a": rng.normal(size=(6, 20)), "b": rng.normal(size=(6, 20))}
    with pytest.warns(UserWarning, match="GFRE/GFRD: 3 training rows for up to 20 features"):
        compare(few, measures=("gfre",))
    enough = {"a": rng.normal(size=(200, 20)), "b": rng.normal(size=(200, 20))}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compare(enough, measures=("gfre",))
