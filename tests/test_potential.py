"""BPNN potential: exact forces, symmetries, training, resume, save/load."""

from __future__ import annotations

import json
import subprocess
import sys

import ase.io
import metatensor
import numpy as np
import pytest
import torch

from equilens.config import from_mapping
from equilens.data.examples import iron_water_example
from equilens.descriptors import PRESETS, compute_soap
from equilens.descriptors.compression import SpeciesPCA
from equilens.errors import ConfigError
from equilens.models import load_run_config
from equilens.models.bpnn.config import PotentialConfig
from equilens.models.bpnn.task import train_potential

SPECIES = (1, 8, 26)
HYPERS = PRESETS["small"].to_featomic()


@pytest.fixture(scope="module")
def potential64(make_potential):
    """An untrained float64 potential with non-trivial weights."""
    potential = make_potential(16, (12, 8), seed=0, bottleneck=3, layer_norm=True)
    potential.module.double()
    potential.module.scale.fill_(0.7)
    potential.module.baseline.copy_(torch.tensor([-1.0, -2.0, -3.0], dtype=torch.float64))
    return potential


@pytest.fixture(scope="module")
def frame():
    return iron_water_example(n_frames=1, seed=7)[0]


def test_forces_are_minus_the_finite_difference_gradient(potential64, frame):
    energy, forces = potential64.energies_and_forces([frame])
    forces = forces[0]
    h = 1e-5
    # two atoms of each species
    atoms = [i for z in SPECIES for i in np.nonzero(frame.numbers == z)[0][:2]]
    for i in atoms:
        for c in range(3):
            plus, minus = frame.copy(), frame.copy()
            plus.positions[i, c] += h
            minus.positions[i, c] -= h
            (e_plus,), _ = potential64.energies_and_forces([plus], forces=False)
            (e_minus,), _ = potential64.energies_and_forces([minus], forces=False)
            numeric = -(e_plus - e_minus) / (2 * h)
            assert abs(numeric - forces[i, c]) <= 1e-6 * max(1.0, abs(forces[i, c]))
    assert np.abs(forces).max() > 1e-3  # not trivially zero


def test_energy_invariances(potential64, frame):
    from equilens.so3 import random_rotation

    (reference,), (forces,) = potential64.energies_and_forces([frame])
    rotation = random_rotation(3)
    rotated = frame.copy()
    rotated.positions = frame.positions @ rotation.T
    rotated.cell = frame.cell.array @ rotation.T
    translated = frame.copy()
    translated.positions += np.array([0.3, -1.7, 2.2])
    permutation = np.random.default_rng(1).permutation(len(frame))
    permuted = frame[permutation]
    (e_rot, e_trans, e_perm), (f_rot, f_trans, f_perm) = potential64.energies_and_forces(
        [rotated, translated, permuted]
    )
    assert abs(e_rot - reference) < 1e-9 * max(1, abs(reference))
    assert abs(e_trans - reference) < 1e-9 * max(1, abs(reference))
    assert abs(e_perm - reference) < 1e-9 * max(1, abs(reference))
    np.testing.assert_allclose(f_rot, forces @ rotation.T, atol=1e-9)
    np.testing.assert_allclose(f_trans, forces, atol=1e-9)
    np.testing.assert_allclose(f_perm, forces[permutation], atol=1e-9)


def test_layers(potential64, frame):
    layers = potential64.layers([frame, frame])
    assert list(layers) == ["input", "hidden_1", "hidden_2", "bottleneck", "output"]
    assert potential64.layer_names == list(layers)
    widths = {"input": 16, "hidden_1": 12, "hidden_2": 8, "bottleneck": 3, "output": 1}
    for name, tensor in layers.items():
        assert tensor.keys.names == ["center_type"]
        assert [int(k["center_type"]) for k in tensor.keys] == list(SPECIES)
        assert sum(len(b.samples) for b in tensor.blocks()) == 2 * len(frame)
        for block in tensor.blocks():
            assert block.samples.names == ["system", "atom"]
            assert block.properties.names == ["feature"]
            assert block.values.shape[1] == widths[name]
    # the atomic energies add up to the energy
    (energy,), _ = potential64.energies_and_forces([frame], forces=False)
    total = sum(b.values[b.samples.column("system") == 0].sum() for b in layers["output"].blocks())
    assert abs(total - energy) < 1e-9 * max(1, abs(energy))
    # the calculator gives the same numbers
    atoms = frame.copy()
    atoms.calc = potential64.calculator()
    assert abs(atoms.get_potential_energy() - energy) < 1e-9 * max(1, abs(energy))
    np.testing.assert_allclose(atoms.get_potential_energies().sum(), energy, rtol=1e-12)


def test_save_and_reload_in_a_fresh_process(potential64, frame, tmp_path):
    path = potential64.save(tmp_path / "model.pt")
    ase.io.write(tmp_path / "frame.traj", frame)
    energy, forces = potential64.energies_and_forces([frame])
    script = f"""
import json, ase.io, numpy as np
from equilens.models.bpnn.model import Potential
pot = Potential.load({str(path)!r})
frame = ase.io.read({str(tmp_path / "frame.traj")!r})
e, f = pot.energies_and_forces([frame])
h = 1e-5
plus, minus = frame.copy(), frame.copy()
plus.positions[0, 2] += h; minus.positions[0, 2] -= h
energy = lambda atoms: pot.energies_and_forces([atoms], forces=False)[0][0]
fd = -(energy(plus) - energy(minus)) / (2 * h)
print(json.dumps({{"energy": float(e[0]), "forces": f[0].tolist(), "fd": fd}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["energy"] == pytest.approx(energy[0], abs=1e-10)
    np.testing.assert_allclose(result["forces"], forces[0], atol=1e-10)
    assert result["fd"] == pytest.approx(result["forces"][0][2], abs=1e-6)


# --- training -------------------------------------------------------------


def _config(lj_files, tmp_path, **training):
    mapping = {
        "name": "lj",
        "data": {"train": str(lj_files["train"]), "validation": str(lj_files["validation"])},
        "descriptor": {"preset": "small", "species": [1, 8, 26]},
        "compression": {"n_components": 24},
        "model": {"hidden": [16, 16]},
        "training": {
            "epochs": 6,
            "batch_size": 4,
            "checkpoint_every": 2,
            "learning_rate": 0.01,
            **training,
        },
        "output_dir": str(tmp_path / "run"),
        "cache_dir": str(tmp_path / "cache"),
    }
    return from_mapping(PotentialConfig, mapping)


def test_training_lowers_the_loss_and_writes_outputs(lj_files, tmp_path):
    _, summary = train_potential(_config(lj_files, tmp_path), progress=False)
    run = tmp_path / "run"
    log = (run / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 6
    history = [dict(zip(log[0].split(","), line.split(","))) for line in log[1:]]
    assert float(history[-1]["train_loss"]) < 0.5 * float(history[0]["train_loss"])
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("train", "validation"):
        for key in (
            "energy_rmse_meV_per_atom",
            "energy_mae_meV_per_atom",
            "force_rmse_eV_per_A",
            "force_mae_eV_per_A",
            "force_rmse_Fe_eV_per_A",
            "force_rmse_H_eV_per_A",
        ):
            assert np.isfinite(metrics["metrics"][split][key])
    for name in ("model.pt", "checkpoint.pt", "parity_validation.png", "learning_curve.png"):
        assert (run / name).stat().st_size > 0


def test_features_on_disk_are_checked_against_the_free_space(lj_files, tmp_path, monkeypatch):
    """Features streamed to the cache need disk space, checked per split
    before writing it; features already cached need none."""
    import dataclasses

    from equilens.descriptors import budget
    from equilens.errors import ResourceError

    config = _config(lj_files, tmp_path, epochs=1)
    _, first = train_potential(config, progress=False)
    monkeypatch.setattr(budget, "free_disk", lambda folder: 1000)
    again = dataclasses.replace(config, output_dir=str(tmp_path / "again"))
    _, second = train_potential(again, progress=False)  # read from the cache
    assert second["metrics"] == first["metrics"]
    # a new run (a finished one in its folder is opened, not featurized)
    elsewhere = dataclasses.replace(
        again, output_dir=str(tmp_path / "third"), cache_dir=str(tmp_path / "other")
    )
    with pytest.raises(ResourceError, match=f"disk space under {tmp_path / 'other'}"):
        train_potential(elsewhere, progress=False)
    assert not list((tmp_path / "other").rglob("*.bin"))


def test_resume_equals_uninterrupted(lj_files, tmp_path):
    # float64: float32 matrix products may round differently in the last bit
    # from one memory layout to another, and training amplifies that
    straight_config = _config(lj_files, tmp_path / "a", dtype="float64")
    straight, summary_a = train_potential(straight_config, progress=False)
    resumed_config = _config(lj_files, tmp_path / "b", dtype="float64")
    train_potential(resumed_config, progress=False, stop_after=3)
    log = (tmp_path / "b" / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 3  # it really stopped
    resumed, summary_b = train_potential(resumed_config, progress=False)
    for split, metrics in summary_a["metrics"].items():
        for key, value in metrics.items():
            assert summary_b["metrics"][split][key] == pytest.approx(value, rel=1e-9), (split, key)
    assert summary_a["best_epoch"] == summary_b["best_epoch"]
    for (name, a), (_, b) in zip(
        straight.module.state_dict().items(), resumed.module.state_dict().items()
    ):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=name)


def test_a_finished_run_is_opened_not_evaluated_again(lj_files, tmp_path, monkeypatch):
    """Training again into the folder of a finished run (a study's second
    run) opens its model and summary without reading its features or
    evaluating it; a run whose last output is missing (killed while writing
    it) or that stopped before its last epoch is evaluated, or trained on, as
    before."""
    import equilens.models.bpnn.task as bpnn_task
    from equilens.models import load

    weight = "nets.0.hidden.0.0.weight"
    config = _config(lj_files, tmp_path, epochs=2)
    first, summary = train_potential(config, progress=False)
    calls = []  # the features (computed or read from the cache), the evaluation
    for name in ("_split_features", "fit_and_write"):
        original = getattr(bpnn_task, name)
        wrapped = lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k)  # noqa: E731
        monkeypatch.setattr(bpnn_task, name, wrapped)
    again, reopened = train_potential(config, progress=False)
    assert not calls
    assert reopened == json.loads((tmp_path / "run" / "metrics.json").read_text())
    for split, metrics in summary["metrics"].items():
        assert reopened["metrics"][split] == pytest.approx(metrics), split
    for key, value in first.module.state_dict().items():
        assert torch.equal(value, again.module.state_dict()[key]), key
    (tmp_path / "run" / "learning_curve.png").unlink()
    train_potential(config, progress=False)
    assert calls == ["_split_features", "fit_and_write"]
    assert (tmp_path / "run" / "learning_curve.png").is_file()
    (tmp_path / "run" / "model.pt").write_bytes(b"damaged")  # written again
    calls.clear()
    train_potential(config, progress=False)
    assert calls == ["_split_features", "fit_and_write"]
    assert torch.equal(
        load(tmp_path / "run" / "model.pt").module.state_dict()[weight],
        first.module.state_dict()[weight],
    )
    # stopped after its first epoch, a run has written every file but trained
    # fewer epochs than asked: it resumes
    stopped = _config(lj_files, tmp_path / "stopped", epochs=2)
    train_potential(stopped, progress=False, stop_after=1)
    assert (tmp_path / "stopped" / "run" / "learning_curve.png").is_file()
    calls.clear()
    _, resumed = train_potential(stopped, progress=False)
    assert calls == ["_split_features", "fit_and_write"] and resumed["epochs_run"] == 2


def test_same_seed_same_result_other_seed_differs(lj_files, tmp_path):
    a, _ = train_potential(_config(lj_files, tmp_path / "a", epochs=2), progress=False)
    b, _ = train_potential(_config(lj_files, tmp_path / "b", epochs=2), progress=False)
    c, _ = train_potential(_config(lj_files, tmp_path / "c", epochs=2, seed=1), progress=False)
    weight = "nets.0.hidden.0.0.weight"
    assert torch.equal(a.module.state_dict()[weight], b.module.state_dict()[weight])
    assert not torch.equal(a.module.state_dict()[weight], c.module.state_dict()[weight])


def test_seeds_share_the_compression_and_the_cached_features(lj_files, tmp_path, monkeypatch):
    """The training seed does not seed the compression: two seeds fit one
    PCA (once: the second run reads the cached fit) and read one cached
    copy of the features (computed in file order, each seed reading them in
    its own order), and train what a seed trains without a cache."""
    import dataclasses

    fits = []
    original = SpeciesPCA.fit_batches
    monkeypatch.setattr(
        SpeciesPCA, "fit_batches", lambda self, *a, **k: fits.append(1) or original(self, *a, **k)
    )
    cache = tmp_path / "cache"
    runs = {}
    for seed in (0, 1):
        config = _config(lj_files, tmp_path / f"seed{seed}", epochs=2, seed=seed)
        runs[seed], _ = train_potential(dataclasses.replace(config, cache_dir=str(cache)), False)
    assert len(fits) == 1
    # the training and the validation frames, once for both seeds
    assert len(list((cache / "features").iterdir())) == 2
    assert runs[0].feature_fingerprint() == runs[1].feature_fingerprint()
    config = _config(lj_files, tmp_path / "alone", epochs=2, seed=1)
    alone, _ = train_potential(dataclasses.replace(config, cache_dir=None), False)
    shared = runs[1].module.state_dict()
    for name, value in alone.module.state_dict().items():
        torch.testing.assert_close(value, shared[name], rtol=1e-5, atol=1e-6)


def test_unknown_config_key_is_named(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(
        "task: potential\ndata: {train: x.traj}\ntraining: {epochs: 3, learnig_rate: 0.1}\n"
    )
    with pytest.raises(ConfigError, match=r"training: unknown key 'learnig_rate' in TrainConfig"):
        load_run_config(path)
    path.write_text("task: potential\ndata: {train: x.traj}\nmodle: {}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'modle' in PotentialConfig"):
        load_run_config(path)


def test_shipped_configs_are_valid():
    for name in ("water", "iron_water"):
        config = load_run_config(name)
        assert config.task == "potential" and config.descriptor.kind == "soap"
    for name in ("tensor_dipole", "tensor_polarizability", "tensor_density"):
        config = load_run_config(name)
        assert config.task == "tensor" and config.data.stratify


def _feature_fields():
    import dataclasses

    from equilens.descriptors.projected import FeatureSet

    return [f.name for f in dataclasses.fields(FeatureSet) if f.name not in ("energy", "forces")]


def _assert_same_features(a, b):
    """Same indices exactly, same values to rounding (a matrix product over
    another number of rows may round differently in the last bits)."""
    for name in _feature_fields():
        x, y = getattr(a, name), getattr(b, name)
        if x.is_floating_point():
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12, msg=name)
        else:
            assert torch.equal(x, y), name


def test_features_do_not_depend_on_batching(potential64):
    from equilens.descriptors.projected import featurize

    frames = iron_water_example(n_frames=5, seed=2)
    a = featurize(frames, HYPERS, potential64.pca, batch_size=5, dtype=torch.float64)
    b = featurize(frames, HYPERS, potential64.pca, batch_size=2, dtype=torch.float64)
    _assert_same_features(a, b)
    # selecting frames 3 and 1 equals featurizing them alone
    c = featurize([frames[3], frames[1]], HYPERS, potential64.pca, dtype=torch.float64)
    d = a.select([3, 1])
    _assert_same_features(c, d)
    # a consecutive selection is a view and equals featurizing those frames
    e = featurize(frames[1:4], HYPERS, potential64.pca, dtype=torch.float64)
    f = a.select([1, 2, 3])
    assert f.grad_values.data_ptr() == a.grad_values[int(a.pair_offsets[1])].data_ptr()
    _assert_same_features(e, f)


@pytest.mark.parametrize("batching", ["frames", "blocks"])
def test_batches_cover_every_frame_once_and_depend_on_the_epoch(batching):
    from equilens.training.loop import TrainConfig, _batches

    config = TrainConfig(batch_size=4, batching=batching, seed=3)
    first = _batches(23, config, epoch=1)
    assert sorted(torch.cat(first).tolist()) == list(range(23))
    assert all(len(b) <= 4 for b in first)
    again = _batches(23, config, epoch=1)
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    other = _batches(23, config, epoch=2)
    assert any(not torch.equal(x, y) for x, y in zip(first, other)) or len(first) != len(other)


def test_gradient_aware_compression():
    frames = iron_water_example(n_frames=6, seed=5)
    soap = compute_soap(frames, SPECIES, HYPERS)

    def gradients():
        return (
            compute_soap([f], SPECIES, HYPERS, gradients=True, neighbors="properties")
            for f in frames[:3]
        )

    plain = SpeciesPCA(n_components=10, gradient_weight=0.0).fit(soap, gradients())
    reference = SpeciesPCA(n_components=10).fit(soap)  # no gradients given: plain PCA
    mixed = SpeciesPCA(n_components=10, gradient_weight=1.0).fit(soap, gradients())
    for z in SPECIES:
        np.testing.assert_allclose(plain.components_[z], reference.components_[z], atol=1e-10)
        w = mixed.components_[z]
        np.testing.assert_allclose(w.T @ w, np.eye(10), atol=1e-10)
        # the gradient covariance changes which directions are kept
        overlap = np.linalg.svd(plain.components_[z].T @ w, compute_uv=False)
        assert overlap.min() < 0.99


def test_compression_of_few_rows_equals_the_covariance_eigenvectors():
    """Fewer atoms than SOAP features: the components come from the rows'
    thin SVD; they are the covariance's leading eigenvectors (signs fixed the
    same way), with the same variances and explained ratios."""
    soap = compute_soap(iron_water_example(n_frames=1, seed=2), SPECIES, HYPERS)
    pca = SpeciesPCA(n_components=12).fit(soap)
    few = 0
    for key, block in soap.items():
        z, values = int(key["center_type"]), block.values
        few += len(values) < values.shape[1]
        centered = values - values.mean(axis=0)
        covariance = centered.T @ centered / (len(values) - 1)
        kept = min(12, len(values) - 1)  # a rank-deficient species keeps fewer
        eigenvalues, vectors = np.linalg.eigh(covariance)
        eigenvalues, vectors = eigenvalues[::-1][:kept], vectors[:, ::-1][:, :kept]
        vectors = vectors * np.sign(vectors[np.abs(vectors).argmax(axis=0), range(kept)])
        np.testing.assert_allclose(pca.components_[z][:, :kept], vectors, atol=1e-8)
        assert not pca.components_[z][:, kept:].any()
        ratio = eigenvalues / np.trace(covariance)
        np.testing.assert_allclose(pca.explained_variance_ratio_[z], ratio, rtol=1e-8)
        np.testing.assert_allclose(pca.scale_[z][:kept], np.sqrt(eigenvalues), rtol=1e-8)
    assert few >= 1  # the few-rows path ran


@pytest.mark.parametrize("shared", [False, True])
def test_compression_fitted_batch_by_batch_equals_the_whole_fit(shared):
    """The rows drawn from the atom counts and gathered from batches of
    frames are those :meth:`SpeciesPCA.fit` draws from the whole SOAP: the
    same projection, bit for bit (max_samples below the H and Fe counts, so
    that rows are drawn)."""
    frames = iron_water_example(n_frames=6, seed=4)
    whole = SpeciesPCA(n_components=8, max_samples=40, seed=3, shared=shared)
    whole.fit(compute_soap(frames, SPECIES, HYPERS))
    batched = SpeciesPCA(n_components=8, max_samples=40, seed=3, shared=shared)
    batched.fit_batches(frames, SPECIES, lambda batch: compute_soap(batch, SPECIES, HYPERS), 4)
    assert batched.species_ == whole.species_ == list(SPECIES)
    for z in SPECIES:
        for name in ("mean_", "components_", "scale_"):
            assert np.array_equal(getattr(batched, name)[z], getattr(whole, name)[z]), (z, name)
    # and the draw mattered: another seed gives another projection
    other = SpeciesPCA(n_components=8, max_samples=40, seed=4, shared=shared)
    other.fit_batches(frames, SPECIES, lambda batch: compute_soap(batch, SPECIES, HYPERS), 4)
    assert not np.array_equal(other.mean_[1], whole.mean_[1])


def test_train_command_line(lj_files, tmp_path, capsys):
    import yaml

    from equilens.cli import main

    config = {
        "task": "potential",
        "name": "lj_cli",
        "data": {"train": str(lj_files["train"]), "validation": str(lj_files["validation"])},
        "descriptor": {"preset": "small", "species": [1, 8, 26]},
        "compression": {"n_components": 12},
        "model": {"hidden": [8]},
        "training": {"epochs": 2, "batch_size": 4},
        "cache_dir": None,
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--output", str(tmp_path / "out"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "validation energy RMSE" in out and "force RMSE" in out
    assert (tmp_path / "out" / "model.pt").is_file()
    # a bad key is reported by name, with exit code 2
    path.write_text(yaml.safe_dump({**config, "trainig": {}}))
    assert main(["train", str(path)]) == 2
    assert "unknown key 'trainig'" in capsys.readouterr().err


def test_gfre_between_layers_of_a_trained_model(lj_files, tmp_path):
    """A linear map of the descriptor explains most of the first hidden layer,
    while the (narrower) hidden layer cannot give the descriptor back: the
    GFRE is asymmetric the right way. (On the trained iron/water model, per
    species: 0.43-0.45 forward, 0.82-0.90 backward.)"""
    from equilens.analysis.compare import compare
    from equilens.analysis.latents import latents

    potential, _ = train_potential(_config(lj_files, tmp_path), progress=False)
    frames = ase.io.read(lj_files["train"], ":")
    # one species: every species has its own network and its own PCA
    # coordinates, so layers are compared species by species
    layers = latents(potential, frames)
    iron = {name: layers[name].block({"center_type": 26}).values for name in ("input", "hidden_1")}
    result = compare(iron, measures=("gfre",), n_samples=2000)
    forward = result.matrices["gfre"][0, 1]
    backward = result.matrices["gfre"][1, 0]
    assert forward < 0.7
    assert backward > forward + 0.1
    print(f"GFRE input -> hidden_1 {forward:.3f}, hidden_1 -> input {backward:.3f}")


def test_models_with_one_featurizer_share_their_features(make_potential, monkeypatch):
    """In a study, the seeds (here: two networks on one compression) are
    featurized once per batch of frames; a model with another compression
    is not given their features; the results are those without sharing."""
    import equilens.models.bpnn.model as bpnn_model
    from equilens.study.run import shared_features

    first = make_potential(8, (6,), seed=0)
    second = make_potential(8, (6,), seed=1)  # the same PCA, another network
    other = make_potential(8, (6,), seed=0, fit_frames=3)  # another PCA
    assert first.feature_fingerprint() == second.feature_fingerprint()
    assert first.feature_fingerprint() != other.feature_fingerprint()
    frames = iron_water_example(n_frames=5, seed=3)
    alone = [m.energies_and_forces(frames, batch_size=2) for m in (first, second, other)]
    layers = [m.layers(frames, batch_size=2) for m in (first, second, other)]

    calls = []
    original = bpnn_model.featurize
    monkeypatch.setattr(
        bpnn_model, "featurize", lambda *a, **k: calls.append(len(a[0])) or original(*a, **k)
    )
    with shared_features([first, second, other]) as memo:
        shared = [m.energies_and_forces(frames, batch_size=2) for m in (first, second, other)]
        shared_layers = [m.layers(frames, batch_size=2) for m in (first, second, other)]
    # 3 batches with gradients and 3 without for each featurizer: 12, not 18
    assert len(calls) == 12 and memo.hits == 6
    assert first.feature_memo is None and other.feature_memo is None
    for (e, f), (e_shared, f_shared) in zip(alone, shared):
        np.testing.assert_array_equal(e, e_shared)
        for a, b in zip(f, f_shared):
            np.testing.assert_array_equal(a, b)
    for before, after in zip(layers, shared_layers):
        for name in before:
            assert metatensor.equal(before[name], after[name]), name


def test_models_predicted_together_are_featurized_once(make_potential, monkeypatch):
    """Without a memo (the frames the study's uncertainty stage and a
    committee predict are featurized with gradients, too big to keep), the
    models that featurize alike are predicted batch by batch together: each
    batch featurized once per featurizer, every model's result the one it
    gives alone, in the order asked."""
    import equilens.models.bpnn.model as bpnn_model
    from equilens.models.energy.model import predict_shared, predict_together

    first = make_potential(8, (6,), seed=0)
    second = make_potential(8, (6,), seed=1)
    other = make_potential(8, (6,), seed=0, fit_frames=3)
    frames = iron_water_example(n_frames=5, seed=3)
    alone = {k: m.energies_and_forces(frames) for k, m in zip("abc", (first, other, second))}

    calls = []
    original = bpnn_model.featurize
    monkeypatch.setattr(
        bpnn_model, "featurize", lambda *a, **k: calls.append(len(a[0])) or original(*a, **k)
    )
    shared = predict_shared({"a": first, "b": other, "c": second}, frames)
    assert list(shared) == ["a", "b", "c"]
    assert sorted(calls) == [5, 5]  # one batch of 5 frames per featurizer, not three
    for key, (energies, forces) in alone.items():
        np.testing.assert_array_equal(energies, shared[key][0])
        for a, b in zip(forces, shared[key][1]):
            np.testing.assert_array_equal(a, b)
    energies_only = predict_shared({"a": first}, frames, forces=False)["a"]
    assert energies_only[1] is None
    np.testing.assert_array_equal(energies_only[0], alone["a"][0])
    with pytest.raises(ValueError, match="featurize differently"):
        predict_together([first, other], frames)


@pytest.mark.parametrize("storage", [torch.float64, torch.float16])
@pytest.mark.parametrize("width", [5, 200])
def test_force_contraction_gradients_equal_autograd_of_the_plain_product(
    storage, width, monkeypatch
):
    """The fused gather-and-contract of the force term (its hand-written
    backward) gives autograd's gradients of ``bmm(G, d[center])``, across
    chunk boundaries and for half-precision stored gradients."""
    from equilens.models.energy import forces

    monkeypatch.setattr(forces, "PAIR_CHUNK", 7)  # several chunks
    generator = torch.Generator().manual_seed(3)
    n_atoms, n_pairs = 11, 40
    d = torch.randn(n_atoms, width, dtype=torch.float64, generator=generator)
    gradients = torch.randn(n_pairs, 3, width, generator=generator, dtype=torch.float64)
    gradients = gradients.to(storage)
    centers = torch.randint(n_atoms, (n_pairs,), generator=generator)
    weights = torch.randn(n_pairs, 3, dtype=torch.float64, generator=generator)

    fused = d.clone().requires_grad_(True)
    out = forces._Contract.apply(fused, gradients, centers)
    (out * weights).sum().backward()

    plain = d.clone().requires_grad_(True)
    reference = torch.bmm(gradients.to(torch.float64), plain[centers].unsqueeze(-1)).squeeze(-1)
    (reference * weights).sum().backward()

    torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fused.grad, plain.grad, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda x: forces._Contract.apply(x, gradients, centers),
        (d.clone().requires_grad_(True),),
    )
