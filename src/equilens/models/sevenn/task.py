"""The ``sevenn`` task: train a SevenNet (NequIP-type) model with sevenn's own
trainer, from scratch or from a base model.

From scratch (``base_model: null``), the ``model`` section sizes the network
(:class:`SevennModel`; sevenn's ``base`` preset scaled down to what two CPU
cores train in minutes) and the baseline is the composition model (per-species
energies fitted by least squares, zero forces)::

    task: sevenn
    name: nequip_iron_water
    data: {train: reference:iron_water/train, validation_fraction: 0.1}
    base_model: null
    model: {channel: 16, lmax: 1, num_convolution_layer: 2, cutoff: 5.0}
    training: {epochs: 100, batch_size: 4, learning_rate: 0.005, loss: mse}

Fine-tuning (``base_model`` set):

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
   model (from scratch: the training frames) knows every element of every
   split (one line naming the element otherwise);
2. fine-tuning: refits the per-species energy offsets on the training frames
   (reference minus the base model's zero-shot energies, least squares over
   the species counts) and moves the base model's per-species energy shifts
   by them, in a starting checkpoint (``refit_offsets``; two levels of theory
   differ by large constants that the network should not have to learn);
   from scratch: sevenn fits the same per-species energies itself
   (``model.shift: elemwise_reference_energies``);
3. writes the frames as extxyz and sevenn's ``input.yaml`` (the model section
   copied from the checkpoint, or from ``model``), and runs ``sevenn`` in a
   subprocess in ``<output>/sevenn/``, with a progress bar over its epochs;
   an interrupted run resumes from sevenn's latest checkpoint when the
   command is rerun;
4. writes ``model.pth`` (sevenn's best-validation checkpoint without the
   optimizer state; ``equilens.models.load("sevenn:<output>/model.pth")``),
   ``metrics.json`` in the schema of every task (baseline: the zero-shot base
   model with offsets refitted, or the composition model), ``log.csv``, the
   parity plots and the learning curve.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ...data.splits import load_splits
from ...errors import ConfigError, EquilensError, ModelError
from ...storage import (
    atomic_write,
    save_json,
)
from ...training.loop import FitResult
from ...training.run import run_summary
from .. import external
from . import files
from .config import SevennConfig, SevennTraining


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

    trainer_command(config.training, Path("input.yaml"))  # refused here, before anything runs
    timings: Dict[str, float] = {}
    start = time.perf_counter()
    splits = load_splits(config.data, config.read)
    base = base_path = None
    if config.base_spec is None:
        external.check_scratch_species(splits)
    else:
        try:
            base_path = checkpoint_path(config.base_spec)
            base = SevenNetModel(config.base_spec)
        except ModelError as error:
            raise ConfigError(f"base_model: {error}") from None
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
    if base is None:
        zero_shot = {name: external.no_predictions(d) for name, d in splits.items()}
    else:
        zero_shot = {name: external.predict(base, d) for name, d in splits.items()}
    offsets = {z: 0.0 for z in splits["train"].species}
    if config.refit_offsets or base is None:
        offsets = external.fit_offsets(splits["train"], zero_shot["train"][0])
    timings["zero_shot_s"] = time.perf_counter() - start

    start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    content = None if base_path is None else read_checkpoint(base_path)
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
    from ase.data import chemical_symbols

    from .model import model_config

    paths = {n: external.write_frames(work / f"{n}.extxyz", d) for n, d in splits.items()}
    stress = external.has_stress(splits["train"]) and external.has_stress(splits["validation"])
    latest = files.latest_checkpoint(work)
    checkpoint: Optional[Path] = latest
    if latest is None and content is not None:
        checkpoint = work / "start.pth"
        if not checkpoint.is_file():
            import torch

            with atomic_write(checkpoint) as handle:
                torch.save(files.shifted_checkpoint(content, offsets), handle)
    if content is None:
        assert config.model is not None
        model_section, data_keys = config.model.sections()
        species = [chemical_symbols[z] for z in splits["train"].species]
        model_section["chemical_species"] = species
    else:
        model_section, data_keys = files.continued_model(model_config(content)), {}
    epochs = config.training.epochs if stop_after is None else stop_after
    done = int(latest.stem.split("_")[1]) if latest is not None else 0
    if done < epochs:
        yaml_path = files.input_yaml(
            work / "input.yaml",
            model_section,
            data_keys,
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

    def epochs_done() -> int:
        rows = files.learning_curve(work)
        return int(rows[-1]["epoch"]) if rows else done

    command = trainer_command(training, yaml_path)
    external.run_trainer(command, work, "sevenn", (done, epochs), epochs_done, progress,
                         training.threads, logs=["log.sevenn"])  # fmt: skip


def trainer_command(training: SevennTraining, yaml_path: Path) -> List[str]:
    """sevenn's command line: one process, or ``training.processes`` under
    torchrun with sevenn's own distributed flag (NCCL: one CUDA GPU each);
    a one-line :class:`ConfigError` when this machine has too few GPUs."""
    command = ["-m", "sevenn.main.sevenn", yaml_path.name, "-w", "."]
    if training.processes == 1:
        return [sys.executable, *command]
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus < training.processes:
        raise ConfigError(
            f"training.processes: sevenn trains {training.processes} processes with NCCL, one "
            f"CUDA GPU each; this machine has {gpus} (use processes: 1)"
        )
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher.append(f"--nproc_per_node={training.processes}")
    return [*launcher, *command, "-d", "--distributed_backend", "nccl"]


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
    baseline = "zero_shot" if config.base_model is not None else "composition"
    metrics, baselines = external.evaluate_against_base(
        model, splits, zero_shot, offsets, output, config.name, baseline
    )
    summary = run_summary(
        config, result, timings, splits, metrics, baselines,
        base_model=config.base_model,
        energy_offsets_eV={str(z): v for z, v in offsets.items()},
    )  # fmt: skip
    external.write_history(output, history)
    save_json(output / "metrics.json", summary)
    return summary
