"""Memory estimates before large descriptor allocations: the estimate is the
size featomic allocates, and a many-element dataset stops with a message
instead of swallowing the machine."""

from __future__ import annotations

import ase
import ase.io
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from equilens.cli import main
from equilens.data.examples import iron_water_example
from equilens.descriptors import PRESETS, DescriptorConfig, compute_soap
from equilens.descriptors.budget import check_soap_memory, frames_per_call, soap_size
from equilens.errors import ResourceError

# 55 elements, as in the catalysis set of the issue
ELEMENTS = [z for z in range(1, 84) if z not in (2, 10, 18, 36, 54)][:55]


def test_estimate_is_what_featomic_allocates():
    hypers = PRESETS["small"].to_featomic()
    frames = iron_water_example(n_frames=2, seed=3)
    size = soap_size(frames, 3, hypers, gradients=True)
    soap = compute_soap(frames, [1, 8, 26], hypers, gradients=True)
    assert size.per_atom == soap.block(0).values.shape[1]
    assert size.values_bytes == sum(b.values.nbytes for b in soap.blocks())
    gradients = [b.gradient("positions") for b in soap.blocks()]
    assert size.n_gradient_pairs == sum(len(g.samples) for g in gradients)
    assert size.gradient_bytes == sum(g.values.nbytes for g in gradients)


def _many_elements(n_frames: int, n_atoms: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        grid = np.stack(np.meshgrid(*(np.arange(5),) * 3, indexing="ij"), -1).reshape(-1, 3)
        positions = 2.5 * grid[:n_atoms] + rng.uniform(-0.2, 0.2, (n_atoms, 3))
        atoms = ase.Atoms(
            numbers=rng.choice(ELEMENTS, n_atoms), positions=positions, cell=[12.5] * 3, pbc=True
        )
        atoms.calc = SinglePointCalculator(
            atoms, energy=-float(n_atoms), forces=np.zeros((n_atoms, 3))
        )
        frames.append(atoms)
    return frames


def test_many_elements_stop_with_the_reason(monkeypatch):
    monkeypatch.setenv("EQUILENS_MEMORY_LIMIT_GB", "8")
    frames = _many_elements(300, 100)
    hypers = PRESETS["small"].to_featomic()
    with pytest.raises(ResourceError) as error:
        compute_soap(frames, ELEMENTS, hypers)
    message = str(error.value)
    assert "55 neighbor types -> 1,540 neighbor-type pairs" in message
    assert "30,000 atoms" in message and "descriptor.species" in message
    size = check_soap_memory(frames[:2], 3, hypers)  # three elements fit
    assert size is not None and size.n_pairs == 6


def test_train_on_many_elements_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    """The issue's case with the plain SOAP forced (`alchemical_above:
    null`): `equilens train` with the small preset on a 55-element set stops
    with one line (exit 2) before any large allocation, naming the remedy;
    with the defaults the alchemical SOAP of the same set fits."""
    monkeypatch.setenv("EQUILENS_MEMORY_LIMIT_GB", "8")
    frames = _many_elements(300, 100)
    path = tmp_path / "many.extxyz"
    ase.io.write(path, frames)
    config = tmp_path / "train.yaml"
    config.write_text(
        "task: potential\n"
        f"data: {{train: {path}, validation_fraction: 0.1}}\n"
        "descriptor: {preset: small, alchemical_above: null}\n"
        "compression: {n_components: 64}\n"
        f"output_dir: {tmp_path / 'out'}\n"
    )
    assert main(["train", str(config), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "GB" in error[0] and "1,540 neighbor-type pairs" in error[0]
    assert "descriptor.alchemical" in error[0]
    hypers = DescriptorConfig(preset="small").descriptor_hypers(len(ELEMENTS))
    pseudo = hypers["alchemical"]["pseudo_species"]
    small = PRESETS["small"].to_featomic()
    # what training allocates: SOAP of every frame for the compression, then
    # gradients a batch of 8 frames at a time, projected as they come
    values = check_soap_memory(frames, pseudo, small)
    batch = soap_size(frames[:8], pseudo, small, gradients=True)  # neighbors counted
    assert values is not None and values.total_bytes < 0.3 * 1024**3
    assert batch.total_bytes < 0.5 * 1024**3


def test_lambda_soap_estimate_is_what_featomic_allocates(monkeypatch):
    from equilens.descriptors.budget import check_lambda_soap_memory
    from equilens.descriptors.lambda_soap import compute_lambda_soap

    hypers = PRESETS["small"].to_featomic()
    frames = iron_water_example(n_frames=2, seed=3)
    tensor = compute_lambda_soap(frames, [1, 8, 26], hypers, lambda_max=2)
    symmetries = sorted({(int(k["o3_lambda"]), int(k["o3_sigma"])) for k in tensor.keys})
    needed = check_lambda_soap_memory(frames, 3, hypers, symmetries)
    assert needed == sum(b.values.nbytes for b in tensor.blocks())
    monkeypatch.setenv("EQUILENS_MEMORY_LIMIT_GB", "8")
    with pytest.raises(ResourceError, match=r"lambda-SOAP: would need .*\(55 neighbor types"):
        compute_lambda_soap(_many_elements(300, 100), ELEMENTS, hypers, lambda_max=2)


def test_projected_feature_memory_is_checked_before_featurizing():
    """Force training's largest array (projected gradients, one row per
    distinct atom-neighbor pair) is estimated first and refused with the
    remedies when it would not fit."""
    from equilens.descriptors.budget import check_feature_memory

    frames = iron_water_example(n_frames=3, seed=1)
    n_atoms = sum(len(f) for f in frames)
    bound = sum(len(f) ** 2 for f in frames)
    fits = check_feature_memory(frames, 5.0, 64, 2, available=10 * 1024**3)
    assert fits == n_atoms * 64 * 8 + 3 * bound * 64 * 2  # the all-pairs bound
    exact = soap_size(frames, 1, PRESETS["small"].to_featomic(), gradients=True)
    small = 0.9 * (n_atoms * 64 * 8 + 3 * exact.n_gradient_pairs * 64 * 2) / 0.8
    with pytest.raises(ResourceError, match="projected features: would need .*float16"):
        check_feature_memory(frames, 5.0, 64, 2, available=int(small) // 2)
    # between the exact size and the bound: the neighbors are counted
    tight = int((n_atoms * 64 * 8 + 3 * exact.n_gradient_pairs * 64 * 2) / 0.8) + 1024
    assert check_feature_memory(frames, PRESETS["small"].cutoff, 64, 2, available=tight) < tight


def test_calls_without_gradients_take_as_many_frames_as_the_budget_allows():
    """Value-only descriptor calls hold up to ``most`` frames, fewer when the
    SOAP of many elements would pass the budget, never none."""
    hypers = PRESETS["default"].to_featomic()
    frames = [ase.Atoms("H164")] * 100
    budget = 256 * 1024**2

    def per_atom(n_species):
        return soap_size(frames[:1], n_species, hypers, gradients=False).values_bytes // 164

    def size(count, n_species):
        return soap_size(frames[:count], n_species, hypers, gradients=False).values_bytes

    assert frames_per_call(frames, per_atom(3), 64, budget) == 64
    count = frames_per_call(frames, per_atom(10), 64, budget)
    assert 1 < count < 64 and size(count, 10) <= budget < size(count + 1, 10)
    # one frame of 55 elements is already past the budget: one frame per call
    assert size(1, 55) > budget and frames_per_call(frames, per_atom(55), 64, budget) == 1
