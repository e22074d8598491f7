"""Reconstruction measures through equilens, against known answers."""

import numpy as np
import pytest
from metatensor import Labels, TensorBlock, TensorMap

from equilens.compare import compare
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

    from equilens.compare import save_comparison

    result = compare(data, measures=("gfre", "gfrd"))
    files = save_comparison(result, tmp_path / "cmp")
    rows = list(csv.DictReader(open(files["table"])))
    assert len(rows) == 2 * 9 and {r["measure"] for r in rows} == {"gfre", "gfrd"}
    matrices = json.loads(open(files["matrices"]).read())
    assert np.allclose(matrices["matrices"]["gfre"], result.matrices["gfre"])
    assert (tmp_path / "cmp" / "heatmap_gfre.png").stat().st_size > 5000
