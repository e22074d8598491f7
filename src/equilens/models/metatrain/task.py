"""The ``metatrain`` task: train a metatrain architecture with ``mtt train``,
from scratch or fine-tuning a checkpoint.

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

From scratch, ``base_checkpoint: null`` and the architecture's hypers in
``model`` (metatrain's defaults where left out)::

    base_checkpoint: null
    architecture: soap_bpnn
    model: {soap: {cutoff: {radius: 5.0}}}
    training: {epochs: 100, batch_size: 8, learning_rate: 1.0e-3}

Outputs in the run folder: ``model.pt`` (the exported fine-tuned model:
``equilens.models.load`` and metatomic-ase read it), ``base.pt`` (the base
exported, for the zero-shot baseline and the latent drift), ``metrics.json``
in the schema of every task (with the zero-shot base model, per-species
offsets refitted on the training frames, as the baseline; from scratch, the
composition model and no ``base.pt``), parity plots, and
metatrain's own files under ``mtt/`` (``options.yaml``, checkpoints, logs).
Rerunning the same command resumes an interrupted run (``--restart auto``).
``training.processes: N`` runs metatrain's own distributed training (its
ranks come from SLURM): ``srun --ntasks=N mtt train`` on CUDA, inside a
SLURM allocation (:func:`distributed_launcher`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from ...data.splits import load_splits
from ...errors import ConfigError, EquilensError
from ...storage import atomic_write, save_json
from ...training.loop import FitResult
from ...training.run import run_summary
from .. import external
from .config import MetatrainConfig


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
    """Fine-tune ``config.base_checkpoint``, or train ``config.architecture``
    from scratch, with ``mtt train``; returns the trained model (read through
    the metatomic adapter) and the summary written to ``metrics.json``.

    :param stop_after: run this many epochs only (then rerun to resume)
    """
    from ..metatomic.model import MetatomicModel

    timings: Dict[str, float] = {}
    start = time.perf_counter()
    mtt = _mtt(config)
    launcher = distributed_launcher(config.training.processes)
    base_checkpoint = None if config.base_checkpoint is None else Path(config.base_checkpoint)
    if base_checkpoint is not None and not base_checkpoint.is_file():
        raise ConfigError(f"base_checkpoint: no such file: {base_checkpoint}")
    splits = load_splits(config.data, config.read)
    outputs = ("model.pt", "base.pt", "metrics.json", "mtt", "extensions")
    external.claim_run(config, splits, base_checkpoint, outputs, overwrite)
    output = config.output
    work = output / "mtt"
    work.mkdir(parents=True, exist_ok=True)
    paths = {n: external.write_frames(work / f"{n}.extxyz", d) for n, d in splits.items()}
    if base_checkpoint is None:  # from scratch: the composition model is the baseline
        zero_shot = {name: external.no_predictions(d) for name, d in splits.items()}
    else:
        zero_shot = _zero_shot(mtt, base_checkpoint, splits, output, work)
    offsets = external.fit_offsets(splits["train"], zero_shot["train"][0])
    timings["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    epochs = config.training.epochs if stop_after is None else stop_after
    _options(work / "options.yaml", config, paths, epochs)
    # compiled extensions (SOAP-BPNN's sphericart) beside model.pt, where the
    # metatomic adapter looks for them
    command = [mtt, "train", "options.yaml", "-o", str((output / "model.pt").resolve()),
               "-e", str((output / "extensions").resolve())]  # fmt: skip
    if any(work.glob("outputs/**/*.ckpt")):
        command += ["--restart", "auto"]
    _run(command, work, progress=progress, launcher=launcher)
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
    baseline = "composition" if base_checkpoint is None else "zero_shot"
    metrics, baselines = external.evaluate_against_base(
        model, splits, zero_shot, offsets, output, config.name, baseline
    )
    external.write_history(output, history)
    summary = run_summary(
        config, result, timings, splits, metrics, baselines,
        base_checkpoint=config.base_checkpoint,
        zero_shot_offsets_eV={str(z): v for z, v in offsets.items()},
    )  # fmt: skip
    save_json(output / "metrics.json", summary)
    return model, summary


def _zero_shot(mtt: str, checkpoint: Path, splits, output: Path, work: Path):
    """The base checkpoint exported to ``base.pt`` (once) and its predictions
    on every split (species it cannot handle are named)."""
    from ..metatomic.model import MetatomicModel

    if not (output / "base.pt").is_file():
        exported = str((output / "base.pt").resolve())
        extensions = str((output / "extensions").resolve())
        _run([mtt, "export", str(checkpoint.resolve()), "-o", exported, "-e", extensions], work)
    base = MetatomicModel(output / "base.pt")
    for name, dataset in splits.items():
        base.check_species(dataset.frames, where=f"data.{name}")
    return {name: external.predict(base, d) for name, d in splits.items()}


def _options(path: Path, config: MetatrainConfig, paths, epochs: int) -> Path:
    """metatrain's ``options.yaml``: the architecture's model hypers (from
    scratch) or ``finetune`` section (from a checkpoint), and the
    train/validation/test sets with energies and forces."""
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

    section: Dict[str, Any] = {
        "num_epochs": epochs,
        "batch_size": training.batch_size,
        "learning_rate": training.learning_rate,
        "checkpoint_interval": training.checkpoint_every,
        "log_interval": 1,  # a row of train.csv per epoch: the learning curve and epochs_run
        "loss": {"energy": {"gradients": {"positions": {"weight": training.force_weight}}}},
    }
    architecture: Dict[str, Any] = {"name": config.architecture, "training": section}
    if config.base_checkpoint is None:
        if config.model:
            architecture["model"] = dict(config.model)
    else:
        base = str(Path(config.base_checkpoint).resolve())
        section["finetune"] = {"method": training.method, "read_from": base}
    options: Dict[str, Any] = {
        "seed": training.seed,
        "architecture": architecture,
        "training_set": dataset(paths["train"]),
        "validation_set": dataset(paths["validation"]),
        "test_set": dataset(paths["test"]) if "test" in paths else 0.0,
    }
    if training.processes > 1:
        options["device"] = "cuda"  # metatrain's distributed training: one GPU per process
    with atomic_write(path, "w") as handle:
        yaml.safe_dump(options, handle, sort_keys=False)
    return path


def distributed_launcher(
    processes: int, environ: Optional[Mapping[str, str]] = None, srun: Optional[str] = None
) -> List[str]:
    """What starts ``mtt train``: nothing for one process; for ``processes >
    1``, ``srun --ntasks=N``, since metatrain's distributed training reads
    its ranks from SLURM (a one-line :class:`ConfigError` outside a SLURM
    allocation).

    :param environ: the environment (default ``os.environ``)
    :param srun: the ``srun`` command (default: found on the ``PATH``)
    """
    if processes == 1:
        return []
    environ = os.environ if environ is None else environ
    srun = srun or shutil.which("srun")
    if "SLURM_JOB_ID" not in environ or srun is None:
        raise ConfigError(
            f"training.processes: metatrain trains {processes} processes only under SLURM "
            "(its ranks come from srun; NCCL, one CUDA GPU each): run equilens inside an "
            "allocation (salloc or sbatch) with srun on the PATH, or use processes: 1"
        )
    return [srun, f"--ntasks={processes}", "--kill-on-bad-exit=1"]


def _run(
    command: List[str], cwd: Path, progress: bool = False, launcher: Sequence[str] = ()
) -> None:
    """Run a metatrain command in ``cwd`` (after ``launcher``); its output
    goes to ``mtt.log`` (and to the terminal with ``progress``)."""
    env = dict(os.environ)
    log_path = cwd / "mtt.log"
    started = [*launcher, *command]
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(started) + "\n").encode())
        log.flush()
        done = subprocess.run(started, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
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
