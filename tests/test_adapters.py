"""Adapters of external models: every layer kept equivariant, proven by
rotating the input; predictions equal the package's own; bad specs named."""

import os
import subprocess
import sys

import ase.io
import numpy as np
import pytest
import torch

from equilens.data.embedded import embedded_path
from equilens.errors import FileFormatError, ModelError
from equilens.so3 import random_rotation
from equilens.testing import assert_covariant, transformed


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        message = f"{module} not installed (pip install -e '.[test]')"
        if os.environ.get("EQUILENS_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def sevennet():
    _require("sevenn")
    from equilens.models import load

    return load("sevenn:7net-0")


@pytest.fixture(scope="module")
def slab():
    """A 27-atom Fe(110)/water frame of the embedded xTB set."""
    return ase.io.read(embedded_path("iron_water_xtb.extxyz"), "3")


@pytest.mark.parametrize("seed", [0, 1])
def test_sevennet_layers_rotate_with_wigner_d(sevennet, slab, seed):
    """Every lambda > 0 block transforms with equilens.so3's Wigner-D matrix
    (1e-4 relative, float32 model) and lambda = 0 blocks do not change."""
    rotation = random_rotation(seed)
    original = sevennet.layers([slab])
    rotated = sevennet.layers([transformed(slab, rotation)])
    assert list(original) == sevennet.layer_names
    covariant = changed = 0
    for name, tensor in original.items():
        if "o3_lambda" in tensor.keys.names:
            covariant += sum(int(key["o3_lambda"]) > 0 for key in tensor.keys)
            for block in tensor.blocks():
                assert block.components[0].names == ["o3_mu"]
        changed += assert_covariant(tensor, rotated[name], rotation, 1e-4, name)
    assert covariant >= 2 * 4 * 3  # l = 1, 2 of four interactions, three species
    assert changed >= covariant  # not vacuous: every covariant block does change


def test_sevennet_follows_the_protocol(sevennet, slab):
    from equilens.analysis.latents import latents
    from equilens.models import Model, energies_and_forces

    assert isinstance(sevennet, Model) and sevennet.parity_equivariant is False
    assert set(sevennet.species) >= {1, 8, 26} and len(sevennet.species) >= 80
    layers = sevennet.layers([slab, slab], batch_size=1)
    hidden = layers["interaction_2"]
    assert hidden.keys.names == ["o3_lambda", "o3_sigma", "center_type"]
    systems = np.concatenate([b.samples.column("system") for b in hidden.blocks()])
    assert sorted(set(systems.tolist())) == [0, 1]
    # the invariant summaries feed the scalar analyses
    pooled = latents(sevennet, [slab], per_species=False, pooling="mean")
    assert pooled["interaction_2"].block().values.shape == (1, 128 + 64 + 32)
    energies, forces = energies_and_forces(sevennet.predict([slab]))
    assert forces[0].shape == (len(slab), 3)
    # the same numbers as sevenn's own calculator (its shipped, trusted file)
    from sevenn.calculator import SevenNetCalculator

    atoms = slab.copy()
    atoms.calc = SevenNetCalculator("7net-0", device="cpu")
    assert energies[0] == pytest.approx(atoms.get_potential_energy(), abs=1e-4)
    np.testing.assert_allclose(forces[0], atoms.get_forces(), atol=1e-4)
    # the summed atomic energies (output layer) are the energy
    total = sum(b.values.sum() for b in layers["output"].blocks()) / 2
    assert total == pytest.approx(energies[0], abs=1e-3)


def test_sevennet_bad_input_is_named(sevennet, slab, tmp_path, monkeypatch):
    from equilens.models import load

    with pytest.raises(ModelError, match="7net-99: not a checkpoint file nor a shipped model"):
        load("sevenn:7net-99")
    strange = slab.copy()
    strange.numbers[0] = 100  # Fm: not one of SevenNet-0's 89 elements
    with pytest.raises(ModelError, match=r"frame 0 contains Fm \(Z=100\)"):
        sevennet.layers([strange])

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "PWNED"), "w"))

    evil = tmp_path / "evil.pth"
    torch.save({"config": {}, "model_state_dict": {}, "x": Payload()}, evil)
    refused = "refused: this SevenNet checkpoint contains"
    with pytest.raises(FileFormatError, match=refused) as caught:
        load(f"sevenn:{evil}")
    assert "weights_only" not in str(caught.value)  # no advice to load it unsafely
    assert not (tmp_path / "PWNED").exists()
    monkeypatch.setitem(sys.modules, "sevenn", None)  # as if the extra were missing
    with pytest.raises(ModelError, match=r"pip install 'equilens\[sevenn\]'"):
        load("sevenn:7net-0")
    with pytest.raises(ModelError, match="unknown model spec 'mace-mp:'"):
        load("mace-mp:medium")


def test_sevennet_leaves_torchscript_working():
    """Loading SevenNet (which imports torch_geometric, which patches
    torch.index_select) must not break metatensor-torch imported afterwards in
    the same process: the calculator and the metatomic export need it."""
    _require("sevenn")
    code = (
        "from equilens.models import load\n"
        "load('sevenn:7net-0')\n"
        "import metatensor.torch\n"
        "print(metatensor.torch.Labels.range('x', 2))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_mace_without_its_extra_is_named(tmp_path):
    """In an environment without mace-torch (the main one: mace pins e3nn 0.4),
    a MACE file gives one line saying what to install."""
    import importlib.util

    from equilens.models import load

    if importlib.util.find_spec("mace") is not None:
        pytest.skip("mace-torch is installed here; tests/mace_env covers it")
    path = tmp_path / "small.model"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ModelError, match=r"pip install 'equilens\[mace\]'"):
        load(path)
    with pytest.raises(ModelError, match="missing.model: no such MACE model file"):
        load(f"mace:{tmp_path / 'missing.model'}")
