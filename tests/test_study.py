"""End-to-end smoke run of the study on a few frames of the embedded dataset."""

import numpy as np
import pytest

from equilens.config import from_mapping
from equilens.errors import ConfigError
from equilens.study import StudyConfig, StudyError, run_study
from equilens.study.config import EMBEDDED_DATA, is_reference


def _tiny(tmp_path, **overrides):
    mapping = {
        "name": "smoke",
        "data": {"train": EMBEDDED_DATA, "validation_fraction": 0.25},
        "read": {"index": "0:12", "require_forces": True},
        "compression": {"n_components": 12},
        "training": {"epochs": 2, "learning_rate": 0.001, "scheduler": "cosine"},
        "sweep": [
            {"name": "a", "model": {"hidden": [8, 8]}},
            {"name": "b", "model": {"hidden": [8], "bottleneck": 3, "activation": "tanh"}},
        ],
        "seeds": [0, 1],
        "analysis_frames": 6,
        "autoencoder_width": 3,
        "autoencoder_epochs": 5,
        "max_samples": 400,
        "output_dir": str(tmp_path / "results"),
        "chemiscope_dir": str(tmp_path / "chemiscope"),
        "cache_dir": str(tmp_path / "cache"),
    }
    mapping.update(overrides)
    return from_mapping(StudyConfig, mapping, where="test")


def test_study_smoke_run(tmp_path):
    import csv

    from equilens.export.chemiscope import validate_chemiscope

    folder = run_study(_tiny(tmp_path), progress=False)
    rows = list(csv.DictReader(open(folder / "scorecard.csv")))
    names = {row["feature_set"] for row in rows}
    assert {"a/hidden_1", "a/hidden_2", "b/hidden_1", "b/bottleneck"} <= names
    assert {"autoencoder/latent", "pcovr/latent", "soap-pca/descriptor"} <= names
    ranks = [float(row["mean_rank"]) for row in rows]
    assert ranks == sorted(ranks)
    per_seed = list(csv.DictReader(open(folder / "scorecard_seeds.csv")))
    assert {row["seed"] for row in per_seed} == {"0", "1"}
    decoding = {row["feature_set"]: row["decoding"] for row in rows}
    # per-species networks are in the ranking: every set is decoded within species
    assert set(decoding.values()) == {"per species"}
    for row in rows:
        assert row.get("decode_species", "") == ""  # constant within a species
        assert np.isfinite(float(row["gfre_from_descriptor"]))
        assert np.isfinite(float(row["decode_cn_o_h@pc"]))
    # each model layer is scored against its own model's output, apart
    assert np.isfinite(
        float(next(r for r in rows if r["feature_set"] == "a/hidden_1")["decode_output"])
    )
    assert next(r for r in rows if r["feature_set"] == "pcovr/latent")["decode_output"] == ""
    report = (folder / "report.md").read_text()
    assert "Most interpretable layer (physical labels only)" in report and "mean rank" in report
    assert "Which layer encodes which label" in report and "| cn_o_h |" in report
    for name in ("scorecard.png", "layer_maps.png", "metrics.json"):
        assert (folder / name).stat().st_size > 0
    # the scorecard table fits a page; the report links its plots and chemiscope file
    table = report[report.index("## Scorecard") : report.index("## Families")]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows and all(line.count("|") == 7 for line in rows)
    assert "(layer_maps.png)" in report and "(scorecard.png)" in report
    assert "smoke.json.gz" in report and "## Files: what to look at" in report
    assert list((folder / "gfre").glob("center_type_*/heatmap_gfre.png"))
    data = validate_chemiscope(tmp_path / "chemiscope" / "smoke.json.gz")
    assert "a/hidden_1 PCA[1]" in data["properties"] and "height" in data["properties"]
    # a rerun reusing the trained models gives the same scorecard: tests/test_faults.py


def test_study_errors_name_the_stage_or_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'sweeps'"):
        _tiny(tmp_path, sweeps=[])
    with pytest.raises(StudyError, match="stage 'data'.*missing.extxyz"):
        run_study(_tiny(tmp_path, data={"train": str(tmp_path / "missing.extxyz")}), progress=False)


def test_study_reads_external_models(tmp_path, make_potential):
    """A model given under `models:` (here a metatomic export; sevenn:7net-0
    works alike) is scored, compared and mapped with the sweep."""
    import csv

    from equilens.export.chemiscope import read_chemiscope
    from equilens.export.metatomic import export_metatomic

    exported = export_metatomic(make_potential(8, (6,), seed=4), tmp_path / "ext" / "other.pt")
    config = _tiny(
        tmp_path,
        sweep=[{"name": "a", "model": {"hidden": [8]}}],
        seeds=[0],
        models=[str(exported)],
    )
    folder = run_study(config, progress=False)
    rows = {r["feature_set"]: r for r in csv.DictReader(open(folder / "scorecard.csv"))}
    assert {"other/hidden_1", "other/descriptor"} <= set(rows)  # its input: a descriptor
    assert np.isfinite(float(rows["other/hidden_1"]["decode_output"]))
    assert list((folder / "gfre").glob("center_type_*/heatmap_gfre.png"))
    gfre = (folder / "gfre" / "center_type_8" / "matrices.json").read_text()
    assert "other/hidden_1" in gfre
    data = read_chemiscope(tmp_path / "chemiscope" / "smoke.json.gz")
    assert "other/hidden_1 PCA[1]" in data["properties"]
    best = next(name for name in rows if not is_reference(name))  # the most interpretable
    assert data["settings"]["map"]["x"]["property"] == f"{best} PCA[1]"


def test_a_sweep_across_families(tmp_path):
    """An equivariant potential and a NequIP-type model (sevenn, trained from
    scratch by its own trainer) next to a BPNN in one sweep: all trained on
    the same splits, their layers (equivariant ones through their invariant
    summaries) scored and compared in one ranking."""
    import csv
    import importlib.util
    import json

    sweep = [
        {"name": "bpnn", "model": {"hidden": [8, 8]}},
        {
            "name": "equivariant",
            "task": "equivariant_potential",
            "model": {"hidden": [8]},
            "options": {"features": {"density_components": 4, "n_components": 6}},
        },
    ]
    nequip = importlib.util.find_spec("sevenn") is not None
    if nequip:
        model = {"channel": 4, "lmax": 1, "num_convolution_layer": 2}
        sweep.append({"name": "nequip", "task": "sevenn", "model": model})
    folder = run_study(_tiny(tmp_path, sweep=sweep, seeds=[0]), progress=False)
    names = {row["feature_set"] for row in csv.DictReader(open(folder / "scorecard.csv"))}
    # a model's input is its descriptor, learned by no model: a reference
    assert {"bpnn/hidden_1", "equivariant/descriptor", "equivariant/hidden_1"} <= names
    assert not {"equivariant/input", "bpnn/input"} & names
    assert (folder / "models" / "equivariant" / "seed0" / "model.pt").is_file()
    if nequip:
        assert {"nequip/embedding", "nequip/interaction_1"} <= names
        run = folder / "models" / "nequip" / "seed0"
        summary = json.loads((run / "metrics.json").read_text())
        assert summary["base_model"] is None and "composition" in summary["baselines"]
        assert summary["epochs_run"] == 2  # the study's epochs; its scheduler is not sevenn's
    # every layer but the output of every family's model: its latent distance
    # ranked against the model's force errors on the held-out atoms
    rows = list(csv.DictReader(open(folder / "uncertainty.csv")))
    layers = {(row["model"], row["layer"]) for row in rows}
    assert {("bpnn", "input"), ("bpnn", "hidden_1"), ("equivariant", "hidden_1")} <= layers
    assert ("bpnn", "output") not in layers
    bpnn = [float(row["atom_spearman"]) for row in rows if row["model"] == "bpnn"]
    assert len(bpnn) == 3 and all(-1 <= value <= 1 for value in bpnn)
    report = (folder / "report.md").read_text()
    assert "## Which layer's latent distance flags its model's errors" in report
    verdict = report.split("## Most interpretable layer")[1].split("**")[1]
    assert verdict.split("/")[1] not in ("descriptor", "latent"), verdict


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"name": "x", "task": "tensor"}, "sweep entry 'x'.*does not train a potential"),
        ({"name": "x", "task": "magic"}, "sweep entry 'x': task: expected one of"),
        ({"name": "x", "model": {"depth": 3}}, "sweep entry 'x'.*unknown key 'depth'"),
        (
            {"name": "x", "task": "equivariant_potential", "options": {"features": {"n": 1}}},
            "sweep entry 'x'.*unknown key 'n'",
        ),
        (
            {"name": "x", "task": "sevenn", "model": {"channels": 4}},
            "sweep entry 'x'.*unknown key 'channels'|sweep entry 'x': task sevenn needs",
        ),
    ],
)
def test_a_bad_sweep_entry_is_named_before_training(tmp_path, entry, message):
    config = _tiny(tmp_path, sweep=[entry])
    with pytest.raises(StudyError, match=message):
        run_study(config, progress=False)
    assert not (tmp_path / "results" / "smoke" / "models").exists()


def test_a_refused_study_is_corrected_and_runs_on_four_frames(tmp_path, capsys):
    """An unusable external model is refused before anything is trained or
    claimed, so the corrected configuration runs in the same folder; four
    frames (fewer than a batch) train without an empty batch; --output
    moves every output."""
    import ase.io

    from equilens.cli import main
    from equilens.data.embedded import embedded_path

    source = embedded_path(EMBEDDED_DATA.removeprefix("embedded:"))
    ase.io.write(tmp_path / "four.extxyz", ase.io.read(source, ":4"))
    text = (
        f"name: four\ndata: {{train: {tmp_path / 'four.extxyz'}}}\n"
        "sweep: [{name: a, model: {hidden: [8]}}]\nseeds: [0]\ntraining: {epochs: 2}\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "models: [sevenn:no-such-model]\n")
    assert main(["study", str(bad), "--quiet", "--output", str(tmp_path / "out")]) == 2
    assert "models (sevenn:no-such-model)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    good = tmp_path / "good.yaml"
    good.write_text(text + "models: []\n")
    assert main(["study", str(good), "--quiet", "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "four" / "report.md").is_file()
    assert (tmp_path / "out" / "four.json.gz").is_file()


def test_layer_maps_show_only_labels_that_vary_on_the_species():
    from equilens.study.maps import varying_labels

    numbers = np.array([1, 1, 8, 8, 26, 26])
    labels = {
        "height": np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
        "cn_o_h": np.array([0, 0, 1, 2, 0, 0]),
        "hbonds": np.array([1, 0, 2, 2, 0, 0]),
        "o_state": np.array([0, 0, 1, 2, 0, 0]),
    }
    assert varying_labels(labels, numbers == 26) == ["height"]
    assert varying_labels(labels, numbers == 8) == ["height", "o_state", "cn_o_h"]
    assert varying_labels(labels, numbers == 1) == ["height", "hbonds"]


def test_a_category_has_one_colour_in_every_layer_map():
    """Panels whose atoms hold different categories (water and hydroxyl on
    one species, only hydroxyl on another) draw each category in one colour."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from equilens.study.maps import _scatter

    fig, (one, two) = plt.subplots(1, 2)
    everywhere = np.array([0, 1, 2, 2, 1])
    categories = np.unique(everywhere)
    coordinates = np.zeros((2, 2))
    _scatter(fig, one, coordinates, np.array([1, 2]), "o_state", categories)
    _scatter(fig, two, coordinates, np.array([2, 2]), "o_state", categories)
    colours = [
        {c.get_label(): tuple(c.get_facecolor()[0]) for c in ax.collections} for ax in (one, two)
    ]
    shared = set(colours[0]) & set(colours[1])
    assert len(shared) == 1 and len(colours[0]) == 2
    assert all(colours[0][name] == colours[1][name] for name in shared)
    plt.close(fig)


def test_the_uncertainty_stage_reuses_the_training_layers(make_potential, tmp_path, monkeypatch):
    """Layers the study already has for the training frames give the same
    uncertainty rows as layers computed again."""
    from equilens.data.examples import iron_water_example
    from equilens.data.io import Dataset
    from equilens.study.layers import model_layers
    from equilens.study.uncertainty import layer_uncertainty

    model = make_potential(6, (8, 8), seed=2)
    other = make_potential(6, (8,), seed=3)
    rng = np.random.default_rng(0)

    def labelled(frames):
        energies, forces = model.energies_and_forces(frames)
        noisy = [f + 0.1 * rng.normal(size=f.shape) for f in forces]
        return Dataset(frames, energies + rng.normal(size=len(frames)), noisy)

    splits = {
        "train": labelled(iron_water_example(n_frames=6, seed=4)),
        "validation": labelled(iron_water_example(n_frames=3, seed=5)),
    }
    sweep = [{"name": "m", "model": {"hidden": [8, 8]}}, {"name": "o", "model": {"hidden": [8]}}]
    config = _tiny(tmp_path, sweep=sweep)
    potentials = {"m/seed0": model, "o/seed0": other}
    again = layer_uncertainty(config, potentials, splits)
    train = splits["train"].frames
    computed = {key: model_layers(p, train).raw for key, p in potentials.items()}
    calls = []
    original = type(model).layers

    def counted(self, frames, batch_size=50):
        calls.append(len(frames))
        return original(self, frames, batch_size)

    monkeypatch.setattr(type(model), "layers", counted)
    reused = layer_uncertainty(config, potentials, splits, computed)
    layers = [(row["model"], row["layer"]) for row in again]
    assert layers == [("m", "input"), ("m", "hidden_1"), ("m", "hidden_2"),
                      ("o", "input"), ("o", "hidden_1")]  # fmt: skip
    assert reused == again
    # every model's layers were read for the held-out frames only
    assert calls == [len(splits["validation"])] * 2


def test_runs_that_compute_the_same_features_share_one_key(tmp_path):
    """The sweep's cluster path makes runs wait for the first run with the
    same key: every BPNN of every seed shares one (the compression and the
    features do not depend on the training seed), every seed of an
    equivariant entry shares another (its maps and features do not depend
    on the seed either); another compression or other features or no cache,
    no sharing."""
    import dataclasses

    from equilens.models.registry import shared_work
    from equilens.study.sweep import entry_config

    equivariant = {"name": "e", "task": "equivariant_potential", "model": {"hidden": [8]},
                   "options": {"features": {"n_components": 4}}}  # fmt: skip
    config = _tiny(tmp_path, sweep=_tiny(tmp_path).sweep + (equivariant,))
    a, b, e = config.sweep

    def key(entry, seed, study=config):
        return shared_work(entry_config(study, entry, seed, tmp_path))

    assert key(a, 0) == key(b, 0) == key(a, 1) == key(b, 1)
    other = dataclasses.replace(config, compression=dataclasses.replace(config.compression, seed=1))
    assert key(a, 0, other) != key(a, 0)
    assert key(e, 0) == key(e, 1) != key(a, 0)
    wider = dataclasses.replace(e, options={"features": {"n_components": 6}})
    assert key(wider, 0) != key(e, 0)
    assert key(a, 0, dataclasses.replace(config, cache_dir=None)) is None


@pytest.mark.slow
def test_prepared_shared_work_is_what_every_run_reads(tmp_path, monkeypatch):
    """What the cluster path computes once before a group of runs
    (:func:`prepare_shared`): afterwards no run of the group computes a
    descriptor (BPNN entries and seeds, equivariant seeds), and preparing
    claims no output folder."""
    from equilens.models import bpnn, equivariant
    from equilens.models.registry import prepare_shared, train
    from equilens.study.sweep import entry_config

    equivariant_entry = {"name": "e", "task": "equivariant_potential", "model": {"hidden": [8]},
                         "options": {"features": {"n_components": 4}}}  # fmt: skip
    config = _tiny(tmp_path, sweep=_tiny(tmp_path).sweep + (equivariant_entry,))
    a, b, e = config.sweep
    for entry in (a, e):
        prepared = entry_config(config, entry, 0, tmp_path)
        prepare_shared(prepared)
        assert not (prepared.output / "run.json").exists()

    def computed(*args, **kwargs):
        raise AssertionError("a descriptor computed after the shared work was prepared")

    monkeypatch.setattr(bpnn.task, "compute_soap", computed)
    monkeypatch.setattr(equivariant.task, "featurize_equivariant", computed)
    for entry, seed in ((a, 1), (b, 0), (e, 1)):
        _, summary = train(entry_config(config, entry, seed, tmp_path), False)
        assert summary["metrics"]["validation"]["force_rmse_eV_per_A"] > 0


def _families(ranks, forces):
    """The families section of a two-entry sweep (BPNN, equivariant) with
    the given mean ranks ``{set: (mean, spread)}`` and per-seed forces."""
    from types import SimpleNamespace

    from equilens.study.config import ArchitectureConfig
    from equilens.study.families import families_section

    sweep = [ArchitectureConfig("bpnn"), ArchitectureConfig("eq", task="equivariant_potential")]
    config = SimpleNamespace(sweep=sweep, seeds=[0, 1, 2])
    aggregated = sorted(
        ({"feature_set": n, "mean_rank": m, "mean_rank_std": s} for n, (m, s) in ranks.items()),
        key=lambda row: row["mean_rank"],
    )
    base = {"composition": {"validation": {"force_rmse_eV_per_A": 1.0}}}
    summaries = {
        f"{name}/seed{seed}": {
            "metrics": {"validation": {"force_rmse_eV_per_A": forces[name][seed]}},
            "baselines": base,
            "seconds": 10.0,
        }
        for name in forces
        for seed in range(3)
    }
    return "\n".join(families_section(config, aggregated, summaries))


def test_the_families_verdict_weighs_each_gap_against_the_seeds_spread():
    """'More readable' or 'more accurate' only when the gap between the
    best layers (the best entries) exceeds their spreads over seeds; the
    equivariant entry's descriptor is never its best layer."""
    forces = {"bpnn": [0.15, 0.16, 0.17], "eq": [0.27, 0.28, 0.26]}
    clear = {"eq/descriptor": (1.0, 0.0), "eq/hidden_1": (5.0, 0.2), "bpnn/hidden_1": (8.0, 0.5)}
    text = _families(clear, forces)
    assert "best learned layer is more readable here: **eq/hidden_1**" in text
    assert "**eq/descriptor**, mean rank" not in text
    assert "and the model less accurate: 0.270 ± 0.008 against 0.160 ± 0.008" in text
    close = {"eq/hidden_1": (5.0, 0.6), "bpnn/hidden_1": (5.5, 0.5)}
    text = _families(close, {"bpnn": [0.20, 0.25, 0.30], "eq": [0.22, 0.26, 0.29]})
    assert "neither more readable nor less readable (the gap is within" in text
    assert "neither more accurate nor less accurate" in text


def test_the_families_verdict_separates_the_inputs_from_the_training():
    """A readability gap between the best layers that their inputs (learned
    by no model) already have is said to be the inputs': each network's move
    from its own input's rank is compared, against the spreads."""
    forces = {"bpnn": [0.15, 0.16, 0.17], "eq": [0.27, 0.28, 0.26]}
    ranks = {
        "eq/descriptor": (2.0, 0.1),
        "eq/hidden_1": (3.0, 0.1),
        "soap-pca/descriptor": (6.0, 0.1),
        "bpnn/hidden_1": (7.0, 0.1),
    }
    text = _families(ranks, forces)
    assert "| eq/hidden_1 (2) | 3.00 | 2.00 |" in text
    assert "the equivariant entry's input is more readable." in text
    assert "by +1.00 (equivariant) and +1.00 (BPNN" in text
    assert "best layer came out neither more readable nor less readable" in text
    ranks["bpnn/hidden_1"] = (9.0, 0.1)
    text = _families(ranks, forces)
    assert "best layer came out more readable." in text
