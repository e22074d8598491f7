"""The model protocol, checked the same way on every family (as scikit-learn
checks every estimator), and model files that cannot run code."""

import json
import subprocess
import sys

import ase.io
import numpy as np
import pytest
import torch

from equilens.data.embedded import embedded_path
from equilens.data.examples import iron_water_example
from equilens.errors import FileFormatError, ModelError
from equilens.models import Model, energies_and_forces, load

WATER = embedded_path("water_tensors/structures.extxyz")


def _tensor_model():
    from equilens.config import from_mapping
    from equilens.data.splits import stratified_split_indices
    from equilens.models.tensor.config import TensorConfig
    from equilens.models.tensor.data import read_tensor_data
    from equilens.models.tensor.task import build_model

    config = from_mapping(
        TensorConfig,
        {
            "data": {"train": str(WATER), "test_fraction": 0.2, "validation_fraction": 0.1},
            "target": {"file": str(WATER.parent / "polarizability.mts")},
            "model": {"hidden": [6], "n_components": 8},
        },
    )
    data = read_tensor_data(config)
    split = stratified_split_indices([len(f) for f in data.frames], 0.2, 0.1, 0)
    return build_model(config, data, split["train"]), ase.io.read(WATER, ":4")


@pytest.fixture(scope="module", params=["potential", "tensor_model"])
def family(request, make_potential):
    """``(model, frames)`` of each equilens family, untrained but non-trivial."""
    if request.param == "potential":
        return make_potential(10, (6,), seed=3), iron_water_example(n_frames=2, seed=2)
    return _tensor_model()


def test_layers_follow_the_metadata_conventions(family):
    model, frames = family
    assert isinstance(model, Model) and model.kind.startswith("equilens.")
    layers = model.layers(frames, batch_size=1)
    assert list(layers) == model.layer_names
    assert model.layer_names[0] == "input" and model.layer_names[-1] == "output"
    n_atoms = sum(len(f) for f in frames)
    for name, tensor in layers.items():
        equivariant = "o3_lambda" in tensor.keys.names
        keys = ["o3_lambda", "o3_sigma", "center_type"] if equivariant else ["center_type"]
        assert tensor.keys.names == keys, name
        for block in tensor.blocks():
            assert block.samples.names == ["system", "atom"], name
            assert isinstance(block.values, np.ndarray) and block.values.dtype == np.float64
            if equivariant:
                assert block.components[0].names == ["o3_mu"]
            else:
                assert block.components == []
        if not equivariant:
            assert sum(len(b.samples) for b in tensor.blocks()) == n_atoms
        # batches are joined with global system ids
        systems = np.concatenate([b.samples.column("system") for b in tensor.blocks()])
        assert sorted(set(systems.tolist())) == list(range(len(frames)))


def test_predict_gives_tensormaps(family):
    model, frames = family
    prediction = model.predict(frames)
    assert prediction and all(hasattr(t, "keys") for t in prediction.values())
    if "energy" in prediction:
        energies, forces = energies_and_forces(prediction)
        assert energies.shape == (len(frames),)
        assert [f.shape for f in forces] == [(len(f), 3) for f in frames]
        block = prediction["forces"].block()
        assert block.components[0].names == ["xyz"]


def test_unknown_elements_are_named(family):
    model, frames = family
    strange = frames[0].copy()
    strange.numbers[0] = 79  # gold
    with pytest.raises(ModelError, match=r"frame 0 contains Au \(Z=79\)"):
        model.layers([strange])


def test_same_layers_after_reload_in_a_fresh_process(family, tmp_path):
    model, frames = family
    path = model.save(tmp_path / "model.pt")
    ase.io.write(tmp_path / "frames.extxyz", frames)
    script = f"""
import ase.io, numpy as np
from equilens.models import load
model = load({str(path)!r})
layers = model.layers(ase.io.read({str(tmp_path / "frames.extxyz")!r}, ":"))
np.savez({str(tmp_path / "fresh.npz")!r}, **{{
    f"{{n}}/{{i}}": b.values for n, t in layers.items() for i, b in enumerate(t.blocks())
}})
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    fresh = np.load(tmp_path / "fresh.npz")
    for name, tensor in model.layers(ase.io.read(tmp_path / "frames.extxyz", ":")).items():
        for index, block in enumerate(tensor.blocks()):
            np.testing.assert_allclose(fresh[f"{name}/{index}"], block.values, atol=1e-6)
    assert type(load(path)) is type(model)


class _Payload:
    """Pickles into a call that would create a file: a stand-in for malware."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_model_files_cannot_run_code(tmp_path, make_potential):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"equilens": {"kind": "equilens.potential"}, "x": _Payload(str(marker))}, evil)
    with pytest.raises(FileFormatError, match="refused.*pickled"):
        load(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda p: p.write_bytes(np.random.default_rng(7).bytes(4096)), "not a readable"),
        (lambda p: p.write_text("a: 1\n"), "not a readable model file"),
        (lambda p: torch.save([1, 2, 3], p), "not an equilens model file"),
        (lambda p: torch.save({"weights": torch.ones(3)}, p), "not an equilens model file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, "no such model file"),
    ],
    ids=["random-bytes", "text", "list", "foreign-dict", "directory", "missing"],
)
def test_bad_model_files_are_named(tmp_path, content, message):
    path = tmp_path / "model.pt"
    content(path)
    with pytest.raises(FileFormatError, match=message) as error:
        load(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_truncated_and_mismatched_model_files(tmp_path, make_potential):
    from equilens.models.tensor.model import TensorModel

    path = make_potential(8, (4,)).save(tmp_path / "model.pt")
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="cut.pt: not a readable model file"):
        load(tmp_path / "cut.pt")
    with pytest.raises(ModelError, match="holds a equilens.potential model, not a equilens.tensor"):
        TensorModel.load(path)
    header = torch.load(path, weights_only=True)
    header["equilens"]["format_version"] = 99
    torch.save(header, tmp_path / "future.pt")
    with pytest.raises(FileFormatError, match="format 99 is not supported"):
        load(tmp_path / "future.pt")
    assert json.loads(json.dumps(header["equilens"]["versions"]))["torch"] == torch.__version__
