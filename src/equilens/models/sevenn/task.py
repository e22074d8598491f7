"""The ``sevenn`` task: fine-tune a SevenNet model with sevenn's own trainer.

``equilens finetune CONFIG`` (or ``train``) with ``task: sevenn`` continues a
SevenNet checkpoint (``base_model``: a shipped name such as ``7net-0``, or a
checkpoint path) on the frames of ``data``, in the configuration shape of the
other tasks::

    task: sevenn
    name: sevennet_iron_water
    data: {train: reference:iron_water/train, validation_fraction: 0.1}
    base_model: 7net-0
    training: {epochs: 20, batch_size: 2, learning_rate: 0.002}

What equilens does around sevenn's trainer (it does not reimplement it):

1. reads and validates the splits like every task, and checks that the base
   model knows every element (one line naming the element otherwise);
2. refits the per-species energy offsets on the training frames (reference
   minus the base model's zero-shot energies, least squares over the species
   counts) and moves the base model's per-species energy shifts by them, in a
   starting checkpoint (``refit_offsets``; two levels of theory differ by
   large constants that the network should not have to learn);
3. writes the frames as extxyz and sevenn's ``input.yaml`` (the model section
   copied from the checkpoint), and runs ``sevenn`` in a subprocess in
   ``<output>/sevenn/``, with a progress bar over its epochs; an interrupted
   run resumes from sevenn's latest checkpoint when the command is rerun;
4. writes ``model.pth`` (sevenn's best-validation checkpoint without the
   optimizer state; ``equilens.models.load("sevenn:<output>/model.pth")``),
   ``metrics.json`` in the schema of every task (with the zero-shot base
   model, offsets refitted, as the baseline), ``log.csv``, the parity plots
   and the learning curve.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Literal, Optional, Tuple

from ...data.io import ReadOptions
from ...data.splits import SplitConfig, load_splits
from ...errors import ConfigError, EquilensError
from ...storage import (
    atomic_write,
    save_json,
)
from ...training.config import output_folder
from ...training.loop import FitResult
from ...training.run import run_summary
from .. import external
from . import files


@dataclass(frozen=True)
class SevennTraining:
    """What sevenn's trainer is given (its fine-tuning preset's choices by default).

    :param epochs: the most epochs sevenn runs
    :param batch_size: frames per optimisation step
    :param learning_rate: initial learning rate
    :param scheduler_gamma: the learning rate is multiplied by this every epoch
        (sevenn's exponential scheduler)
    :param loss: ``huber`` (sevenn's fine-tuning preset) or ``mse``
    :param huber_delta: the Huber loss's delta (eV/Å for forces)
    :param force_weight: weight of the force term
    :param stress_weight: weight of the stress term, used only when every
        frame is periodic and has a reference stress
    :param checkpoint_every: sevenn writes a checkpoint every this many epochs
        (the granularity of resuming)
    :param seed: sevenn's random seed
    :param threads: torch threads of the trainer (default: torch's)
    """

    epochs: int = 20
    batch_size: int = 2
    learning_rate: float = 0.002
    scheduler_gamma: float = 0.99
    loss: Literal["huber", "mse"] = "huber"
    huber_delta: float = 0.01
    force_weight: float = 1.0
    stress_weight: float = 0.01
    checkpoint_every: int = 5
    seed: int = 1
    threads: Optional[int] = None

    def __post_init__(self):
        for name in ("epochs", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training.{name}: expected >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ConfigError(f"training.learning_rate: expected > 0, got {self.learning_rate}")


@dataclass(frozen=True)
class SevennConfig:
    """The ``sevenn`` task: fine-tune a SevenNet model with sevenn's own
    trainer; everything ``equilens finetune`` reads from its YAML file.

    :param data: the training frames and how validation and test are held out
    :param task: ``sevenn``
    :param name: the run's name (default output folder ``results/train/<name>``)
    :param read: how frames are read and validated (energies and forces required)
    :param base_model: the starting model: a checkpoint shipped in the sevenn
        wheel (``7net-0``) or a checkpoint path
    :param refit_offsets: refit the per-species energy offsets on the training
        frames and move the base model's energy shifts by them
    :param training: what sevenn's trainer is given
    :param output_dir: output folder (default ``results/train/<name>``)
    """

    data: SplitConfig
    task: Literal["sevenn"] = "sevenn"
    name: str = "sevenn"
    read: ReadOptions = field(default_factory=lambda: ReadOptions(require_forces=True))
    base_model: str = "7net-0"
    refit_offsets: bool = True
    training: SevennTraining = field(default_factory=SevennTraining)
    output_dir: Optional[str] = None

    @property
    def output(self) -> Path:
        return output_folder(self)

    @property
    def base_spec(self) -> str:
        return self.base_model.removeprefix("sevenn:")


def train_sevenn(
    config: SevennConfig,
    progress: bool = True,
    stop_after: Optional[int] = None,
    overwrite: bool = False,
) -> Tuple[Any, Dict[str, Any]]:
    """Fine-tune ``config.base_model`` with sevenn; returns the fine-tuned
    :class:`~equilens.models.sevenn.model.SevenNetModel` and the summary
    written to ``metrics.json`` (``None`` and ``{}`` after ``stop_after``).

    :param stop_after: stop sevenn (as if interrupted) after this epoch
    :param overwrite: replace the outputs of another run in the output folder
    """
    from .model import SevenNetModel, checkpoint_path, read_checkpoint

    timings: Dict[str, float] = {}
    start = time.perf_counter()
    splits = load_splits(config.data, config.read)
    base_path = checkpoint_path(config.base_spec)
    base = SevenNetModel(config.base_spec)
    if base.modal is not None or base.model.modal_map:
        raise ConfigError(f"base_model: {config.base_model} is multi-fidelity; not supported")
    for name, dataset in splits.items():
        base.check_species(dataset.frames, where=f"data.{name}")
    outputs = ("model.pth", "metrics.json", "log.csv", "sevenn")
    external.claim_run(config, splits, base_path, outputs, overwrite)
    output = config.output
    work = output / "sevenn"
    timings["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    zero_shot = {name: external.predict(base, d) for name, d in splits.items()}
    offsets = {z: 0.0 for z in splits["train"].species}
    if config.refit_offsets:
        offsets = external.fit_offsets(splits["train"], zero_shot["train"][0])
    timings["zero_shot_s"] = time.perf_counter() - start

    start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    content = read_checkpoint(base_path)
    best = _run_sevenn(config, content, splits, offsets, work, progress, stop_after)
    timings["training_s"] = time.perf_counter() - start
    if best is None:
        return None, {}

    content = read_checkpoint(best)
    content.pop("optimizer_state_dict", None)
    content.pop("scheduler_state_dict", None)
    import torch

    with atomic_write(output / "model.pth") as handle:
        torch.save(content, handle)
    model = SevenNetModel(str(output / "model.pth"))
    return model, _finish(config, model, splits, zero_shot, offsets, work, timings, content)


def _run_sevenn(config, content, splits, offsets, work: Path, progress, stop_after):
    """Run sevenn's trainer in ``work``; the best checkpoint, or ``None`` when
    stopped early on purpose."""
    from .model import model_config

    paths = {n: external.write_frames(work / f"{n}.extxyz", d) for n, d in splits.items()}
    stress = external.has_stress(splits["train"]) and external.has_stress(splits["validation"])
    latest = files.latest_checkpoint(work)
    if latest is None:
        checkpoint = work / "start.pth"
        if not checkpoint.is_file():
            import torch

            with atomic_write(checkpoint) as handle:
                torch.save(files.shifted_checkpoint(content, offsets), handle)
    else:
        checkpoint = latest
    epochs = config.training.epochs if stop_after is None else stop_after
    done = int(latest.stem.split("_")[1]) if latest is not None else 0
    if done < epochs:
        yaml_path = files.input_yaml(
            work / "input.yaml",
            model_config(content),
            config.training,
            paths,
            checkpoint,
            resume=latest is not None,
            stress=stress,
            epochs=epochs,
        )
        _subprocess(yaml_path, work, config.training, epochs, done, progress)
    best = work / "checkpoint_best.pth"
    if stop_after is not None and stop_after < config.training.epochs:
        return None
    if not best.is_file():
        raise EquilensError(
            f"{work}: sevenn wrote no checkpoint_best.pth; see {work / 'log.sevenn'}"
        )
    return best


def _subprocess(yaml_path: Path, work: Path, training: SevennTraining, epochs, done, progress):
    """``sevenn input.yaml`` in ``work``, with a progress bar over the epochs."""
    from tqdm.auto import tqdm

    env = dict(os.environ)
    if training.threads:
        env["OMP_NUM_THREADS"] = str(training.threads)
    command = [sys.executable, "-m", "sevenn.main.sevenn", yaml_path.name, "-w", "."]
    with open(work / "sevenn.out", "ab") as log:
        process = subprocess.Popen(command, cwd=work, stdout=log, stderr=subprocess.STDOUT, env=env)
        bar = tqdm(total=epochs, initial=done, desc="sevenn", unit="epoch", disable=not progress)
        with bar:
            while process.poll() is None:
                time.sleep(1.0)
                rows = files.learning_curve(work)
                now = int(rows[-1]["epoch"]) if rows else done
                bar.update(max(0, now - bar.n))
    if process.returncode != 0:
        text = "\n".join(
            (work / name).read_text(errors="replace") if (work / name).is_file() else ""
            for name in ("log.sevenn", "sevenn.out")
        )
        tail = text.strip().splitlines()[-1:]
        raise EquilensError(
            f"{work}: sevenn's trainer failed (exit {process.returncode}): "
            f"{tail[0][:200] if tail else ''}; see {work / 'sevenn.out'}"
        )


def _finish(config, model, splits, zero_shot, offsets, work: Path, timings, content):
    """Metrics of the fine-tuned and zero-shot models, log, plots, ``metrics.json``."""
    output = config.output
    history = files.learning_curve(work)
    best_epoch = int(content.get("epoch", 0))
    best_row = next((r for r in history if int(r["epoch"]) == best_epoch), None)
    result = FitResult(
        best_epoch=best_epoch,
        best_validation_loss=best_row["validation_loss"] if best_row else float("nan"),
        history=history,
        stopped_early=False,
        seconds=timings["training_s"],
    )
    metrics, baselines = external.evaluate_against_base(
        model, splits, zero_shot, offsets, output, config.name
    )
    summary = run_summary(
        config, result, timings, splits, metrics, baselines,
        base_model=config.base_model,
        energy_offsets_eV={str(z): v for z, v in offsets.items()},
    )  # fmt: skip
    external.write_history(output, history)
    save_json(output / "metrics.json", summary)
    return summary
