"""Latents of every layer: layouts, pooling, round trip through files."""

import numpy as np
import pytest
import torch

from equilens.analysis.latents import latents, load_latents, save_latents
from equilens.data.examples import iron_water_example
from equilens.descriptors import PRESETS
from equilens.errors import EquilensError

SPECIES = (1, 8, 26)
HYPERS = PRESETS["small"].to_featomic()


@pytest.fixture(scope="module")
def setup(make_potential):
    frames = iron_water_example(n_frames=3, seed=4)
    return make_potential(8, (6, 5), seed=1), frames


def test_every_layer_in_order(setup):
    potential, frames = setup
    layers = latents(potential, frames, batch_size=2)
    assert list(layers) == ["input", "hidden_1", "hidden_2", "output"]
    n_atoms = sum(len(f) for f in frames)
    for name, width in zip(layers, (8, 6, 5, 1)):
        assert sum(b.values.shape[0] for b in layers[name].blocks()) == n_atoms
        assert all(b.values.shape[1] == width for b in layers[name].blocks())
    # batching does not change the numbers
    again = latents(potential, frames, batch_size=3)
    for name in layers:
        for a, b in zip(layers[name].blocks(), again[name].blocks()):
            np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6)
            assert a.samples == b.samples


def test_single_block_keeps_the_species(setup):
    potential, frames = setup
    merged = latents(potential, frames, per_species=False)["hidden_1"]
    assert len(merged.keys) == 1
    block = merged.block(0)
    assert block.samples.names == ["system", "atom", "center_type"]
    samples = block.samples.values
    for s, a, z in samples[:20]:
        assert frames[s].numbers[a] == z
    # rows in (system, atom) order
    assert np.all(np.diff(samples[:, 0] * 10_000 + samples[:, 1]) > 0)


@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_pooling(setup, pooling):
    potential, frames = setup
    atoms = latents(potential, frames, per_species=False)["output"].block(0)
    pooled = latents(potential, frames, per_species=False, pooling=pooling)["output"].block(0)
    assert pooled.samples.names == ["system"]
    assert pooled.values.shape == (len(frames), 1)
    for index in range(len(frames)):
        rows = atoms.values[atoms.samples.column("system") == index]
        expected = rows.mean(axis=0) if pooling == "mean" else rows.sum(axis=0)
        np.testing.assert_allclose(pooled.values[index], expected, rtol=1e-6)
    # the summed atomic energies are the energies
    if pooling == "sum":
        energies, _ = potential.energies_and_forces(frames, forces=False)
        np.testing.assert_allclose(pooled.values[:, 0], energies, rtol=1e-5)


def test_round_trip(setup, tmp_path):
    potential, frames = setup
    layers = latents(potential, frames)
    save_latents(tmp_path / "latents", layers)
    loaded = load_latents(tmp_path / "latents")
    assert list(loaded) == list(layers)
    import metatensor

    for name in layers:
        assert metatensor.equal(loaded[name], layers[name])
    with pytest.raises(EquilensError, match="no layers.json"):
        load_latents(tmp_path)


def test_bad_arguments(setup):
    potential, frames = setup
    with pytest.raises(EquilensError, match="pooling must be"):
        latents(potential, frames, pooling="max")
    with pytest.raises(EquilensError, match="does not implement the equilens model protocol"):
        latents(object(), frames)


def test_latents_command_line(setup, tmp_path, capsys):
    import ase.io

    from equilens.cli import main

    potential, frames = setup
    potential.save(tmp_path / "model.pt")
    ase.io.write(tmp_path / "frames.extxyz", frames)
    code = main(
        [
            "latents",
            str(tmp_path / "model.pt"),
            str(tmp_path / "frames.extxyz"),
            "--output",
            str(tmp_path / "out"),
            "--single-block",
        ]
    )
    assert code == 0
    loaded = load_latents(tmp_path / "out")
    assert list(loaded) == ["input", "hidden_1", "hidden_2", "output"]
    assert loaded["hidden_2"].block(0).samples.names == ["system", "atom", "center_type"]
    assert "4 layers of 3 frames" in capsys.readouterr().out
    # --device: the same layers on any device; a device that is not there is refused
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    for device in devices:
        out = tmp_path / f"on-{device}"
        arguments = [str(tmp_path / "model.pt"), str(tmp_path / "frames.extxyz"), "--single-block"]
        assert main(["latents", *arguments, "--output", str(out), "--device", device]) == 0
        on_device = load_latents(out)
        for name, tensor in load_latents(tmp_path / "out").items():
            assert on_device[name].keys == tensor.keys
            for block, reference in zip(on_device[name].blocks(), tensor.blocks()):
                assert block.samples == reference.samples
                np.testing.assert_allclose(block.values, reference.values, rtol=1e-5, atol=1e-6)
    if not torch.cuda.is_available():
        arguments = [str(tmp_path / "model.pt"), str(tmp_path / "frames.extxyz"), "--device"]
        assert main(["latents", *arguments, "cuda", "--output", str(tmp_path / "x")]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and "torch sees no CUDA GPU" in error[0]


def test_compare_layers_on_the_command_line(setup, tmp_path, capsys):
    import json

    from equilens.cli import main

    potential, frames = setup
    save_latents(tmp_path / "lat", latents(potential, frames * 3, per_species=False))
    code = main(
        [
            "compare",
            str(tmp_path / "lat"),
            "--measures",
            "gfre",
            "gfrd",
            "--output",
            str(tmp_path / "cmp"),
        ]
    )
    assert code == 0
    matrices = json.loads((tmp_path / "cmp" / "matrices.json").read_text())
    names = matrices["names"]
    assert names == ["lat/input", "lat/hidden_1", "lat/hidden_2", "lat/output"]
    gfre = np.array(matrices["matrices"]["gfre"])
    assert np.allclose(np.diag(gfre), 0, atol=1e-6)
    assert "GFRE (row: source -> column: target)" in capsys.readouterr().out


def test_cumulant_pooling(setup):
    """Mean, variance and third cumulant of every feature over the atoms of
    each structure (the structure features of arXiv:2512.05717)."""
    from scipy.stats import moment

    potential, frames = setup
    atoms = latents(potential, frames, per_species=False)["hidden_1"].block(0)
    pooled = latents(potential, frames, per_species=False, pooling="cumulants")["hidden_1"]
    block = pooled.block(0)
    width = atoms.values.shape[1]
    assert block.properties.names == ["cumulant", "feature"]
    assert block.values.shape == (len(frames), 3 * width)
    for index in range(len(frames)):
        rows = atoms.values[atoms.samples.column("system") == index]
        expected = np.concatenate([rows.mean(0), moment(rows, 2, axis=0), moment(rows, 3, axis=0)])
        np.testing.assert_allclose(block.values[index], expected, rtol=1e-6, atol=1e-10)
    assert np.abs(block.values[:, 2 * width :]).max() > 1e-6  # the third cumulant is not zero


def test_pooling_a_single_block_layer_equals_pooling_per_species_blocks():
    """Layers already in one block (``per_species=False``) pool like the same
    atoms split by species."""
    from equilens.analysis.latents import arrange_layers
    from equilens.tensormaps import atom_tensormap

    rng = np.random.default_rng(3)
    values = rng.normal(size=(10, 4))
    system, atom = np.repeat([0, 1], 5), np.tile(np.arange(5), 2)
    numbers = np.array([1, 8, 1, 8, 26] * 2)
    for pooling in ("mean", "cumulants"):
        single = arrange_layers(
            {"x": atom_tensormap(values, system, atom, numbers, per_species=False)},
            per_species=False,
            pooling=pooling,
        )["x"]
        split = arrange_layers(
            {"x": atom_tensormap(values, system, atom, numbers)}, per_species=False, pooling=pooling
        )["x"]
        np.testing.assert_allclose(single.block(0).values, split.block(0).values, atol=1e-12)
