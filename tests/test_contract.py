"""The model contract (equilens.testing.check_model) on every family and adapter.

Each family and adapter in the registry is checked here: layer metadata,
batch-size invariance, Wigner-D rotation and inversion of every block,
permutations, prediction shapes, forces and stress against finite
differences, unknown elements, reload in a fresh process and the metatomic
export. Adapters whose package is not installed skip with the reason; MACE
runs the same checks in its own environment (tests/mace_env).
"""

import importlib.util

import ase.io
import numpy as np
import pytest
import torch

from equilens.data.embedded import embedded_path
from equilens.data.examples import iron_water_example
from equilens.models import FAMILIES
from equilens.testing import CHECKS, check_model

WATER = embedded_path("water_tensors/structures.extxyz")


def _potential(make_potential):
    model = make_potential(10, (6, 5), seed=3, activation="tanh")
    model.module.double()
    model.module.scale.fill_(0.7)
    model.module.baseline.copy_(torch.tensor([-1.0, -2.0, -3.0], dtype=torch.float64))
    return model, iron_water_example(n_frames=2, seed=2, rattle=0.05)


def _tensor(target):
    from equilens.config import from_mapping
    from equilens.data.splits import stratified_split_indices
    from equilens.models.tensor.config import TensorConfig
    from equilens.models.tensor.data import read_tensor_data
    from equilens.models.tensor.task import build_model

    config = from_mapping(
        TensorConfig,
        {
            "data": {"train": str(WATER), "test_fraction": 0.2, "validation_fraction": 0.1},
            "target": {"file": str(WATER.parent / f"{target}.mts")},
            "model": {"hidden": [6], "n_components": 8},
        },
    )
    data = read_tensor_data(config)
    split = stratified_split_indices([len(f) for f in data.frames], 0.2, 0.1, 0)
    model = build_model(config, data, split["train"])
    with torch.no_grad():  # non-trivial weights everywhere, biases included
        for parameter in model.module.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    frames = ase.io.read(WATER, ":")
    return model, [f for f in frames if len(f) == 9][:2]


def _equivariant_potential():
    from equilens.descriptors import PRESETS
    from equilens.descriptors.equivariant import EquivariantFeatures
    from equilens.models.equivariant.config import EquivariantNetworkConfig
    from equilens.models.equivariant.model import EquivariantPotential

    frames = ase.io.read(embedded_path("iron_water_xtb.extxyz"), ":12")
    # a different number of features per lambda: no width may be mixed up
    features = EquivariantFeatures([1, 8, 26], PRESETS["small"].to_featomic(), 2, 4, [7, 5, 4])
    features.fit(frames)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        config = EquivariantNetworkConfig(hidden=(8, 6))
        model = EquivariantPotential.build(features, config, torch.float64)
        with torch.no_grad():  # non-trivial weights everywhere
            for parameter in model.module.parameters():
                parameter.add_(0.1 * torch.randn_like(parameter))
    return model, [frames[2], frames[7]]


def _sevenn():
    if importlib.util.find_spec("sevenn") is None:
        pytest.skip("sevenn is not installed (pip install 'equilens[sevenn]')")
    from equilens.models import load

    frames = ase.io.read(embedded_path("iron_water_xtb.extxyz"), "3:5")
    return load("sevenn:7net-0"), frames


def _metatomic(make_potential, tmp_path_factory):
    from equilens.export.metatomic import export_metatomic
    from equilens.models import load

    potential, frames = _potential(make_potential)
    path = export_metatomic(potential, tmp_path_factory.mktemp("metatomic") / "model.pt")
    return load(path), frames


#: tolerances of each family and adapter, and the checks that must run (not skip)
ALWAYS = {"metadata", "batches", "rotation", "permutation", "predictions", "unknown element"}
ENERGY = ALWAYS | {"inversion", "forces", "stress", "reload"}
CASES = {
    "equilens.potential": ({}, ENERGY | {"export"}),
    "equilens.tensor_model/polarizability": ({}, ALWAYS | {"inversion", "reload", "export"}),
    "equilens.tensor_model/density": ({}, ALWAYS | {"inversion", "reload", "export"}),
    "equilens.equivariant_potential": ({}, ENERGY | {"export"}),
    # float32, built without parity
    "sevenn": ({"atol": 2e-4, "force_atol": 2e-2, "fd_step": 1e-2}, ENERGY - {"inversion"}),
    "metatomic": ({}, ENERGY),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, make_potential, tmp_path_factory):
    name = request.param
    if name == "equilens.potential":
        model, frames = _potential(make_potential)
    elif name == "equilens.equivariant_potential":
        model, frames = _equivariant_potential()
    elif name.startswith("equilens.tensor_model"):
        model, frames = _tensor(name.split("/")[1])
    elif name == "sevenn":
        model, frames = _sevenn()
    else:
        model, frames = _metatomic(make_potential, tmp_path_factory)
    return name, model, frames


def test_every_family_and_adapter_keeps_the_contract(case):
    name, model, frames = case
    report = check_model(model, frames, **CASES[name][0])
    assert list(report) == list(CHECKS)
    if not torch.cuda.is_available():  # the CPU half of the device check ran
        assert report["devices"].startswith("skipped: no CUDA GPU"), report["devices"]
    ran = {check for check, result in report.items() if result == "ok"}
    assert CASES[name][1] <= ran, report


def test_every_registered_model_family_has_a_case():
    """A family added to the registry is added to the contract test too
    (MACE runs it in its own environment: tests/mace_env)."""
    kinds = {f.kind for f in FAMILIES if f.model is not None}
    covered = {name.split("/")[0] for name in CASES} | {"mace"}
    assert kinds <= covered, kinds - covered


def test_a_broken_model_is_caught(make_potential):
    """The contract is not vacuous: a model whose layers ignore the atoms'
    order in one block fails the check that sees it."""
    model, frames = _potential(make_potential)

    class Shuffled(type(model)):
        def layers(self, frames, batch_size=50):
            layers = super().layers(frames, batch_size)
            block = layers["hidden_1"].block(0)
            block.values[:] = np.roll(block.values, 1, axis=0)
            return layers

    broken = Shuffled(model.hypers, model.pca, model.config, model.module, model.metadata)
    with pytest.raises(AssertionError, match="check '(permutation|rotation|batches)'"):
        check_model(broken, frames, skip=["reload", "export", "stress", "forces"])
