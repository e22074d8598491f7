"""The ``metatrain`` task: fine-tune a metatrain checkpoint with ``mtt train``.

metatrain (PET, SOAP-BPNN, ...) has its own trainer and a ``finetune``
section; equilens drives it rather than reimplementing it. metatrain often
pins metatensor versions other than equilens's, so it runs as a command
(``mtt``, from any environment: ``mtt: /path/to/venv/bin/mtt``), and equilens
never opens its checkpoints (they are pickles): it passes their path to
metatrain and reads back the exported metatomic model (TorchScript, no
Python code) with :class:`~equilens.models.metatomic.model.MetatomicModel`::

    task: metatrain
    name: pet_iron_water
    data: {train: reference:iron_water/train, validation_fraction: 0.1}
    base_checkpoint: pet-mad.ckpt
    architecture: pet
    training: {epochs: 10, batch_size: 4, learning_rate: 1.0e-5, method: full}

Outputs in the run folder: ``model.pt`` (the exported fine-tuned model:
``equilens.models.load`` and metatomic-ase read it), ``base.pt`` (the base
exported, for the zero-shot baseline and the latent drift), ``metrics.json``
in the schema of every task (with the zero-shot base model, per-species
offsets refitted on the training frames, as the baseline), parity plots, and
metatrain's own files under ``mtt/`` (``options.yaml``, checkpoints, logs).
Rerunning the same command resumes an interrupted run (``--restart auto``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import yaml

from ...data.io import ReadOptions
from ...data.splits import SplitConfig, load_splits
from ...errors import ConfigError, EquilensError
from ...storage import atomic_write, save_json
from ...training.config import output_folder
from ...training.loop import FitResult
from ...training.run import run_summary
from .. import external


@dataclass(frozen=True)
class MetatrainTraining:
    """What ``mtt train`` is given.

    :param epochs: the most epochs (metatrain's ``num_epochs``)
    :param batch_size: structures per optimisation step
    :param learning_rate: metatrain's learning rate
    :param method: metatrain's fine-tuning method: ``full`` (all weights),
        ``heads`` (the output heads only) or ``lora`` (low-rank adapters)
    :param force_weight: weight of the force term of the energy loss
    :param seed: metatrain's random seed
    :param checkpoint_every: a checkpoint every this many epochs (metatrain's
        ``checkpoint_interval``, the granularity of resuming)
    """

    epochs: int = 10
    batch_size: int = 4
    learning_rate: float = 1e-5
    method: Literal["full", "heads", "lora"] = "full"
    force_weight: float = 1.0
    seed: int = 0
    checkpoint_every: int = 5

    def __post_init__(self):
        for name in ("epochs", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training.{name}: expected >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class MetatrainConfig:
    """The ``metatrain`` task: fine-tune a metatrain checkpoint with ``mtt
    train``; everything ``equilens finetune`` reads from its YAML file.

    :param data: the training frames and how validation and test are held out
    :param base_checkpoint: the metatrain checkpoint to start from (passed to
        metatrain, never opened by equilens)
    :param task: ``metatrain``
    :param name: the run's name (default output folder ``results/train/<name>``)
    :param architecture: metatrain's architecture name of the checkpoint
        (``pet``, ``soap_bpnn``, ...)
    :param mtt: the ``mtt`` command (e.g. from metatrain's own environment:
        ``/path/to/venv/bin/mtt``)
    :param length_unit: the length unit declared to metatrain; it must be the
        base checkpoint's (some test checkpoints were trained without units:
        give ``""``)
    :param energy_unit: the energy unit declared to metatrain (the base
        checkpoint's)
    :param read: how frames are read and validated (energies and forces required)
    :param training: what ``mtt train`` is given
    :param output_dir: output folder (default ``results/train/<name>``)
    """

    data: SplitConfig
    base_checkpoint: str
    task: Literal["metatrain"] = "metatrain"
    name: str = "metatrain"
    architecture: str = "pet"
    mtt: str = "mtt"
    length_unit: str = "angstrom"
    energy_unit: str = "eV"
    read: ReadOptions = field(default_factory=lambda: ReadOptions(require_forces=True))
    training: MetatrainTraining = field(default_factory=MetatrainTraining)
    output_dir: Optional[str] = None

    @property
    def output(self) -> Path:
        return output_folder(self)


def _mtt(config: MetatrainConfig) -> str:
    found = shutil.which(config.mtt) or (config.mtt if Path(config.mtt).is_file() else None)
    if found is None:
        raise ConfigError(
            f"mtt: '{config.mtt}' not found; install metatrain (pip install metatrain) "
            "or give the path of its mtt command"
        )
    return str(Path(found).resolve())


def train_metatrain(
    config: MetatrainConfig,
    progress: bool = True,
    stop_after: Optional[int] = None,
    overwrite: bool = False,
) -> Tuple[Any, Dict[str, Any]]:
    """Fine-tune ``config.base_checkpoint`` with ``mtt train``; returns the
    fine-tuned model (read through the metatomic adapter) and the summary
    written to ``metrics.json``.

    :param stop_after: run this many epochs only (then rerun to resume)
    """
    from ..metatomic.model import MetatomicModel

    timings: Dict[str, float] = {}
    start = time.perf_counter()
    mtt = _mtt(config)
    base_checkpoint = Path(config.base_checkpoint)
    if not base_checkpoint.is_file():
        raise ConfigError(f"base_checkpoint: no such file: {base_checkpoint}")
    splits = load_splits(config.data, config.read)
    outputs = ("model.pt", "base.pt", "metrics.json", "mtt")
    external.claim_run(config, splits, base_checkpoint, outputs, overwrite)
    output = config.output
    work = output / "mtt"
    work.mkdir(parents=True, exist_ok=True)
    paths = {n: external.write_frames(work / f"{n}.extxyz", d) for n, d in splits.items()}
    if not (output / "base.pt").is_file():
        exported = str((output / "base.pt").resolve())
        _run([mtt, "export", str(base_checkpoint.resolve()), "-o", exported], work)
    base = MetatomicModel(output / "base.pt")
    for name, dataset in splits.items():
        base.check_species(dataset.frames, where=f"data.{name}")
    zero_shot = {name: external.predict(base, d) for name, d in splits.items()}
    offsets = external.fit_offsets(splits["train"], zero_shot["train"][0])
    timings["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    epochs = config.training.epochs if stop_after is None else stop_after
    _options(work / "options.yaml", config, base_checkpoint.resolve(), paths, epochs)
    command = [mtt, "train", "options.yaml", "-o", str((output / "model.pt").resolve())]
    if any(work.glob("outputs/**/*.ckpt")):
        command += ["--restart", "auto"]
    _run(command, work, progress=progress)
    timings["training_s"] = time.perf_counter() - start
    if stop_after is not None and stop_after < config.training.epochs:
        return None, {}

    model = MetatomicModel(output / "model.pt")
    history = _history(work)
    result = FitResult(
        best_epoch=int(history[-1]["epoch"]) if history else epochs,
        best_validation_loss=history[-1]["validation_loss"] if history else float("nan"),
        history=history,
        stopped_early=False,
        seconds=timings["training_s"],
    )
    metrics, baselines = external.evaluate_against_base(
        model, splits, zero_shot, offsets, output, config.name
    )
    external.write_history(output, history)
    summary = run_summary(
        config, result, timings, splits, metrics, baselines,
        base_checkpoint=str(base_checkpoint),
        zero_shot_offsets_eV={str(z): v for z, v in offsets.items()},
    )  # fmt: skip
    save_json(output / "metrics.json", summary)
    return model, summary


def _options(path: Path, config: MetatrainConfig, base: Path, paths, epochs: int) -> Path:
    """metatrain's ``options.yaml``: the architecture's training section with
    ``finetune``, and the train/validation/test sets with energies and forces."""
    training = config.training

    def dataset(file: Path) -> dict:
        file_name = str(Path(file).resolve())
        return {
            "systems": {"read_from": file_name, "length_unit": config.length_unit},
            "targets": {
                "energy": {
                    "key": "energy",
                    "unit": config.energy_unit,
                    "forces": {"read_from": file_name, "key": "forces"},
                }
            },
        }

    options = {
        "seed": training.seed,
        "architecture": {
            "name": config.architecture,
            "training": {
                "num_epochs": epochs,
                "batch_size": training.batch_size,
                "learning_rate": training.learning_rate,
                "checkpoint_interval": training.checkpoint_every,
                "finetune": {"method": training.method, "read_from": str(base)},
                "loss": {"energy": {"gradients": {"positions": {"weight": training.force_weight}}}},
            },
        },
        "training_set": dataset(paths["train"]),
        "validation_set": dataset(paths["validation"]),
        "test_set": dataset(paths["test"]) if "test" in paths else 0.0,
    }
    with atomic_write(path, "w") as handle:
        yaml.safe_dump(options, handle, sort_keys=False)
    return path


def _run(command: List[str], cwd: Path, progress: bool = False) -> None:
    """Run a metatrain command in ``cwd``; its output goes to ``mtt.log``
    (and to the terminal with ``progress``)."""
    env = dict(os.environ)
    log_path = cwd / "mtt.log"
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(command) + "\n").encode())
        log.flush()
        done = subprocess.run(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        lines = log_path.read_text(errors="replace").strip().splitlines()
        errors = [line for line in lines if "Error" in line] or lines[-1:]
        raise EquilensError(
            f"{cwd}: '{Path(command[0]).name} {command[1]}' failed (exit {done.returncode}): "
            f"{errors[-1][:300] if errors else ''}; see {log_path}"
        )


def _history(work: Path) -> List[Dict[str, float]]:
    """Epoch, losses and learning rate from metatrain's ``train.csv`` files."""
    import csv

    rows: Dict[int, Dict[str, float]] = {}
    for path in sorted(work.glob("outputs/**/train.csv")):
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            next(reader, None)  # the units row
            for values in reader:
                row = dict(zip(header, values))
                try:
                    epoch = int(float(row["Epoch"]))
                    rows[epoch] = {
                        "epoch": float(epoch),
                        "learning_rate": float(row.get("learning_rate", "nan")),
                        "train_loss": float(row.get("training loss", "nan")),
                        "validation_loss": float(row.get("validation loss", "nan")),
                    }
                except (KeyError, ValueError):
                    continue
    return [rows[e] for e in sorted(rows)]
