"""metatrain models through the metatomic adapter. metatrain pins
metatensor-learn below the version equilens uses, so it lives in its own
environment (``.venv-metatrain``, :func:`conftest.side_environment`): there a
PET checkpoint shipped inside the metatrain wheel is exported with
``mtt export``, and the exported file is read here, in equilens's own
environment, as users would read PET-MAD."""

from __future__ import annotations

import gzip
import shutil
import subprocess

import ase
import ase.io
import numpy as np
import pytest
from ase.build import molecule
from conftest import side_environment

from equilens.models import energies_and_forces, load

METATRAIN = "metatrain[soap-bpnn]==2026.4.1"  # the SOAP-BPNN extra: spex, sphericart
FIND_CHECKPOINT = (
    "import pathlib, metatrain\n"
    "folder = pathlib.Path(metatrain.__file__).parent / 'pet' / 'tests' / 'checkpoints'\n"
    "print(sorted(folder.glob('model-v*_trainer-v*.ckpt.gz'))[-1])\n"
)


@pytest.fixture(scope="module")
def pet_file(tmp_path_factory):
    python = side_environment(".venv-metatrain", [METATRAIN])
    found = subprocess.run([python, "-c", FIND_CHECKPOINT], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr[-1000:]
    folder = tmp_path_factory.mktemp("pet")
    checkpoint = folder / "pet.ckpt"
    with gzip.open(found.stdout.strip(), "rb") as source, open(checkpoint, "wb") as target:
        shutil.copyfileobj(source, target)
    mtt = python.parent / "mtt"
    done = subprocess.run(
        [mtt, "export", checkpoint, "-o", "pet.pt"], capture_output=True, text=True, cwd=folder
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return folder / "pet.pt"


def _ethanol() -> ase.Atoms:
    atoms = molecule("CH3CH2OH")
    atoms.center(vacuum=4.0)
    atoms.rattle(0.05, seed=1)
    return atoms


def test_pet_export_layers(pet_file):
    """The PET export's layers are its node features and the last-layer
    features of its energy head, per atom, and follow the atoms when they are
    permuted (PET is permutation-equivariant, not constrained under rotation)."""
    model = load(pet_file)
    assert model.kind == "metatomic"
    assert model.layer_names == ["feature", "energy_last_layer_features"]
    atoms = _ethanol()
    order = np.random.default_rng(0).permutation(len(atoms))
    layers = model.layers([atoms, atoms[order]])
    for name in model.layer_names:
        tensor = layers[name]
        assert tensor.keys.names == ["center_type"]
        for block in tensor.blocks():
            samples = block.samples.values
            first = {int(a): row for (s, a), row in zip(samples, block.values) if s == 0}
            for (s, a), row in zip(samples, block.values):
                if s == 1:
                    np.testing.assert_allclose(row, first[int(order[a])], atol=1e-5)
    energies, forces = energies_and_forces(model.predict([atoms, atoms[order]]))
    assert np.isfinite(energies).all()
    assert energies[1] == pytest.approx(energies[0], rel=1e-6)
    np.testing.assert_allclose(forces[1], forces[0][order], atol=1e-4)


@pytest.fixture(scope="module")
def pet_checkpoint(pet_file):
    return pet_file.parent / "pet.ckpt"


def _ethanol_frames(path, n_frames=8):
    """Rattled ethanol molecules labelled with ASE's EMT (H, C, O)."""
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for seed in range(n_frames):
        atoms = molecule("CH3CH2OH")
        atoms.center(vacuum=4.0)
        atoms.rattle(0.08, seed=seed)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    ase.io.write(path, frames)
    return path


def test_metatrain_finetune_is_driven_resumed_and_read_back(pet_file, pet_checkpoint, tmp_path):
    """``task: metatrain`` runs ``mtt train`` with a finetune section on the
    PET test checkpoint (equilens never opens the checkpoint), resumes an
    interrupted run with ``--restart auto``, and reads the exported base and
    fine-tuned models through the metatomic adapter."""
    import json

    from equilens.config import from_mapping
    from equilens.models.metatrain.config import MetatrainConfig
    from equilens.models.metatrain.task import train_metatrain

    mtt = side_environment(".venv-metatrain", [METATRAIN]).parent / "mtt"
    data = _ethanol_frames(tmp_path / "ethanol.extxyz")
    config = from_mapping(
        MetatrainConfig,
        {
            "task": "metatrain",
            "name": "pet-ethanol",
            "data": {"train": str(data), "validation_fraction": 0.25, "test_fraction": 0.25},
            "base_checkpoint": str(pet_checkpoint),
            "architecture": "pet",
            "mtt": str(mtt),
            "length_unit": "",  # the test checkpoint was trained without a length unit
            "training": {"epochs": 3, "batch_size": 2, "learning_rate": 1e-4},
            "output_dir": str(tmp_path / "run"),
        },
    )
    assert train_metatrain(config, progress=False, stop_after=1) == (None, {})
    model, summary = train_metatrain(config, progress=False)
    log = (tmp_path / "run" / "mtt" / "mtt.log").read_text()
    assert "--restart auto" in log and "finetun" in log.lower()
    assert summary["epochs_run"] == 3  # epochs 0, 1 (first start) and 2 (resumed)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["task"] == "metatrain"
    frames = ase.io.read(data, ":4")
    base = load(tmp_path / "run" / "base.pt")  # exported here from the same checkpoint
    e_base, _ = energies_and_forces(base.predict(frames))
    e_fixture, _ = energies_and_forces(load(pet_file).predict(frames))
    np.testing.assert_allclose(e_base, e_fixture, rtol=1e-6)
    assert load(tmp_path / "run" / "model.pt").layer_names == base.layer_names
    assert model.layer_names == base.layer_names
    for split in ("train", "validation", "test"):
        assert np.isfinite(summary["metrics"][split]["force_rmse_eV_per_A"])
        assert split in summary["baselines"]["zero_shot"]
    assert summary["task"] == "metatrain"


SCRATCH = {
    "pet": {"cutoff": 4.0, "d_pet": 16, "d_head": 16, "d_node": 16, "d_feedforward": 16,
            "num_heads": 2, "num_attention_layers": 1, "num_gnn_layers": 1},
    "soap_bpnn": {"soap": {"max_angular": 2, "max_radial": 3, "cutoff": {"radius": 4.0}},
                  "bpnn": {"num_hidden_layers": 1, "num_neurons_per_layer": 8}},
}  # fmt: skip


@pytest.mark.parametrize("architecture", sorted(SCRATCH))
def test_metatrain_from_scratch_is_driven_resumed_and_read_back(architecture, tmp_path):
    """``task: metatrain`` with ``base_checkpoint: null`` trains the
    architecture from scratch with the given hypers (no finetune section, no
    base model), resumes, and is measured against the composition baseline;
    the exported model opens through the metatomic adapter and its layers
    follow permuted atoms."""
    import json

    import yaml

    from equilens.config import from_mapping
    from equilens.errors import ConfigError
    from equilens.models.metatrain.config import MetatrainConfig
    from equilens.models.metatrain.task import train_metatrain

    mtt = side_environment(".venv-metatrain", [METATRAIN]).parent / "mtt"
    data = _ethanol_frames(tmp_path / "ethanol.extxyz")
    mapping = {
        "task": "metatrain",
        "name": f"{architecture}-scratch",
        "data": {"train": str(data), "validation_fraction": 0.25, "test_fraction": 0.25},
        "base_checkpoint": None,
        "architecture": architecture,
        "model": SCRATCH[architecture],
        "mtt": str(mtt),
        "training": {"epochs": 2, "batch_size": 2, "learning_rate": 1e-3, "checkpoint_every": 1},
        "output_dir": str(tmp_path / "run"),
    }
    config = from_mapping(MetatrainConfig, mapping)
    assert train_metatrain(config, progress=False, stop_after=1) == (None, {})
    model, summary = train_metatrain(config, progress=False)
    work = tmp_path / "run" / "mtt"
    options = yaml.safe_load((work / "options.yaml").read_text())["architecture"]
    assert options["model"] == SCRATCH[architecture] and "finetune" not in options["training"]
    assert "--restart auto" in (work / "mtt.log").read_text()
    assert not (tmp_path / "run" / "base.pt").exists()
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(written["baselines"]) == {"composition"} and written["base_checkpoint"] is None
    assert written["epochs_run"] == summary["epochs_run"] >= 2
    assert np.isfinite(written["metrics"]["test"]["force_rmse_eV_per_A"])

    loaded = load(tmp_path / "run" / "model.pt")
    atoms = ase.io.read(data, "0")
    order = np.random.default_rng(1).permutation(len(atoms))
    layers = loaded.layers([atoms, atoms[order]])
    assert layers, "no layer read from the trained model"
    for tensor in layers.values():
        for block in tensor.blocks():
            rows = {(int(s), int(a)): r for (s, a), r in zip(block.samples.values, block.values)}
            for (s, a), row in rows.items():
                if s == 1:
                    np.testing.assert_allclose(row, rows[(0, int(order[a]))], atol=1e-5)

    with pytest.raises(ConfigError, match="base_checkpoint: null"):
        from_mapping(MetatrainConfig, {**mapping, "base_checkpoint": str(data)})


def test_metatrain_distributed_training_is_started_by_srun(tmp_path):
    """``training.processes: N`` starts ``mtt train`` under ``srun
    --ntasks=N`` (metatrain reads its ranks from SLURM) on CUDA; outside a
    SLURM allocation it is refused in one line before anything runs."""
    import yaml

    from equilens.config import from_mapping
    from equilens.errors import ConfigError
    from equilens.models.metatrain.config import MetatrainConfig
    from equilens.models.metatrain.task import _options, distributed_launcher

    assert distributed_launcher(1, environ={}) == []
    with pytest.raises(ConfigError, match="training.processes: .*SLURM.*srun") as error:
        distributed_launcher(2, environ={}, srun="/usr/bin/srun")
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="srun on the PATH"):
        distributed_launcher(2, environ={"SLURM_JOB_ID": "7"}, srun=None)
    launcher = distributed_launcher(4, environ={"SLURM_JOB_ID": "7"}, srun="/opt/slurm/srun")
    assert launcher == ["/opt/slurm/srun", "--ntasks=4", "--kill-on-bad-exit=1"]

    def options(processes):
        config = from_mapping(
            MetatrainConfig,
            {"data": {"train": "x.extxyz"}, "training": {"processes": processes}},
        )
        paths = {"train": tmp_path / "t.extxyz", "validation": tmp_path / "v.extxyz"}
        return yaml.safe_load(_options(tmp_path / "options.yaml", config, paths, 2).read_text())

    assert options(2)["device"] == "cuda"
    assert "device" not in options(1)
    with pytest.raises(ConfigError, match="processes"):
        options(0)
