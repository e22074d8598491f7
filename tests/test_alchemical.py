"""Alchemical compression of the neighbor types: what the mixing computes,
exact gradients, a size that does not grow with the elements, the switch."""

from __future__ import annotations

import ase.build
import featomic
import numpy as np
import pytest
from featomic.clebsch_gordan import PowerSpectrum

from equilens.descriptors import PRESETS, AlchemicalConfig, DescriptorConfig, compute_soap
from equilens.descriptors.alchemical import (
    AlchemicalExpansion,
    element_embedding,
    period_and_group,
)
from equilens.errors import ConfigError

SMALL = PRESETS["small"].to_featomic()


def _mixed_cell(numbers, seed=0, repeat=(2, 1, 1)):
    """A rattled fcc cell with the given elements at random."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.9, cubic=True) * repeat
    rng = np.random.default_rng(seed)
    atoms.numbers = rng.choice(numbers, len(atoms))
    atoms.rattle(0.15, seed=seed)
    return atoms


def test_mixed_power_spectrum_is_the_full_one_contracted():
    """p^{alpha beta} = sum_ab U_a,alpha U_b,beta p^{ab}: the compressed SOAP
    is exactly the full power spectrum seen through the mixing matrix."""
    species = [8, 13, 26, 79]
    atoms = _mixed_cell(species, seed=1)
    atoms.numbers[:4] = species  # every element present
    mixing = element_embedding(species, AlchemicalConfig(pseudo_species=3))
    full = PowerSpectrum(featomic.SphericalExpansion(**SMALL), neighbor_types=species)
    mixed = PowerSpectrum(AlchemicalExpansion(species, mixing, **SMALL))
    full_tensor, mixed_tensor = full.compute(atoms), mixed.compute(atoms)
    n_radial = SMALL["basis"]["radial"]["max_radial"] + 1
    n_l = SMALL["basis"]["max_angular"] + 1
    for key, block in full_tensor.items():
        # properties (l, neighbor_1_type, n_1, neighbor_2_type, n_2)
        p = block.values.reshape(-1, n_l, len(species), n_radial, len(species), n_radial)
        expected = np.einsum("slanbm,ax,by->slxnym", p, mixing, mixing)
        actual = mixed_tensor.block(key).values.reshape(expected.shape)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-10 * scale)


def test_compressed_gradients_are_finite_differences():
    species = [1, 8, 22, 47]
    atoms = _mixed_cell(species, seed=2)
    hypers = {**SMALL, "alchemical": {"pseudo_species": 4, "embedding": "periodic", "seed": 0}}
    tensor = compute_soap([atoms], species, hypers, gradients=True)
    step = 1e-5
    checked = 0
    for atom, axis in [(0, 0), (3, 2), (5, 1)]:
        moved = [atoms.copy(), atoms.copy()]
        moved[0].positions[atom, axis] += step
        moved[1].positions[atom, axis] -= step
        plus, minus = (compute_soap([m], species, hypers) for m in moved)
        for key, block in tensor.items():
            if len(block.samples) == 0:
                continue
            numeric = (plus.block(key).values - minus.block(key).values) / (2 * step)
            analytic = np.zeros_like(numeric)
            gradient = block.gradient("positions")
            for row, (sample, _, neighbor) in enumerate(gradient.samples.values):
                if neighbor == atom:
                    analytic[sample] = gradient.values[row, axis]
            scale = np.abs(numeric).max() + 1e-12
            np.testing.assert_allclose(analytic, numeric, rtol=0, atol=1e-5 * scale)
            checked += int(np.abs(numeric).max() > 1e-6)
    assert checked > 3


def test_size_does_not_grow_with_the_elements():
    """Width per atom: the same for 4 and for 40 elements (the plain SOAP
    grows as S (S + 1) / 2)."""
    hypers = {**SMALL, "alchemical": {"pseudo_species": 3, "embedding": "periodic", "seed": 0}}
    few = list(range(21, 25))
    many = list(range(1, 41))
    widths = []
    for species in (few, many):
        atoms = _mixed_cell(species[:4], seed=3)
        tensor = compute_soap([atoms], species, hypers)
        widths.append(tensor.block(0).values.shape[1])
        assert len(tensor.keys) == len(species)  # one block per center type
    assert widths[0] == widths[1]
    full = compute_soap([_mixed_cell(few, seed=3)], few, SMALL)
    assert full.block(0).values.shape[1] > widths[0]


def test_periodic_table_positions_and_embedding():
    expected = {1: (1, 1), 2: (1, 18), 6: (2, 14), 26: (4, 8), 57: (6, 3), 79: (6, 11)}
    for z, position in expected.items():
        assert period_and_group(z) == position
    with pytest.raises(ValueError):
        period_and_group(0)
    mixing = element_embedding([1, 8, 26], AlchemicalConfig(pseudo_species=4))
    assert mixing.shape == (3, 4)
    np.testing.assert_allclose(mixing[:, 0], 1.0)  # the plain geometric density
    # the embedding of an element does not depend on the other elements
    alone = element_embedding([26], AlchemicalConfig(pseudo_species=4))
    np.testing.assert_allclose(alone[0], mixing[2])
    random = element_embedding([1, 8], AlchemicalConfig(pseudo_species=5, embedding="random"))
    assert random.shape == (2, 5) and not np.allclose(random[0], random[1])


def test_switches_on_above_the_threshold_and_validates():
    config = DescriptorConfig()
    assert "alchemical" not in config.descriptor_hypers(3)
    assert config.descriptor_hypers(11)["alchemical"]["pseudo_species"] == 2
    explicit = DescriptorConfig(alchemical=AlchemicalConfig(pseudo_species=2))
    assert explicit.descriptor_hypers(2)["alchemical"]["pseudo_species"] == 2
    assert "alchemical" not in DescriptorConfig(alchemical_above=None).descriptor_hypers(80)
    with pytest.raises(ConfigError, match="pseudo_species"):
        AlchemicalConfig(pseudo_species=11)
    with pytest.raises(ConfigError, match="embedding"):
        AlchemicalConfig(embedding="learned")  # type: ignore[arg-type]
