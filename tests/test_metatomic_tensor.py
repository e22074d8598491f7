"""Tensor models as metatomic models: the TorchScript module (featomic-torch
lambda-SOAP inside) agrees with the native model on the target and every
layer, its outputs rotate with the Wigner-D matrices, and the exported file
gives the same numbers in a fresh process and through equilens's adapter."""

import json
import subprocess
import sys

import ase.io
import numpy as np
import pytest
import torch

from equilens.config import from_mapping
from equilens.data.embedded import embedded_path
from equilens.data.splits import stratified_split_indices
from equilens.models.tensor.config import TensorConfig
from equilens.models.tensor.data import read_tensor_data
from equilens.models.tensor.task import build_model
from equilens.so3 import random_rotation
from equilens.tensormaps import invariant_summary, to_metatensor_numpy
from equilens.testing import assert_covariant, transformed

DATA = embedded_path("water_tensors/structures.extxyz").parent


def _model(target: str):
    config = from_mapping(
        TensorConfig,
        {
            "data": {"train": str(DATA / "structures.extxyz"), "test_fraction": 0.2},
            "target": {"file": str(DATA / f"{target}.mts")},
            "model": {"hidden": [8, 6], "n_components": 10},
        },
    )
    data = read_tensor_data(config)
    split = stratified_split_indices([len(f) for f in data.frames], 0.2, 0.1, 0)
    model = build_model(config, data, split["train"])
    with torch.no_grad():  # non-trivial weights everywhere (an untrained output is small)
        generator = torch.Generator().manual_seed(4)
        for parameter in model.module.parameters():
            parameter.add_(
                0.3 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
            )
    return model


@pytest.fixture(scope="module", params=["polarizability", "density"])
def model(request):
    return _model(request.param)


@pytest.fixture(scope="module")
def frames():
    return ase.io.read(DATA / "structures.extxyz", ":5")


def _run(module, frames, names, per_atom=True):
    from metatomic.torch import ModelOutput, systems_to_torch

    systems = systems_to_torch(frames, dtype=torch.float64)
    kind = "atom" if per_atom else "system"
    with torch.no_grad():
        return module(systems, {n: ModelOutput(sample_kind=kind) for n in names}, None)


def test_module_agrees_with_the_model(model, frames):
    from equilens.models.tensor.export import tensor_module

    module = torch.jit.script(tensor_module(model))
    target = model.layout.name
    names = [f"equilens::feature/{layer}" for layer in model.layer_names]
    out = _run(module, frames, names + [f"equilens::{target}"], per_atom=model.layout.per_atom)
    native = model.predict(frames)[target]
    for key, block in native.items():
        mine = out[f"equilens::{target}"].block({n: int(key[n]) for n in key.names})
        assert mine.samples.names == block.samples.names
        np.testing.assert_allclose(mine.values.numpy(), block.values, atol=1e-7, rtol=1e-6)
        assert mine.properties.names == block.properties.names
    layers = model.layers(frames)
    out = _run(module, frames, names)
    for layer in model.layer_names:
        for key, block in layers[layer].items():
            mine = out[f"equilens::feature/{layer}"].block({n: int(key[n]) for n in key.names})
            np.testing.assert_allclose(mine.values.numpy(), block.values, atol=1e-7, rtol=1e-6)
    summary = _run(module, frames, ["feature/hidden_2"])["feature/hidden_2"].block()
    expected = invariant_summary(layers["hidden_2"])
    samples = summary.samples.values.numpy()
    rows = {tuple(s): i for i, s in enumerate(samples)}
    for block in expected.blocks():
        picked = [rows[tuple(s)] for s in block.samples.values]
        np.testing.assert_allclose(summary.values.numpy()[picked], block.values, atol=1e-7)


def test_outputs_rotate_with_wigner_d(model, frames):
    from equilens.models.tensor.export import tensor_module

    module = tensor_module(model)
    rotation = random_rotation(3)
    moved = [transformed(atoms, rotation) for atoms in frames]
    names = [f"equilens::{model.layout.name}", "equilens::feature/hidden_1", "feature/hidden_1"]
    before, after = _run(module, frames, names), _run(module, moved, names)
    for name in names[:2]:
        original, rotated = to_metatensor_numpy(before[name]), to_metatensor_numpy(after[name])
        assert assert_covariant(original, rotated, rotation, 1e-8, name) > 0
    np.testing.assert_allclose(
        after["feature/hidden_1"].block().values.numpy(),
        before["feature/hidden_1"].block().values.numpy(),
        atol=1e-9,
    )


def test_exported_file_in_a_fresh_process_and_read_back(model, frames, tmp_path):
    from equilens.export.metatomic import export_metatomic
    from equilens.models import load

    path = export_metatomic(model, tmp_path / "model.pt")
    ase.io.write(tmp_path / "frames.extxyz", frames)
    target = model.layout.name
    kind = "atom" if model.layout.per_atom else "system"
    script = f"""
import json, ase.io, torch
from metatomic.torch import load_atomistic_model, ModelEvaluationOptions, ModelOutput
from metatomic.torch import systems_to_torch
model = load_atomistic_model({str(path)!r}, extensions_directory={str(tmp_path / "extensions")!r})
frames = ase.io.read({str(tmp_path / "frames.extxyz")!r}, ":")
from vesin.metatomic import neighbor_lists_for_model
systems = systems_to_torch(frames, dtype=torch.float64)
for calculator in neighbor_lists_for_model("angstrom", model):
    calculator.add_neighbor_list(systems)
options = ModelEvaluationOptions(length_unit="angstrom",
    outputs={{"equilens::{target}": ModelOutput(sample_kind="{kind}")}})
out = model(systems, options, check_consistency=True)["equilens::{target}"]
print(json.dumps({{"keys": out.keys.values.tolist(),
                   "values": [b.values.tolist() for b in out.blocks()]}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    native = model.predict(frames)[target]
    for key, values in zip(fresh["keys"], fresh["values"]):
        expected = native.block(dict(zip(native.keys.names, key))).values
        np.testing.assert_allclose(np.array(values), expected, atol=1e-7, rtol=1e-6)
    read = load(path)  # equilens's adapter for metatomic models
    layers, native_layers = read.layers(frames), model.layers(frames)
    for layer in model.layer_names:
        for key, block in native_layers[layer].items():
            got = layers[layer].block(key)
            np.testing.assert_allclose(got.values, block.values, atol=1e-5)


def test_chemiscope_featurizer_reads_two_layers_of_a_tensor_model(tmp_path):
    chemiscope = pytest.importorskip("chemiscope")
    from equilens.export.chemiscope import validate_chemiscope
    from equilens.export.metatomic import export_metatomic

    path = export_metatomic(_model("polarizability"), tmp_path / "model.pt")
    frames = ase.io.read(DATA / "structures.extxyz", ":4")
    for layer in ("hidden_1", "hidden_2"):
        output = tmp_path / f"{layer}.json.gz"
        featurizer = chemiscope.metatomic_featurizer(
            str(path), extensions_directory=str(tmp_path / "extensions"), variant=layer
        )
        with pytest.warns(Warning):  # chemiscope still asks for the plural 'features'
            chemiscope.explore(frames, featurizer=featurizer, write_input=str(output))
        data = validate_chemiscope(output)
        assert len(data["structures"]) == len(frames)
