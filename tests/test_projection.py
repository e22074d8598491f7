"""Map projections: PCA, PCovR, UMAP."""

import numpy as np
import pytest

from equilens.analysis.projection import Projector
from equilens.errors import ConfigError, EquilensError


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) * np.array([5.0, 4.0, 1.0, 1.0, 0.5, 0.2])
    y = x[:, 4] * 3.0  # the target lives in a low-variance direction
    return x, y


def test_pca_matches_scikit_learn(data):
    from sklearn.decomposition import PCA

    x, _ = data
    ours = Projector("pca").fit_transform(x)
    centred = x - x.mean(0)
    theirs = PCA(2).fit_transform(centred / np.sqrt((centred**2).sum(1).mean()))
    assert np.allclose(np.abs(ours), np.abs(theirs), atol=1e-8)


def test_pcovr_follows_the_target(data):
    x, y = data
    pca = Projector("pca").fit_transform(x)
    pcovr = Projector("pcovr", mixing=0.1).fit_transform(x, y)

    def best_correlation(z):
        return max(abs(np.corrcoef(z[:, i], y)[0, 1]) for i in range(z.shape[1]))

    assert best_correlation(pcovr) > 0.9 > best_correlation(pca) + 0.3


def test_fit_on_a_subset_transforms_everything(data):
    x, _ = data
    z = Projector("pca", max_fit_samples=50, seed=3).fit_transform(x)
    assert z.shape == (300, 2)
    again = Projector("pca", max_fit_samples=50, seed=3).fit_transform(x)
    assert np.array_equal(z, again)


def test_umap_is_seeded(data):
    pytest.importorskip("umap", reason="umap-learn not installed (pip install equilens[umap])")
    x, _ = data
    one = Projector("umap", seed=1).fit_transform(x[:120])
    two = Projector("umap", seed=1).fit_transform(x[:120])
    assert one.shape == (120, 2) and np.allclose(one, two)


def test_errors(data):
    x, _ = data
    with pytest.raises(ConfigError, match="projection method"):
        Projector("tsne")
    with pytest.raises(EquilensError, match="PCovR needs a target"):
        Projector("pcovr").fit(x)
    with pytest.raises(EquilensError, match="NaN"):
        Projector("pca").fit(np.full((10, 3), np.nan))
