"""Equivariant tensor models: symmetry proven on real structures, training,
the equivariant reconstruction error and the overlap metric."""

import json

import ase.io
import metatensor
import numpy as np
import pytest
import torch
from skmatter.metrics import global_reconstruction_error

from equilens.analysis.equivariant import (
    equivariant_gfre_matrix,
    equivariant_reconstruction_error,
)
from equilens.config import from_mapping
from equilens.data.embedded import embedded_path
from equilens.data.splits import stratified_split_indices
from equilens.errors import DataError
from equilens.models.tensor.config import TensorConfig
from equilens.models.tensor.data import read_tensor_data
from equilens.models.tensor.model import TensorModel
from equilens.models.tensor.task import build_model, train_tensor_model
from equilens.so3 import random_rotation, wigner_d_real
from equilens.storage import save_tensormap
from equilens.tensormaps import invariant_summary
from equilens.testing import assert_covariant, transformed

DATA = embedded_path("water_tensors/structures.extxyz").parent
STRUCTURES = {
    "train": str(DATA / "structures.extxyz"),
    "test_fraction": 0.2,
    "validation_fraction": 0.1,
    "stratify": True,
}


def _tensor_config(target_file, **extra) -> TensorConfig:
    mapping = {"data": STRUCTURES, "target": {"file": str(target_file)}}
    mapping.update(extra)
    return from_mapping(TensorConfig, mapping)


def _config(target: str, **extra) -> TensorConfig:
    return _tensor_config(DATA / f"{target}.mts", **extra)


def _untrained(target: str, **extra) -> TensorModel:
    config = _config(target, model={"hidden": [8, 8], "n_components": 12}, **extra)
    data = read_tensor_data(config)
    splits = stratified_split_indices([len(f) for f in data.frames], 0.2, 0.1, 0)
    return build_model(config, data, splits["train"])


@pytest.fixture(scope="module", params=["soap", "alchemical"])
def density_model(request):
    """An untrained density model, on lambda-SOAP or on the alchemical
    lambda-SOAP (neighbor types mixed onto 2 pseudo-species)."""
    if request.param == "alchemical":
        return _untrained("density", descriptor={"alchemical": {"pseudo_species": 2}})
    return _untrained("density")


@pytest.fixture(scope="module")
def trimer():
    frames = ase.io.read(DATA / "structures.extxyz", ":")
    return next(f for f in frames if len(f) == 9)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_layer_rotates_and_inverts(density_model, trimer, seed):
    """Every hidden and output block of lambda 0..3 transforms with its
    Wigner-D matrix under rotations and with (-1)^lambda under inversion."""
    rotation = random_rotation(seed)
    original = density_model.layers([trimer])
    rotated = density_model.layers([transformed(trimer, rotation)])
    inverted = density_model.layers([transformed(trimer, -np.eye(3))])
    lambdas = set()
    for layer, tensor in original.items():
        ells = [int(key.values[0]) for key in tensor.keys]
        lambdas.update(ells)
        for key, block in tensor.items():
            assert np.abs(block.values).max() > 1e-3, (layer, key.values)
        changed = assert_covariant(tensor, rotated[layer], rotation, 1e-6, layer)
        assert changed == sum(ell > 0 for ell in ells)  # not vacuous: covariant blocks change
        assert_covariant(tensor, inverted[layer], -np.eye(3), 1e-6, layer)
        turned = invariant_summary(rotated[layer])
        assert_covariant(invariant_summary(tensor), turned, np.eye(3), 1e-8, layer)
    assert lambdas == {0, 1, 2, 3}


def test_structure_predictions_rotate_and_ignore_atom_order(trimer):
    model = _untrained("polarizability")
    rotation = random_rotation(5)
    before = model.predict([trimer])["polarizability"]
    after = model.predict([transformed(trimer, rotation)])["polarizability"]
    assert_covariant(before, after, rotation, 1e-8, "polarizability")
    permuted = trimer[np.random.default_rng(0).permutation(len(trimer))]
    shuffled = model.predict([permuted])["polarizability"]
    for key, block in before.items():
        np.testing.assert_allclose(shuffled.block(key).values, block.values, atol=1e-10)


def test_same_seed_same_model_and_training_improves(tmp_path):
    config = _config(
        "dipole",
        model={"hidden": [16], "n_components": 16},
        training={"epochs": 12, "dtype": "float64", "learning_rate": 0.01},
        output_dir=str(tmp_path / "a"),
    )
    _, first = train_tensor_model(config, progress=False)
    _, second = train_tensor_model(
        from_mapping(TensorConfig, {**_as_mapping(config), "output_dir": str(tmp_path / "b")}),
        progress=False,
    )
    test = first["metrics"]["test"]
    assert test == second["metrics"]["test"]
    assert test["relative_rmse"] < 0.5  # far better than predicting the mean
    assert first["baselines"]["ridge"]["test"]["relative_rmse"] < 0.5
    reloaded = TensorModel.load(tmp_path / "a" / "model.pt")
    frames = ase.io.read(DATA / "structures.extxyz", ":3")
    again = reloaded.predict(frames)["dipole"]
    assert again.block(0).values.shape == (3, 3, 1)
    assert (tmp_path / "a" / "parity_test.png").stat().st_size > 0


def _as_mapping(config):
    from equilens.config import to_mapping

    return to_mapping(config)


def test_bad_targets_are_named(tmp_path):
    target = metatensor.load(str(DATA / "dipole.mts"))
    block = target.block(0)
    values = np.array(block.values)
    values[7, 1, 0] = np.nan
    broken = metatensor.TensorMap(
        target.keys,
        [metatensor.TensorBlock(values, block.samples, block.components, block.properties)],
    )
    path = save_tensormap(tmp_path / "broken.mts", broken)
    config = _tensor_config(path)
    with pytest.raises(DataError, match=r"broken.mts.*frame 7|frame 7.*broken.mts"):
        read_tensor_data(config)
    short = metatensor.TensorMap(
        target.keys,
        [
            metatensor.TensorBlock(
                np.array(block.values)[:5],
                metatensor.Labels(["system"], np.arange(5, dtype=np.int32)[:, None]),
                block.components,
                block.properties,
            )
        ],
    )
    path = save_tensormap(tmp_path / "short.mts", short)
    config = _tensor_config(path)
    with pytest.raises(DataError, match="5 rows, expected one per structure"):
        read_tensor_data(config)


# --- the equivariant reconstruction error -----------------------------------


def _rotate_each(values, seed):
    ell = (values.shape[1] - 1) // 2
    rotations = [wigner_d_real(ell, random_rotation(seed + i)) for i in range(len(values))]
    return np.einsum("imn,inp->imp", np.stack(rotations), values)


def test_equivariant_error_is_zero_for_a_feature_mix():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5, 10))
    y = x @ rng.normal(size=(10, 6))
    assert equivariant_reconstruction_error(x, y) < 1e-10
    # and not for a target the source does not span
    assert equivariant_reconstruction_error(x, rng.normal(size=(120, 5, 6))) > 0.5


def test_equivariant_error_is_gfre_for_lambda_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 1, 9))
    y = np.tanh(x @ rng.normal(size=(9, 4))) + 0.2 * rng.normal(size=(150, 1, 4))
    ours = equivariant_reconstruction_error(x, y)
    assert ours == pytest.approx(global_reconstruction_error(x[:, 0], y[:, 0]), rel=1e-9)


def test_equivariant_error_ignores_rotations_of_the_atoms_flattening_does_not():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(160, 5, 8))
    y = x @ rng.normal(size=(8, 4)) + 0.5 * rng.normal(size=(160, 5, 4))
    xr, yr = _rotate_each(x, 10), _rotate_each(y, 10)
    assert equivariant_reconstruction_error(xr, yr) == pytest.approx(
        equivariant_reconstruction_error(x, y), rel=1e-10
    )
    flat = global_reconstruction_error(x.reshape(160, -1), y.reshape(160, -1))
    flat_rotated = global_reconstruction_error(xr.reshape(160, -1), yr.reshape(160, -1))
    assert abs(flat - flat_rotated) > 1e-3


def test_layers_of_a_network_compare_per_block(density_model, trimer):
    frames = ase.io.read(DATA / "structures.extxyz", ":40")
    layers = density_model.layers(frames)
    matrices = equivariant_gfre_matrix(layers)
    for key, matrix in matrices.items():
        assert matrix.shape == (len(layers), len(layers))
        assert np.all(np.diag(matrix) < 1e-6), key
    # the output is a linear map of the last hidden layer: reconstructed exactly
    names = list(layers)
    output_keys = {tuple(int(v) for v in k.values) for k in layers["output"].keys}
    assert set(matrices) == output_keys
    for key in output_keys:
        assert matrices[key][names.index("hidden_2"), names.index("output")] < 1e-6, key
    # and the hidden layers are not linear maps of the input
    assert max(m[names.index("input"), names.index("hidden_2")] for m in matrices.values()) > 1e-3


def test_the_study_compares_covariant_blocks_lambda_by_lambda(density_model):
    """The study's comparison (parities side by side, center types weighted
    by atoms) keeps the exact linear relations of a network and does not
    change when the frames are rotated."""
    from equilens.study.equivariant import compare_equivariant

    frames = ase.io.read(DATA / "structures.extxyz", ":24")
    result = compare_equivariant(density_model.layers(frames), min_atoms=10)
    rotated = [transformed(f, random_rotation(np.random.default_rng(3))) for f in frames]
    again = compare_equivariant(density_model.layers(rotated), min_atoms=10)
    assert sorted(result) == sorted(again) and min(result) >= 1
    for lam, comparison in result.items():
        names = comparison.names
        assert {"input", "hidden_2"} <= set(names), lam
        assert np.all(np.diag(comparison.mean) < 1e-6)
        if "output" in names:  # the output is a linear map of the last hidden layer
            assert comparison.mean[names.index("hidden_2"), names.index("output")] < 1e-6
        assert comparison.mean[names.index("input"), names.index("hidden_2")] > 1e-3
        assert (
            set(comparison.atoms) == set(comparison.per_type)
            and min(comparison.atoms.values()) >= 10
        )
        np.testing.assert_allclose(again[lam].mean, comparison.mean, atol=1e-8)
    assert any("output" in comparison.names for comparison in result.values())


# --- overlap metric of the density ------------------------------------------


def test_overlap_gather_recovers_the_electron_count():
    """Coefficients gathered into PySCF's order integrate to the electrons of
    each structure: the gather of the overlap metric puts each coefficient on
    its basis function."""
    pytest.importorskip("pyscf", reason="PySCF not installed (pip install equilens[pyscf])")
    from pyscf import dft

    from equilens.data.basis import _auxiliary_layout, _conversion, _pyscf, molecule

    config = _tensor_config(
        DATA / "density.mts", target={"file": str(DATA / "density.mts"), "overlap": "cc-pvdz-jkfit"}
    )
    data = read_tensor_data(config)
    flat = torch.cat([torch.tensor(data.targets[k]).reshape(-1) for k in data.layout.keys])
    _, _, df = _pyscf()
    for system in (0, len(data.frames) - 1):
        frame = data.frames[system]
        auxmol = df.addons.make_auxmol(molecule(frame, "sto-3g"), "cc-pvdz-jkfit")
        grids = dft.gen_grid.Grids(auxmol)
        grids.build()
        integrals = grids.weights @ auxmol.eval_gto("GTOval_sph", grids.coords)
        coefficients = flat[data.overlap[system].gather].numpy()
        pyscf_order = _conversion(_auxiliary_layout(auxmol)).T @ coefficients
        electrons = int(np.sum(frame.numbers))
        assert integrals @ pyscf_order == pytest.approx(electrons, abs=2e-3 * electrons)
        # and the metric is a positive definite quadratic form
        assert float(data.overlap[system].square(flat)) > 0
    # the %RMSE ratio: 0 for the reference itself, 1 for the species-average
    # spherical density it is normalised by (on the structures it was fitted on)
    from equilens.models.tensor.data import subset
    from equilens.models.tensor.objective import TensorObjective, _species_mean

    systems = np.arange(len(data.frames))
    objective = TensorObjective(data, systems)
    _, rows = subset(data.soap, systems)
    exact = objective.references(rows, systems)
    assert float(objective.overlap_ratio(exact, rows, systems)) == pytest.approx(0, abs=1e-20)
    mean = _species_mean(data, systems)
    average = {k: torch.broadcast_to(mean[k], v.shape) for k, v in exact.items()}
    assert float(objective.overlap_ratio(average, rows, systems)) == pytest.approx(1, rel=1e-10)


# --- chemiscope export -------------------------------------------------------


@pytest.mark.parametrize("target", ["dipole", "polarizability", "density"])
def test_chemiscope_export_of_tensor_models(tmp_path, target):
    from equilens.export.chemiscope import read_chemiscope, validate_chemiscope
    from equilens.export.tensor import export_tensor_model

    model = _untrained(target)
    frames = ase.io.read(DATA / "structures.extxyz", ":6")
    reference = metatensor.load(str(DATA / f"{target}.mts"))
    reference = _first_systems(reference, 6)
    path = export_tensor_model(tmp_path / f"{target}.json.gz", model, frames, reference)
    validate_chemiscope(path)
    data = read_chemiscope(path)
    names = set(data["properties"])
    assert any(name.startswith("hidden_1") for name in names), names
    shapes = set(data.get("shapes", {}))
    if target == "dipole":
        assert {"predicted vector", "reference vector"} <= shapes
        assert "vector error" in names
    elif target == "polarizability":
        assert {"predicted tensor", "reference tensor"} <= shapes
        reference_iso = np.asarray(data["properties"]["reference isotropic"]["values"])
        assert np.all(reference_iso > 0)  # polarizabilities are positive
    else:
        errors = np.asarray(data["properties"]["error coefficient norm"]["values"])
        assert len(errors) == sum(len(f) for f in frames) and np.all(errors > 0)


def _first_systems(tensor, count):
    blocks = []
    for block in tensor.blocks():
        keep = np.asarray(block.samples.column("system")) < count
        blocks.append(
            metatensor.TensorBlock(
                np.asarray(block.values)[keep],
                metatensor.Labels(block.samples.names, np.asarray(block.samples.values)[keep]),
                block.components,
                block.properties,
            )
        )
    return metatensor.TensorMap(tensor.keys, blocks)


def test_cli_trains_a_tensor_model_and_writes_its_latents(tmp_path, capsys):
    import yaml

    from equilens.analysis.latents import load_latents
    from equilens.cli import main

    config = tmp_path / "dipole.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "tensor",
                "name": "dipole",
                "data": STRUCTURES,
                "target": {"file": str(DATA / "dipole.mts")},
                "model": {"hidden": [8], "n_components": 8},
                "training": {"epochs": 2, "dtype": "float64"},
            }
        )
    )
    assert main(["train", str(config), "--output", str(tmp_path / "model"), "--no-progress"]) == 0
    assert "ridge" in capsys.readouterr().out
    model = tmp_path / "model" / "model.pt"
    out = tmp_path / "latents"
    args = ["latents", str(model), str(DATA / "structures.extxyz"), "--index", ":30"]
    assert main(args + ["--output", str(out), "--batch-size", "7"]) == 0
    equivariant = load_latents(out / "equivariant")
    invariant = load_latents(out / "invariant")
    assert list(equivariant) == ["input", "hidden_1", "output"]
    hidden = equivariant["hidden_1"]
    assert hidden.keys.names == ["o3_lambda", "o3_sigma", "center_type"]
    assert {int(k.values[0]) for k in hidden.keys} == {0, 1}
    assert hidden.block(0).components[0].names == ["o3_mu"]
    # batches joined with global system ids: the 30 structures are all there
    systems = np.unique(np.concatenate([b.samples.column("system") for b in hidden.blocks()]))
    assert systems.tolist() == list(range(30))
    assert invariant["hidden_1"].keys.names == ["center_type"]
    # 8 invariant channels + the norms of 8 lambda = 1 channels
    assert invariant["hidden_1"].block(0).values.shape[1] == 16
    # the equivariant comparison of the layers, per block
    folder = tmp_path / "compare"
    assert (
        main(["compare", str(out / "equivariant"), "--equivariant", "--output", str(folder)]) == 0
    )
    saved = json.loads((folder / "matrices.json").read_text())
    assert set(saved["blocks"]) == {"1_1_1", "1_1_8"}  # the blocks all layers have
    for matrix in saved["blocks"].values():
        assert np.allclose(np.diag(matrix), 0, atol=1e-6)
    assert (folder / "block_1_1_8.png").stat().st_size > 0
    # and the chemiscope file with dipole arrows
    from equilens.export.chemiscope import read_chemiscope

    exported = tmp_path / "dipole.json.gz"
    args = ["export", str(model), str(DATA / "structures.extxyz"), "--output", str(exported)]
    assert main(args + ["--reference", str(DATA / "dipole.mts")]) == 0
    assert {"predicted vector", "reference vector"} <= set(read_chemiscope(exported)["shapes"])
