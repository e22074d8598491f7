"""The ``mace`` task: a MACE model trained from scratch by mace-torch's own
trainer (``mace.cli.run_train``), driven rather than rewritten::

    task: mace
    name: mace_iron_water
    data: {train: reference:iron_water/train, validation_fraction: 0.1}
    model: {r_max: 5.0, num_channels: 16, max_L: 1, num_interactions: 2}
    training: {epochs: 60, batch_size: 4, learning_rate: 0.01}

mace-torch pins e3nn 0.4 while sevenn needs e3nn >= 0.5, so this task runs in
the environment that has mace-torch (``pip install 'equilens[mace]'`` there).
The splits are equilens's (the same frames as every task); mace fits its
isolated-atom energies on the training frames (``E0s: average``) and writes
its checkpoints, logs and results under ``mace/`` in the run folder;
rerunning the command resumes from mace's latest checkpoint
(``--restart_latest``). The trained model is ``model.model``, opened through
the MACE adapter (which reads it without unpickling code), and measured
against the composition model in ``metrics.json`` with the parity and
learning-curve plots of every task.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ...data.splits import load_splits
from ...errors import EquilensError
from ...storage import atomic_write, save_json
from ...training.loop import FitResult
from ...training.run import run_summary
from .. import external
from .config import MaceConfig


def train_mace(
    config: MaceConfig,
    progress: bool = True,
    stop_after: Optional[int] = None,
    overwrite: bool = False,
) -> Tuple[Any, Dict[str, Any]]:
    """Train a MACE model from scratch with mace-torch's trainer; returns the
    :class:`~equilens.models.mace.model.MaceModel` read from ``model.model``
    and the summary written to ``metrics.json`` (``None`` and ``{}`` after
    ``stop_after``).

    :param stop_after: stop the trainer (as if interrupted) after this many epochs
    :param overwrite: replace the outputs of another run in the output folder
    """
    from .loading import import_mace
    from .model import MaceModel

    import_mace()  # a one-line error naming the install command when missing
    timings: Dict[str, float] = {}
    start = time.perf_counter()
    splits = load_splits(config.data, config.read)
    external.check_scratch_species(splits)
    outputs = ("model.model", "metrics.json", "log.csv", "mace")
    external.claim_run(config, splits, None, outputs, overwrite)
    output = config.output
    work = output / "mace"
    work.mkdir(parents=True, exist_ok=True)
    paths = {n: external.write_frames(work / f"{n}.extxyz", d) for n, d in splits.items()}
    zero_shot = {name: external.no_predictions(d) for name, d in splits.items()}
    offsets = external.fit_offsets(splits["train"], zero_shot["train"][0])
    timings["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    epochs = config.training.epochs if stop_after is None else stop_after
    done = len(learning_curve(work))
    if done < epochs:
        command = [sys.executable, "-m", "mace.cli.run_train", *_arguments(config, paths, epochs)]
        external.run_trainer(command, work, "mace", (done, epochs),
                             lambda: len(learning_curve(work)), progress,
                             config.training.threads)  # fmt: skip
    timings["training_s"] = time.perf_counter() - start
    if stop_after is not None and stop_after < config.training.epochs:
        return None, {}
    trained = work / "model.model"
    if not trained.is_file():
        raise EquilensError(f"{work}: mace wrote no model.model; see {work / 'mace.out'}")
    with open(trained, "rb") as source, atomic_write(output / "model.model") as target:
        shutil.copyfileobj(source, target)
    model = MaceModel(str(output / "model.model"))

    history = learning_curve(work)
    best = min(history, key=lambda row: row["validation_loss"]) if history else None
    result = FitResult(
        best_epoch=int(best["epoch"]) if best else 0,
        best_validation_loss=best["validation_loss"] if best else float("nan"),
        history=history,
        stopped_early=False,
        seconds=timings["training_s"],
    )
    metrics, baselines = external.evaluate_against_base(
        model, splits, zero_shot, offsets, output, config.name, "composition"
    )
    external.write_history(output, history)
    summary = run_summary(config, result, timings, splits, metrics, baselines)
    save_json(output / "metrics.json", summary)
    return model, summary


def _arguments(config: MaceConfig, paths: Dict[str, Path], epochs: int) -> List[str]:
    """``mace_run_train``'s command line: equilens's splits, mace's fitted
    isolated-atom energies, a row of results per epoch, resume from the
    latest checkpoint."""
    files = [f"--train_file={paths['train'].name}", f"--valid_file={paths['validation'].name}"]
    if "test" in paths:
        files.append(f"--test_file={paths['test'].name}")
    return [
        "--name=model",
        "--work_dir=.",
        *files,
        "--energy_key=energy",  # mace copies the extxyz calculator's energy to REF_energy
        "--forces_key=forces",
        "--E0s=average",
        "--device=cpu",
        "--eval_interval=1",
        "--error_table=PerAtomRMSE",
        "--restart_latest",
        "--save_cpu",
        *config.model.arguments(),
        *config.training.arguments(epochs),
    ]


def learning_curve(work: Path) -> List[Dict[str, float]]:
    """One row per evaluated epoch from mace's ``results/*_train.txt``
    (JSON lines): ``epoch``, ``train_loss`` (mean of the epoch's
    optimisation steps), ``validation_loss`` and the validation energy
    (eV/atom) and force (eV/Å) RMSEs; a resumed epoch replaces an earlier row."""
    rows: Dict[int, Dict[str, float]] = {}
    train: Dict[int, List[float]] = {}
    for path in sorted(work.glob("results/*_train.txt")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            epoch = entry.get("epoch")
            if epoch is None:
                continue  # the initial evaluation
            if entry.get("mode") == "opt":
                train.setdefault(int(epoch), []).append(float(entry["loss"]))
            elif entry.get("mode") == "eval":
                energy, force = entry.get("rmse_e_per_atom", "nan"), entry.get("rmse_f", "nan")
                rows[int(epoch)] = {
                    "epoch": float(epoch),
                    "validation_loss": float(entry["loss"]),
                    "validation_energy_rmse_eV_per_atom": float(energy),
                    "validation_force_rmse_eV_per_A": float(force),
                }
    for epoch, row in rows.items():
        losses = train.get(epoch, [])
        row["train_loss"] = sum(losses) / len(losses) if losses else float("nan")
    return [rows[e] for e in sorted(rows)]
