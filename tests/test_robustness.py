"""Bad input, as a careless or hostile user gives it, over every verb.

Each case must end in exit code 2 with one line on stderr that names the
culprit (file, frame, key, layer, option), and must leave no half-written
output (no temporary file, no output of the failed run).
"""

import os
import re
from pathlib import Path

import ase
import ase.io
import numpy as np
import pytest
import torch
import yaml

from equilens.cli import main
from equilens.data.embedded import embedded_path
from equilens.data.examples import iron_water_example

WATER = embedded_path("water_tensors/structures.extxyz")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def world(tmp_path_factory, lj_files, make_potential):
    """Good inputs, and one bad file of each kind, in one folder."""
    root = tmp_path_factory.mktemp("bad")
    model = make_potential(8, (4,), seed=1).save(root / "model.pt")
    frames = iron_water_example(n_frames=2, seed=4)
    good = root / "good.extxyz"
    ase.io.write(good, frames)
    bad = {}
    bad["random.pt"] = root / "random.pt"
    bad["random.pt"].write_bytes(np.random.default_rng(0).bytes(5000))
    bad["text.pt"] = root / "text.pt"
    bad["text.pt"].write_text("this is not a model\n")
    bad["list.pt"] = root / "list.pt"
    torch.save([1, 2, 3], bad["list.pt"])
    bad["cut.pt"] = root / "cut.pt"
    bad["cut.pt"].write_bytes(model.read_bytes()[:3000])
    bad["folder.pt"] = root / "folder.pt"
    bad["folder.pt"].mkdir()
    bad["numpy.pt"] = root / "numpy.pt"  # pickled numpy: equilens 0.1 style
    torch.save({"format_version": 1, "pca": np.ones(3)}, bad["numpy.pt"])
    bad["evil.pt"] = root / "evil.pt"
    torch.save({"equilens": {"kind": "x"}, "p": _Payload(str(root / "PWNED"))}, bad["evil.pt"])
    labelled = ase.io.read(lj_files["validation"], ":3")  # energies and forces
    overlapping = labelled[1].copy()
    overlapping.positions[5] = overlapping.positions[3] + 0.01
    ase.io.write(root / "overlap.extxyz", [labelled[0], overlapping])
    nan = labelled[1].copy()
    nan.positions[2, 1] = np.nan
    ase.io.write(root / "nan.extxyz", [labelled[0], nan])
    gold = labelled[2].copy()
    gold.numbers[4] = 79
    ase.io.write(root / "gold.extxyz", [labelled[0], labelled[1], gold])
    (root / "notdata.extxyz").write_text("hello\nworld\n")
    (root / "corrupt.mts").write_bytes(b"\x93NUMPY" + os.urandom(200))
    (root / "binary.yaml").write_bytes(os.urandom(300))
    (root / "list.yaml").write_text("- 1\n- 2\n")
    return {"root": root, "model": model, "good": good, "lj": lj_files, **bad}


def _train_config(world, path, **changes):
    config = {
        "task": "potential",
        "name": "bad",
        "data": {"train": str(world["lj"]["train"]), "validation": str(world["lj"]["validation"])},
        "descriptor": {"preset": "small", "species": [1, 8, 26]},
        "compression": {"n_components": 8},
        "model": {"hidden": [4]},
        "training": {"epochs": 1},
        "cache_dir": None,
    }
    for key, value in changes.items():
        section, _, field = key.partition(".")
        if field:
            config.setdefault(section, {})[field] = value
        elif value is None:
            config.pop(section)
        else:
            config[section] = value
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _study_config(path, **changes):
    config = {"name": "bad", "read": {"index": "0:6"}, "seeds": [0], **changes}
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _latents(world, name):
    return ["latents", str(world[name]), str(world["good"]), "--output", "{out}"]


def _export(world, name):
    return ["export", str(world[name]), str(world["good"]), "--output", "{out}/x.json.gz"]


MODEL_FILES = ["random.pt", "text.pt", "list.pt", "cut.pt", "folder.pt", "numpy.pt", "evil.pt"]

CASES = {
    # model files given to latents and export (14)
    **{f"latents-{m}": (lambda w, t, m=m: _latents(w, m), m) for m in MODEL_FILES},
    **{f"export-{m}": (lambda w, t, m=m: _export(w, m), m) for m in MODEL_FILES},
    "latents-missing-model": (
        lambda w, t: ["latents", str(t / "nope.pt"), str(w["good"]), "--output", "{out}"],
        "nope.pt",
    ),
    # data files (8)
    "latents-overlapping-atoms": (
        lambda w, t: ["latents", str(w["model"]), str(w["root"] / "overlap.extxyz")],
        r"overlap.extxyz: frame 1: atoms 3 \(\w+\) and 5",
    ),
    "latents-nan-positions": (
        lambda w, t: ["latents", str(w["model"]), str(w["root"] / "nan.extxyz")],
        r"nan.extxyz: frame 1: non-finite positions",
    ),
    "latents-unknown-element": (
        lambda w, t: ["latents", str(w["model"]), str(w["root"] / "gold.extxyz")],
        r"gold.extxyz: frame 2: .*Au",
    ),
    "latents-missing-data": (
        lambda w, t: ["latents", str(w["model"]), str(t / "nothing.xyz")],
        "nothing.xyz",
    ),
    "data-info-not-data": (
        lambda w, t: ["data", "info", str(w["root"] / "notdata.extxyz")],
        "notdata.extxyz",
    ),
    "data-info-overlap": (
        lambda w, t: ["data", "info", str(w["root"] / "overlap.extxyz")],
        r"overlap.extxyz: frame 1",
    ),
    "descriptors-bad-index": (
        lambda w, t: ["descriptors", str(w["good"]), "--index", "x:y", "--output", "{out}"],
        "x:y",
    ),
    "descriptors-index-out-of-range": (
        lambda w, t: ["descriptors", str(w["good"]), "--index", "99", "--output", "{out}"],
        "frame index 99",
    ),
    # species lists (4)
    "descriptors-species-999": (
        lambda w, t: ["descriptors", str(w["good"]), "--species", "1,8,999", "--output", "{out}"],
        r"--species: \[999\]",
    ),
    "descriptors-species-text": (
        lambda w, t: ["descriptors", str(w["good"]), "--species", "H,O", "--output", "{out}"],
        "--species",
    ),
    "train-species-empty": (
        lambda w, t: ["train", _train_config(w, t / "c.yaml", **{"descriptor.species": []})],
        r"c.yaml.descriptor: species: the species list is empty",
    ),
    "train-species-negative": (
        lambda w, t: ["train", _train_config(w, t / "c.yaml", **{"descriptor.species": [1, -3]})],
        r"species: \[-3\] are not atomic numbers",
    ),
    "train-more-components-than-features": (
        lambda w, t: [
            "train",
            _train_config(w, t / "c.yaml", **{"compression.n_components": 10**8}),
            "--output",
            "{out}",
        ],  # fmt: skip
        r"compression.n_components: 100000000 components of \d+ SOAP features",
    ),
    # training configurations (9)
    "train-missing-config": (lambda w, t: ["train", str(t / "none.yaml")], "none.yaml"),
    "train-binary-config": (
        lambda w, t: ["train", str(w["root"] / "binary.yaml")],
        "binary.yaml",
    ),
    "train-list-config": (lambda w, t: ["train", str(w["root"] / "list.yaml")], "list.yaml"),
    "train-config-directory": (lambda w, t: ["train", str(w["root"])], "is a directory"),
    "train-no-task": (
        lambda w, t: ["train", _train_config(w, t / "c.yaml", task=None)],
        "missing key 'task'",
    ),
    "train-unknown-task": (
        lambda w, t: ["train", _train_config(w, t / "c.yaml", task="magic")],
        r"task: expected one of potential, tensor, equivariant_potential, sevenn, mace, metatrain, "
        r"got 'magic'",
    ),
    "train-unknown-key": (
        lambda w, t: ["train", _train_config(w, t / "c.yaml", **{"training.epoch": 3})],
        "unknown key 'epoch'",
    ),
    "train-negative-epochs": (
        lambda w, t: ["train", _train_config(w, t / "c.yaml", **{"training.epochs": -2})],
        "epochs and batch_size must be >= 1",
    ),
    "train-unknown-element": (
        lambda w, t: [
            "train",
            _train_config(w, t / "c.yaml", **{"data.train": str(w["root"] / "gold.extxyz")}),
        ],
        r"gold.extxyz: frame 2: species Au",
    ),
    "train-overlapping-atoms": (
        lambda w, t: [
            "train",
            _train_config(
                w, t / "c.yaml", **{"data.validation": str(w["root"] / "overlap.extxyz")}
            ),
        ],
        r"overlap.extxyz: frame 1: atoms 3",
    ),
    "train-epochs-option": (
        lambda w, t: ["train", _train_config(w, t / "c.yaml"), "--epochs", "0"],
        "--epochs must be >= 1",
    ),
    # study configurations (4)
    "study-negative-analysis-frames": (
        lambda w, t: ["study", _study_config(t / "s.yaml", analysis_frames=-1)],
        r"s.yaml: analysis_frames must be >= 1",
    ),
    "study-negative-max-samples": (
        lambda w, t: ["study", _study_config(t / "s.yaml", max_samples=-5)],
        "max_samples must be >= 1",
    ),
    "study-negative-autoencoder-epochs": (
        lambda w, t: ["study", _study_config(t / "s.yaml", autoencoder_epochs=-1)],
        "autoencoder_epochs must be >= 1",
    ),
    "study-unknown-key": (
        lambda w, t: ["study", _study_config(t / "s.yaml", sweeps=[])],
        "unknown key 'sweeps'",
    ),
    # compare (4)
    "compare-corrupt-mts": (
        lambda w, t: ["compare", str(w["root"] / "corrupt.mts"), str(w["root"] / "corrupt.mts")],
        "corrupt.mts: not a readable",
    ),
    "compare-missing-input": (
        lambda w, t: ["compare", str(t / "gone"), str(t / "gone2")],
        "no such file or latents folder",
    ),
    "compare-one-input": (
        lambda w, t: ["compare", "{latents}", "--measures", "gfre", "--output", "{out}"],
        None,  # filled below: needs two sets, the folder has several layers: passes
    ),
    "compare-different-structures": (
        lambda w, t: [
            "compare",
            "a={latents}",
            "b={other_latents}",
            "--measures",
            "gfre",
            "--output",
            "{out}",
        ],  # fmt: skip
        "computed on different structures",
    ),
    # export options (3)
    "export-bad-cutoff": (
        lambda w, t: [
            "export",
            str(w["model"]),
            str(w["good"]),
            "--cutoff",
            "-1",
            "--output",
            "{out}/x.json.gz",
            "--no-forces",
        ],  # fmt: skip
        "cutoff must be positive",
    ),
    "export-absent-species": (
        lambda w, t: [
            "export",
            str(w["model"]),
            str(w["good"]),
            "--species",
            "7",
            "--output",
            "{out}/x.json.gz",
            "--no-forces",
        ],  # fmt: skip
        r"species \[7\] are not in the frames",
    ),
    "export-bad-output-name": (
        lambda w, t: ["export", str(w["model"]), str(w["good"]), "--output", "{out}/x.txt"],
        "must end in .json.gz or .json",
    ),
    # generate (2)
    "generate-bad-key": (
        lambda w, t: [
            "generate",
            "iron-water",
            "--config",
            _bad_generator(t),
            "--output",
            "{out}/x.extxyz",
        ],  # fmt: skip
        "unknown key 'temperatur'",
    ),
    "generate-corrupt-state": (
        lambda w, t: ["generate", "iron-water", "--output", _corrupt_state(t)],
        r"\.state: unreadable generator checkpoint",
    ),
    # issue 26: readers and writers of the newer verbs (10)
    "filter-nan-positions": (
        lambda w, t: ["data", "filter", str(w["root"] / "nan.extxyz"), "{out}/x.extxyz"],
        r"nan.extxyz: frame 1: non-finite positions",
    ),
    "filter-overlapping-atoms": (
        lambda w, t: ["data", "filter", str(w["root"] / "overlap.extxyz"), "{out}/x.extxyz"],
        r"overlap.extxyz: frame 1: atoms 3 \(\w+\) and 5",
    ),
    "filter-nothing-kept": (
        lambda w, t: ["data", "filter", str(w["good"]), "{out}/x.extxyz", "--contains", "Au"],
        r"good.extxyz: no frame passes the filters .*nothing written",
    ),
    "filter-nan-threshold": (
        lambda w, t: ["data", "filter", str(w["good"]), "{out}/x.extxyz", "--min-entropy", "nan"],
        "min_cation_entropy",
    ),
    "filter-output-is-a-folder": (
        lambda w, t: ["data", "filter", str(w["good"]), str(w["root"])],
        "is a folder; give the path of the extxyz file",
    ),
    "filter-output-under-a-file": (
        lambda w, t: ["data", "filter", str(w["good"]), str(_a_file(t) / "x.extxyz")],
        "afile: is a file, not a folder",
    ),
    "overview-nan-positions": (
        lambda w, t: ["data", "overview", str(w["root"] / "nan.extxyz"), "--output", "{out}"],
        r"nan.extxyz: frame 1: non-finite positions",
    ),
    "overview-no-exemplars": (
        lambda w, t: ["data", "overview", str(w["good"]), "--output", "{out}", "--exemplars", "0"],
        "n_exemplars: expected >= 1",
    ),
    "descriptors-output-is-a-file": (
        lambda w, t: ["descriptors", str(w["good"]), "--output", str(_a_file(t)), "--no-progress"],
        "afile: is a file, not a folder",
    ),
    "latents-output-is-a-file": (
        lambda w, t: ["latents", str(w["model"]), str(w["good"]), "--output", str(_a_file(t))],
        "afile: is a file, not a folder",
    ),
    # generators: absurd sizes refused before anything is built, outputs checked (6)
    **{
        f"generate-{label}": (
            lambda w, t, name=name, text=text: [
                "generate",
                name,
                "--config",
                _yaml(t, text),
                "--output",
                "{out}/x.extxyz",
            ],
            message,
        )
        for label, name, text, message in [
            (
                "water-million-molecules",
                "iron-water",
                "n_water: 1000000\n",
                r"size, n_water: 3,000,018 atoms",
            ),
            (
                "water-no-room",
                "iron-water",
                "size: [3, 2, 3]\nn_water: 40\n",
                r"n_water: at most 8 water",
            ),
            (
                "heo-million-cells",
                "heo",
                "formula_units: 1000000\n",
                r"formula_units: 2,000,000 atoms",
            ),
            (
                "elements-million-atoms",
                "elements",
                "atoms: [8, 3000000]\n",
                r"atoms, compositions: 3,000,000 atoms",
            ),
        ]  # fmt: skip
    },
    "generate-output-under-a-file": (
        lambda w, t: ["generate", "iron-water", "--output", str(_a_file(t) / "x.extxyz")],
        "afile: is a file, not a folder",
    ),
    "generate-unknown-basis": (
        lambda w, t: [
            "generate",
            "water-tensors",
            "--config",
            _yaml(t, "basis: nonsense-basis\nmonomers: 2\ndimers: 0\ntrimers: 0\n"),
            "--output",
            "{out}/tensors",
        ],  # fmt: skip
        r"basis: PySCF has no basis 'nonsense-basis'",
    ),
}
del CASES["compare-one-input"]


def _yaml(tmp, text):
    path = tmp / "settings.yaml"
    path.write_text(text)
    return str(path)


def _a_file(tmp):
    path = tmp / "afile"
    path.write_text("a file where a folder is expected\n")
    return path


def _bad_generator(tmp):
    path = tmp / "gen.yaml"
    path.write_text("temperatur: 300\n")
    return str(path)


def _corrupt_state(tmp):
    (tmp / "run").mkdir(exist_ok=True)
    (tmp / "run" / "x.extxyz.state").write_text("{broken json")
    return str(tmp / "run" / "x.extxyz")


@pytest.fixture(scope="module")
def latents_folders(world, tmp_path_factory):
    """Two latents folders of the same model on different structures of the
    same size (same sample labels): the wrong pairing of the issue."""
    root = tmp_path_factory.mktemp("latents")
    other = root / "other.extxyz"
    ase.io.write(other, iron_water_example(n_frames=2, seed=9))
    assert (
        main(["latents", str(world["model"]), str(world["good"]), "--output", str(root / "a")]) == 0
    )
    assert main(["latents", str(world["model"]), str(other), "--output", str(root / "b")]) == 0
    return root / "a", root / "b"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_named_in_one_line(case, world, latents_folders, tmp_path, capsys):
    build, culprit = CASES[case]
    out = tmp_path / "out"
    args = [
        a.format(out=out, latents=latents_folders[0], other_latents=latents_folders[1])
        for a in build(world, tmp_path)
    ]
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, f"exit {code}; stderr: {err}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("equilens "), err
    assert re.search(culprit, err), f"{culprit!r} not in: {err}"
    assert "Traceback" not in err
    # nothing half-written, no payload ran
    assert not list(tmp_path.rglob("*.tmp")) and not list(world["root"].rglob("*.tmp"))
    assert not (world["root"] / "PWNED").exists()
    for produced in ("model.pt", "layers.json", "x.json.gz", "table.csv"):
        assert not list(out.rglob(produced)), produced


def test_at_least_forty_cases():
    assert len(CASES) >= 40


def test_an_output_folder_is_never_taken_over(world, tmp_path, capsys):
    """A finished model.pt whose checkpoint is gone is not overwritten by a
    run with another configuration; --overwrite replaces it."""
    first = _train_config(world, tmp_path / "a.yaml")
    output = str(tmp_path / "run")
    assert main(["train", first, "--output", output, "--no-progress"]) == 0
    (tmp_path / "run" / "checkpoint.pt").unlink()
    before = (tmp_path / "run" / "model.pt").read_bytes()
    other = _train_config(world, tmp_path / "b.yaml", **{"model.hidden": [5]})
    capsys.readouterr()
    assert main(["train", other, "--output", output, "--no-progress"]) == 2
    assert "holds the outputs of another run" in capsys.readouterr().err
    assert (tmp_path / "run" / "model.pt").read_bytes() == before
    assert main(["train", other, "--output", output, "--no-progress", "--overwrite"]) == 0
    assert (tmp_path / "run" / "model.pt").read_bytes() != before
    # the same run again is welcome: it reuses the finished checkpoint
    assert main(["train", other, "--output", output, "--no-progress"]) == 0


def test_no_json_holds_nan(tmp_path):
    import json

    from equilens.storage import save_json

    path = save_json(tmp_path / "m.json", {"a": float("nan"), "b": [float("inf"), 1.0]})
    assert json.loads(path.read_text()) == {"a": None, "b": [None, 1.0]}
    assert "NaN" not in path.read_text()


def test_training_stops_at_the_first_non_finite_validation_metric(world, tmp_path):
    """A NaN that only shows in validation (bad reference energies) stops the
    run naming the epoch, instead of saving the untrained weights."""
    from equilens.errors import EquilensError
    from equilens.models import load_run_config, train

    frames = ase.io.read(world["lj"]["validation"], ":")
    for atoms in frames:
        atoms.calc.results["energy"] = float("inf") if atoms is frames[2] else 0.0
    path = tmp_path / "bad.extxyz"
    ase.io.write(path, frames)
    # the reader rejects non-finite energies, naming the frame
    config = load_run_config(
        _train_config(world, tmp_path / "c.yaml", **{"data.validation": str(path)})
    )
    with pytest.raises(EquilensError, match=r"bad.extxyz: frame 2"):
        train(config, progress=False)
    assert not (Path(config.output) / "model.pt").exists()


def test_no_reader_runs_a_pickled_payload(world, tmp_path):
    """A crafted checkpoint, feature cache or generator state is refused or
    ignored (and recomputed), and its payload never runs."""
    import warnings

    from equilens.models import load_run_config, train

    marker = tmp_path / "PWNED"
    config_path = _train_config(world, tmp_path / "c.yaml", **{"training.epochs": 2})
    config = load_run_config(config_path)
    output = tmp_path / "run"
    import dataclasses

    config = dataclasses.replace(config, output_dir=str(output), cache_dir=str(tmp_path / "cache"))
    train(config, progress=False)
    # every torch file equilens reads, replaced by a payload
    targets = [output / "checkpoint.pt", *sorted((tmp_path / "cache").rglob("*.pt"))]
    # and the arrays of the projected-feature cache (raw numbers and JSON)
    targets += sorted((tmp_path / "cache").rglob("features-*/x.bin"))
    assert len(targets) >= 2
    for target in targets:
        torch.save({"payload": _Payload(str(marker))}, target)
    # as if killed before its last output: the rerun reads its checkpoint and
    # cache (a finished run would be opened from model.pt)
    (output / "learning_curve.png").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, summary = train(config, progress=False)
    assert not marker.exists()
    messages = " ".join(str(w.message) for w in caught)
    assert "checkpoint.pt" in messages and "features-" in messages
    assert summary["epochs_run"] == 2  # started again from epoch 0
    # the generator state is JSON: a pickle there is just unreadable
    state = tmp_path / "gen.extxyz.state"
    state.write_bytes(__import__("pickle").dumps(_Payload(str(marker))))
    assert main(["generate", "iron-water", "--output", str(tmp_path / "gen.extxyz")]) == 2
    assert not marker.exists()


def test_a_damaged_cache_is_recomputed_with_a_warning(world, tmp_path):
    import dataclasses

    from equilens.models import load_run_config, train

    config = load_run_config(_train_config(world, tmp_path / "c.yaml", **{"training.epochs": 1}))
    config = dataclasses.replace(
        config, output_dir=str(tmp_path / "a"), cache_dir=str(tmp_path / "cache")
    )
    _, first = train(config, progress=False)
    cache = sorted((tmp_path / "cache").rglob("features-*/grad_values.bin"))[0]
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])  # truncated
    with pytest.warns(UserWarning, match="checksum mismatch"):
        _, second = train(
            dataclasses.replace(config, output_dir=str(tmp_path / "b")), progress=False
        )
    assert second["metrics"] == first["metrics"]


def test_fit_names_the_epoch_and_the_non_finite_term(tmp_path):
    from equilens.errors import EquilensError
    from equilens.training.loop import TrainConfig, fit

    model = torch.nn.Linear(2, 1)

    def loss_fn(model, batch):
        return model(torch.ones(len(batch), 2)).pow(2).mean()

    def validate_fn(model):
        return 1.0, {"validation_force_rmse": float("nan")}

    with pytest.raises(EquilensError, match="validation force rmse became nan at epoch 1"):
        fit(model, loss_fn, validate_fn, 8, TrainConfig(epochs=3), tmp_path, progress=False)


def test_a_cache_entry_of_another_computation_is_not_used(tmp_path):
    """An entry copied over another key's file (with its own checksum) holds
    another layout: it is recomputed with a warning, never used as this one."""
    import metatensor
    from metatensor import Labels, TensorBlock, TensorMap

    from equilens.storage import TensorMapCache

    def tensor(names, value):
        block = TensorBlock(np.full((2, 1), value), Labels.range("sample", 2), [],
                            Labels.range("property", 1))  # fmt: skip
        return TensorMap(Labels(names, np.zeros((1, len(names)), dtype=np.int32)), [block])

    cache = TensorMapCache(tmp_path)
    soap = cache.get_or_compute("soap", "a" * 64, lambda: tensor(["center_type"], 1.0))
    cache.get_or_compute("soap", "b" * 64, lambda: tensor(["o3_lambda", "o3_sigma"], 2.0))
    first, second = cache.path("soap", "a" * 64), cache.path("soap", "b" * 64)
    for suffix in ("", ".sha256"):  # the other entry, checksum and all, under this key
        Path(str(first) + suffix).write_bytes(Path(str(second) + suffix).read_bytes())
    with pytest.warns(UserWarning, match="computed for another key"):
        again = cache.get_or_compute("soap", "a" * 64, lambda: tensor(["center_type"], 1.0))
    assert metatensor.equal(again, soap)
