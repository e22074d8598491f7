"""Shared fixtures. Reference data are found through one helper,
:func:`equilens.data.reference.reference_path` ($EQUILENS_DATA, else
../shared/data); tests that need them skip with the reason when absent."""

from __future__ import annotations

import pytest

from equilens.data.reference import reference_path
from equilens.errors import DatasetNotFoundError


@pytest.fixture(scope="session")
def reference():
    """``reference(name)`` -> local path of a reference dataset, or skip."""

    def locate(name: str):
        try:
            return reference_path(name)
        except DatasetNotFoundError as error:
            pytest.skip(f"reference data not available: {error}")

    return locate


@pytest.fixture(scope="session")
def make_potential():
    """``make_potential(n_components, hidden, seed, **model_options)`` -> an
    untrained Potential (small SOAP, PCA fitted on built-in example frames)."""
    import torch

    from equilens.data.examples import iron_water_example
    from equilens.descriptors import PRESETS, compute_soap
    from equilens.features import SpeciesPCA
    from equilens.models import BPNN, BPNNConfig
    from equilens.potential import Potential

    species = (1, 8, 26)
    hypers = PRESETS["small"].to_featomic()

    def build(n_components, hidden, seed=0, fit_frames=4, **model_options):
        frames = iron_water_example(n_frames=fit_frames, seed=1)
        pca = SpeciesPCA(n_components=n_components).fit(compute_soap(frames, species, hypers))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = BPNN(species, n_components, BPNNConfig(hidden=hidden, **model_options))
        return Potential(hypers, pca, model)

    return build
