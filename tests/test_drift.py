"""Latent drift between models with the same layers (base, fine-tuned, scratch)."""

from __future__ import annotations

import pytest

from equilens.analysis import latent_drift
from equilens.data.examples import iron_water_example
from equilens.errors import EquilensError


@pytest.fixture(scope="module")
def frames():
    return iron_water_example(n_frames=6, seed=2)


def test_identical_models_do_not_drift_and_others_do(make_potential, frames, tmp_path):
    base = make_potential(8, (16, 16), seed=0)
    same = make_potential(8, (16, 16), seed=0)  # the same weights, built again
    other = make_potential(8, (16, 16), seed=5)  # same projection, other weights
    pairs = [("same", "base"), ("other", "base")]
    rows = latent_drift({"base": base, "same": same, "other": other}, frames, pairs)
    by_layer = {row["layer"]: row for row in rows}
    assert list(by_layer) == base.layer_names
    # the input (the shared SOAP projection) is the same in all three models
    assert by_layer["input"]["gfre_other_to_base"] < 1e-3
    for layer in ("hidden_1", "hidden_2"):
        row = by_layer[layer]
        # the same layer: only the ridge regularisation of GFRE is left
        assert row["gfre_same_to_base"] < 0.05 and row["gfre_base_to_same"] < 0.05
        assert row["cka_same_base"] == pytest.approx(1.0, abs=1e-6)
        assert row["cka_other_base"] < row["cka_same_base"] - 1e-3
        assert row["gfre_other_to_base"] > 0.3 and row["gfre_base_to_other"] > 0.3

    from equilens.export.plots import plot_drift

    path = plot_drift(rows, pairs, tmp_path / "drift.png", "test")
    assert path.stat().st_size > 10_000


def test_unknown_pair_or_layer_is_named(make_potential, frames):
    base = make_potential(8, (16,), seed=0)
    with pytest.raises(EquilensError, match="names a model"):
        latent_drift({"base": base}, frames, [("base", "tuned")])
    with pytest.raises(EquilensError, match="hidden_7"):
        latent_drift({"base": base, "b": base}, frames, [("base", "b")], layers=["hidden_7"])
