"""Scorecard on synthetic features with known answers."""

import numpy as np
import pytest

from equilens.analysis.scorecard import Scorecard


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    n = 600
    height = rng.uniform(0, 5, n)
    state = rng.integers(0, 3, n)
    noise = rng.normal(size=(n, 8))
    encodes = np.column_stack([height, np.eye(3)[state], rng.normal(size=(n, 4))])
    encodes = encodes @ rng.normal(size=(8, 8))  # a linear mix still encodes both labels
    return {"height": height, "state": state}, {"encodes": encodes, "noise": noise}


def test_the_set_that_encodes_the_labels_ranks_first(synthetic):
    labels, features = synthetic
    card = Scorecard(labels, categorical=("state",), seed=1).fit(features)
    scores = card.scores_
    assert scores["encodes"]["decode_height"] > 0.99
    assert scores["noise"]["decode_height"] < 0.05
    assert scores["encodes"]["decode_state"] > 0.99
    assert scores["noise"]["decode_state"] < 0.45  # chance is 1/3
    table = card.table()
    assert [row["feature_set"] for row in table] == ["encodes", "noise"]
    assert table[0]["place"] == 1


def test_information_scores(synthetic):
    labels, features = synthetic
    descriptor = features["encodes"]
    target = labels["height"]
    card = Scorecard(labels, categorical=("state",)).fit(
        features, descriptor=descriptor, target=target
    )
    assert card.scores_["encodes"]["gfre_from_descriptor"] < 1e-6
    assert card.scores_["noise"]["gfre_from_descriptor"] > 0.9
    assert card.scores_["encodes"]["gfre_to_target"] < card.scores_["noise"]["gfre_to_target"]
    for scores in card.scores_.values():
        assert 0 < scores["pca_variance_2d"] <= 1 and 0 < scores["trustworthiness"] <= 1
