"""SOAP / lambda-SOAP: symmetry, fixed metadata, batching and the cache."""

from __future__ import annotations

import ase.io
import featomic
import metatensor
import numpy as np
import pytest

from equilens.data.examples import iron_water_example
from equilens.descriptors import (
    PRESETS,
    DescriptorConfig,
    SoapHypers,
    compute_descriptor,
    compute_lambda_soap,
    compute_soap,
)
from equilens.errors import ConfigError, DescriptorError
from equilens.so3 import random_rotation
from equilens.testing import assert_covariant, transformed

SPECIES = (1, 8, 26)
SMALL = PRESETS["small"].to_featomic()
#: the same basis with the neighbor types mixed onto 2 pseudo-species
ALCHEMICAL = {**SMALL, "alchemical": {"pseudo_species": 2, "embedding": "periodic", "seed": 0}}


@pytest.fixture(params=["example", "water_molecule/train", "iron_water/train", "water/validation"])
def real_frame(request, reference):
    """One real frame (and the built-in example, which needs no shared data)."""
    if request.param == "example":
        return iron_water_example(n_frames=1, seed=3)[0]
    return ase.io.read(reference(request.param), index=7)


def _blocks(tensor):
    return {tuple(int(v) for v in key.values): block for key, block in tensor.items()}


@pytest.mark.parametrize("hypers", [SMALL, ALCHEMICAL], ids=["soap", "alchemical"])
def test_soap_is_rotation_invariant(real_frame, hypers):
    rotation = random_rotation(seed=11)
    reference = compute_soap([real_frame], SPECIES, hypers)
    rotated = compute_soap([transformed(real_frame, rotation)], SPECIES, hypers)
    assert metatensor.equal_metadata(reference, rotated)
    scale = max(np.abs(b.values).max() for b in reference.blocks() if b.values.size)
    for key, block in _blocks(reference).items():
        np.testing.assert_allclose(
            _blocks(rotated)[key].values, block.values, rtol=0, atol=1e-8 * scale
        )


@pytest.mark.parametrize("hypers", [SMALL, ALCHEMICAL], ids=["soap", "alchemical"])
@pytest.mark.parametrize("improper", [False, True])
def test_lambda_soap_is_covariant(real_frame, improper, hypers):
    """Every block transforms with the real Wigner-D matrix of featomic's
    convention, and under inversion with o3_sigma * (-1)^lambda (also with
    the neighbor types mixed onto pseudo-species)."""
    rotation = random_rotation(seed=5)
    matrix = -rotation if improper else rotation
    reference = compute_lambda_soap([real_frame], SPECIES, hypers, lambda_max=3)
    moved = compute_lambda_soap([transformed(real_frame, matrix)], SPECIES, hypers, lambda_max=3)
    assert metatensor.equal_metadata(reference, moved)
    changed = assert_covariant(reference, moved, matrix, 1e-8, "lambda-SOAP")
    # the test is not vacuous: lambda > 0 blocks do change
    assert changed > 0
    checked = {(int(k[0]), int(k[1])) for k, b in _blocks(reference).items() if len(b.samples)}
    assert {(0, 1), (1, 1), (2, 1), (3, 1), (1, -1), (2, -1), (3, -1)} <= checked


def test_metadata_do_not_depend_on_species_present(reference):
    water = ase.io.read(reference("water_molecule/train"), index=0)
    slab = iron_water_example(n_frames=1)[0]
    for compute in (
        lambda f: compute_soap([f], SPECIES, SMALL),
        lambda f: compute_lambda_soap([f], SPECIES, SMALL, lambda_max=2),
    ):
        a, b = compute(water), compute(slab)
        assert a.keys == b.keys
        for key in a.keys:
            assert a.block(key).properties == b.block(key).properties
            assert a.block(key).components == b.block(key).components
        # the water molecule has no iron: its Fe blocks exist and are empty
        empty = [k for k in a.keys if k["center_type"] == 26]
        assert empty and all(a.block(k).values.shape[0] == 0 for k in empty)
    # and the two join into one dataset-level tensor
    joined = metatensor.join(
        [compute_soap([water], SPECIES, SMALL), compute_soap([slab], SPECIES, SMALL)],
        axis="samples",
        add_dimension="tensor",
    )
    assert joined.block({"center_type": 26}).values.shape[0] == 27


def test_soap_metadata_names():
    frames = iron_water_example(n_frames=2)
    soap = compute_soap(frames, SPECIES, SMALL)
    assert soap.keys.names == ["center_type"]
    block = soap.block({"center_type": 8})
    assert block.samples.names == ["system", "atom"]
    assert block.properties.names == ["neighbor_1_type", "neighbor_2_type", "l", "n_1", "n_2"]
    assert block.values.shape == (8, 6 * 4 * 5 * 5)  # 2 frames x 4 O; 6 pairs, l 0..3, n 0..4
    lsoap = compute_lambda_soap(frames, SPECIES, SMALL, lambda_max=2, include_improper=False)
    assert lsoap.keys.names == ["o3_lambda", "o3_sigma", "center_type"]
    assert set(lsoap.keys.column("o3_sigma").tolist()) == {1}
    block = lsoap.block({"o3_lambda": 2, "o3_sigma": 1, "center_type": 1})
    assert block.components[0].names == ["o3_mu"]
    assert block.components[0].values.ravel().tolist() == [-2, -1, 0, 1, 2]
    assert block.samples.names == ["system", "atom"]


@pytest.mark.parametrize("gradients", [False, True])
def test_batches_give_the_same_tensor(gradients):
    frames = iron_water_example(n_frames=5, seed=1)
    whole = compute_soap(frames, SPECIES, SMALL, gradients=gradients, batch_size=100)
    pieces = compute_soap(frames, SPECIES, SMALL, gradients=gradients, batch_size=2)
    assert metatensor.equal(whole, pieces)
    assert np.unique(pieces.block(0).samples.column("system")).tolist() == [0, 1, 2, 3, 4]
    lam_whole = compute_lambda_soap(frames, SPECIES, SMALL, lambda_max=2, batch_size=100)
    lam_pieces = compute_lambda_soap(frames, SPECIES, SMALL, lambda_max=2, batch_size=3)
    assert metatensor.equal(lam_whole, lam_pieces)


def test_unknown_species_is_an_error():
    frames = iron_water_example(n_frames=2)
    with pytest.raises(DescriptorError, match=r"frame 0 contains atomic numbers \[26\]"):
        compute_soap(frames, (1, 8), SMALL)


def test_bad_featomic_hypers_are_reported():
    with pytest.raises(DescriptorError, match="invalid featomic hyper-parameters"):
        compute_soap(iron_water_example(n_frames=1), SPECIES, {"cutoff": 5.0})


def test_config_validation():
    with pytest.raises(ConfigError, match="unknown descriptor preset 'huge'"):
        DescriptorConfig(preset="huge")
    with pytest.raises(ConfigError, match="unknown SOAP hyper-parameter 'n_max'"):
        DescriptorConfig(hypers={"n_max": 3}).soap_hypers()
    with pytest.raises(ConfigError, match="only available for kind 'soap'"):
        DescriptorConfig(kind="lambda_soap", gradients=True)
    with pytest.raises(ConfigError, match="lambda_max=9"):
        DescriptorConfig(kind="lambda_soap", preset="small", lambda_max=9)
    with pytest.raises(ValueError):
        SoapHypers(cutoff=1.0, cutoff_width=2.0)
    config = DescriptorConfig(preset="small", hypers={"max_radial": 2})
    assert config.featomic_dict()["basis"]["radial"]["max_radial"] == 2
    assert config.featomic_dict()["cutoff"]["radius"] == PRESETS["small"].cutoff


def test_cache_round_trip_and_misses(tmp_path, monkeypatch):
    frames = iron_water_example(n_frames=3)
    config = DescriptorConfig(preset="small", species=SPECIES, gradients=True)
    first = compute_descriptor(frames, config, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("soap-*.mts"))
    assert len(files) == 1 and files[0].with_suffix(".json").is_file()

    calls = []
    original = featomic.SoapPowerSpectrum.compute

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(featomic.SoapPowerSpectrum, "compute", counting)
    second = compute_descriptor(frames, config, cache_dir=tmp_path)
    assert calls == []  # served from the cache
    assert metatensor.equal(first, second)  # identical, gradients included

    # another batch size is the same entry; a changed hyper or structure is not
    compute_descriptor(
        frames,
        DescriptorConfig(preset="small", species=SPECIES, gradients=True, batch_size=1),
        cache_dir=tmp_path,
    )
    assert calls == []
    changed = DescriptorConfig(
        preset="small", species=SPECIES, gradients=True, hypers={"cutoff": 3.5}
    )
    compute_descriptor(frames, changed, cache_dir=tmp_path)
    assert len(calls) == 1
    moved = [atoms.copy() for atoms in frames]
    moved[1].positions[0, 0] += 1e-6
    compute_descriptor(moved, config, cache_dir=tmp_path)
    assert len(calls) == 2
    assert len(list(tmp_path.glob("soap-*.mts"))) == 3


@pytest.mark.parametrize("gradients", [False, True])
def test_fast_densification_equals_metatensor(gradients):
    """The one-copy join + neighbors-to-properties equals metatensor's own
    keys_to_properties on the sparse featomic output (values and gradients)."""
    from metatensor import Labels

    frames = iron_water_example(n_frames=4, seed=2)
    frames[1] = frames[1][frames[1].numbers != 26]  # a frame without iron
    ours = compute_soap(frames, SPECIES, SMALL, gradients=gradients, batch_size=3)
    pairs = [(1, 1), (1, 8), (1, 26), (8, 8), (8, 26), (26, 26)]
    selected = Labels(
        ["center_type", "neighbor_1_type", "neighbor_2_type"],
        np.array([(c, a, b) for c in SPECIES for a, b in pairs]),
    )
    sparse = featomic.SoapPowerSpectrum(**SMALL).compute(
        frames, gradients=["positions"] if gradients else [], selected_keys=selected
    )
    theirs = sparse.keys_to_properties(
        Labels(["neighbor_1_type", "neighbor_2_type"], np.array(pairs))
    )
    assert ours.keys == theirs.keys
    for key in ours.keys:
        a, b = ours.block(key), theirs.block(key)
        assert a.samples == b.samples and a.properties == b.properties
        np.testing.assert_array_equal(a.values, b.values)
        if gradients:
            ga, gb = a.gradient("positions"), b.gradient("positions")
            # same rows up to order: compare through a dictionary
            rows_a = {tuple(r): i for i, r in enumerate(ga.samples.values.tolist())}
            assert len(rows_a) == len(gb.samples)
            order = [rows_a[tuple(r)] for r in gb.samples.values.tolist()]
            np.testing.assert_array_equal(ga.values[order], gb.values)


def test_sparse_layout_has_fixed_keys_and_same_numbers():
    frames = iron_water_example(n_frames=3, seed=4)
    frames[0] = frames[0][frames[0].numbers != 26]
    sparse = compute_soap(frames[:1], SPECIES, SMALL, gradients=True, neighbors="keys")
    assert sparse.keys.names == ["center_type", "neighbor_1_type", "neighbor_2_type"]
    assert len(sparse.keys) == 3 * 6  # every (center, pair) of the species list
    assert (
        sparse.block({"center_type": 26, "neighbor_1_type": 1, "neighbor_2_type": 8}).values.shape[
            0
        ]
        == 0
    )
    # batched sparse equals the one-shot featomic output
    whole = compute_soap(frames, SPECIES, SMALL, gradients=True, neighbors="keys", batch_size=10)
    pieces = compute_soap(frames, SPECIES, SMALL, gradients=True, neighbors="keys", batch_size=1)
    assert metatensor.equal(whole, pieces)
    # the dense layout holds the same numbers
    dense = compute_soap(frames, SPECIES, SMALL, neighbors="properties")
    block = dense.block({"center_type": 8})
    pair = whole.block({"center_type": 8, "neighbor_1_type": 1, "neighbor_2_type": 26})
    columns = [i for i, p in enumerate(block.properties.values.tolist()) if p[:2] == [1, 26]]
    rows = [block.samples.position(s) for s in pair.samples]
    np.testing.assert_array_equal(block.values[np.ix_(rows, columns)], pair.values)
    with pytest.raises(ValueError, match="neighbors must be"):
        compute_soap(frames, SPECIES, SMALL, neighbors="dense")


def _moving_density(blocks):
    """The density gradients as a TensorMap whose samples are ``(system,
    atom, neighbor, xyz)`` (the product rule's first factor, row by row)."""
    from metatensor import Labels, TensorBlock, TensorMap

    keys, out = [], []
    for key, block in sorted(blocks.items()):
        gradient = block.gradient("positions")
        g = np.asarray(gradient.samples.values)
        centers = np.asarray(block.samples.values)[g[:, 0]]
        n = len(g)
        samples = np.column_stack(
            [np.repeat(centers[:, 0], 3), np.repeat(centers[:, 1], 3),
             np.repeat(g[:, 2], 3), np.tile(np.arange(3), n)]
        ).astype(np.int32)  # fmt: skip
        values = np.asarray(gradient.values).reshape(n * 3, *gradient.values.shape[2:])
        names = ["system", "atom", "neighbor", "xyz"]
        out.append(TensorBlock(values, Labels(names, samples), block.components, block.properties))
        keys.append(key)
    names = ["o3_lambda", "o3_sigma", "center_type"]
    return TensorMap(Labels(names, np.array(keys, dtype=np.int32).reshape(-1, 3)), out)


def _small_equivariant_features(count=3, n_components=6):
    import ase.io

    from equilens.data.embedded import embedded_path
    from equilens.descriptors import PRESETS
    from equilens.descriptors.equivariant import EquivariantFeatures

    frames = ase.io.read(embedded_path("iron_water_xtb.extxyz"), f":{count}")
    features = EquivariantFeatures([1, 8, 26], PRESETS["small"].to_featomic(), 2, 4, n_components)
    return frames, features.fit(frames)


def test_projected_product_equals_the_projected_product_of_all_pairs():
    """The lambda-SOAP projected per (l_1, l_2) block (the featurizer's path)
    is the projection of the product with every pair in its properties
    (what the projections were fitted on), also on samples that differ from
    the values'."""
    from equilens.descriptors.equivariant import _compress, _tensor, spherical_density
    from equilens.tensormaps import key_tuple

    frames, features = _small_equivariant_features()
    density = spherical_density(frames, features.species, features.hypers, gradients=True)
    compressed = _compress(density, features.density_pca, features.density_components)
    values = _tensor(compressed, gradients=False)
    moving = _moving_density(compressed)
    product = features.product()
    for first, second in ((values, values), (moving, values)):
        expected = {
            key_tuple(key): np.asarray(block.values) @ features.product_projection(key_tuple(key))
            for key, block in product(first, second).items()
        }
        full = product(first, second)
        found = {key: np.zeros_like(array) for key, array in expected.items()}
        for key, samples, projected in product.projected(
            first, second, features.product_projection
        ):
            rows = full.block(dict(zip(["o3_lambda", "o3_sigma", "center_type"], key)))
            positions = [rows.samples.position(tuple(sample)) for sample in samples]
            found[key][positions] += projected
        assert set(found) == set(expected)
        for key in expected:
            assert np.abs(expected[key]).max() > 0
            np.testing.assert_allclose(found[key], expected[key], atol=1e-12)


@pytest.mark.parametrize("n_components", [6, [7, 5, 4]])
def test_feature_gradients_are_the_product_rule_through_featomic(n_components):
    """The projected gradients (each atom's Jacobian times the density
    gradients) equal both terms of the product rule computed with featomic's
    Clebsch-Gordan product row by row and projected, pair by pair; and
    ``r J = 2 x`` for every atom (the features are quadratic in the density)."""
    import torch

    from equilens.descriptors.equivariant import (
        _compress,
        _tensor,
        featurize_equivariant,
        spherical_density,
    )
    from equilens.descriptors.equivariant_jacobian import density_offsets

    frames, features = _small_equivariant_features(n_components=n_components)
    if not isinstance(n_components, int):
        assert features.width == 7 + 3 * 5 + 5 * 4
        assert [features.product_projection((lam, 1, 8)).shape[1] for lam in range(3)] == [7, 5, 4]
    found = featurize_equivariant(frames, features, gradients=True, dtype=torch.float64)
    density = spherical_density(frames, features.species, features.hypers, gradients=True)
    compressed = _compress(density, features.density_pca, features.density_components)
    values = _tensor(compressed, gradients=False)
    moving = _moving_density(compressed)
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in frames])])
    n_atoms, starts = offsets[-1], features.offsets()
    expected = {}
    for first, second in ((moving, values), (values, moving)):
        for key, s, projected in features.product().projected(
            first, second, features.product_projection
        ):
            for row, sample in enumerate(s):
                pair = (offsets[sample[0]] + sample[1], offsets[sample[0]] + sample[2])
                grad = expected.setdefault(pair, np.zeros((3, features.width)))
                grad[sample[3], starts[key[0]] : starts[key[0]] + projected[row].size] += projected[
                    row
                ].ravel()
    pairs = list(zip(found.grad_center.tolist(), found.grad_neighbor.tolist()))
    assert sorted(pairs) == sorted(expected) and len(set(pairs)) == len(pairs)
    assert np.abs(found.grad_values.numpy()).max() > 0.1
    for index, pair in enumerate(pairs):
        np.testing.assert_allclose(found.grad_values[index].numpy(), expected[pair], atol=1e-12)
    assert n_atoms == len(found.x)
    # Euler: the Jacobian applied to the density gives twice the features
    rows = density_offsets(features.max_angular, features.density_components)
    for z in features.species:
        blocks = [compressed[(ell, 1, z)] for ell in range(features.max_angular + 1)]
        flat = np.concatenate([np.asarray(b.values).reshape(len(b.values), -1) for b in blocks], 1)
        assert flat.shape[1] == rows[-1]
        jacobian = features.jacobian(z)([np.asarray(b.values) for b in blocks])
        samples = np.asarray(blocks[0].samples.values)
        atoms = offsets[samples[:, 0]] + samples[:, 1]
        np.testing.assert_allclose(
            np.einsum("ad,adw->aw", flat, jacobian), 2 * found.x[atoms].numpy(), atol=1e-12
        )


def test_equivariant_maps_are_fitted_once_per_cache(tmp_path, monkeypatch):
    """The seeds of a study fit the same density compression and product
    projection on the same frames: with a cache, the second training loads
    the first one's maps (equal fingerprints, no second fit); other settings
    or frames fit again; a damaged entry is fitted again with a warning."""
    from types import SimpleNamespace

    import ase.io

    from equilens.data.embedded import embedded_path
    from equilens.descriptors.equivariant import EquivariantFeatures
    from equilens.models.equivariant.config import FeaturesConfig
    from equilens.models.equivariant.task import _fitted_features

    frames = ase.io.read(embedded_path("iron_water_xtb.extxyz"), ":4")
    fits = []
    original = EquivariantFeatures.fit

    def counted(self, *args, **kwargs):
        fits.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EquivariantFeatures, "fit", counted)
    config = SimpleNamespace(
        features=FeaturesConfig(density_components=4, n_components=6), cache_dir=str(tmp_path)
    )
    first = _fitted_features(frames, (1, 8, 26), SMALL, config)
    second = _fitted_features(frames, (1, 8, 26), SMALL, config)
    assert len(fits) == 1 and first.fingerprint() == second.fingerprint()
    other = SimpleNamespace(features=FeaturesConfig(density_components=3, n_components=6))
    other.cache_dir = str(tmp_path)
    _fitted_features(frames, (1, 8, 26), SMALL, other)
    _fitted_features(frames[:3], (1, 8, 26), SMALL, config)
    assert len(fits) == 3
    for path in (tmp_path / "equivariant-maps").glob("*.pt"):
        path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match="computing the equivariant maps cache entry again"):
        again = _fitted_features(frames, (1, 8, 26), SMALL, config)
    assert len(fits) == 4 and again.fingerprint() == first.fingerprint()
