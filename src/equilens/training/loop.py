"""The training loop shared by every equilens model.

:func:`fit` runs Adam over shuffled mini-batches with a learning-rate
schedule, validates every epoch, stops early when the validation loss stops
improving and restores the best weights. It writes a CSV log every epoch and
an atomic checkpoint every ``checkpoint_every`` epochs; calling it again
with the same output folder resumes from the checkpoint and reaches the same
result as an uninterrupted run (the batch order of epoch ``e`` depends only
on ``(seed, e)``, and every other piece of state is in the checkpoint).

What is trained is given by two functions: ``loss_fn(model, batch_indices)``
returning a scalar to minimise, and ``validate_fn(model)`` returning the
validation loss and a dictionary of metrics to log.

Under ``torchrun`` (:mod:`equilens.training.distributed`) every process
takes its share of each global batch and calls ``loss_fn(model, shard,
batch)``: the loss of the shard's frames normalised by the counts of the
whole ``batch``, so that the summed gradients are those of one process on
the whole batch. Only rank 0 writes the log and the checkpoint.
"""

from __future__ import annotations

import copy
import csv
import inspect
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Tuple, Union

import torch
from tqdm.auto import tqdm

from ..config import to_mapping
from ..errors import ConfigError, EquilensError, FileFormatError
from ..storage import atomic_write, hash_json, load_torch, save_torch
from . import distributed

PathLike = Union[str, "os.PathLike[str]"]
CHECKPOINT_VERSION = 2  # 1: pickled (equilens 0.1)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    :param epochs: the most epochs to run
    :param batch_size: frames per optimisation step
    :param learning_rate: initial Adam learning rate
    :param weight_decay: AdamW weight decay
    :param scheduler: ``plateau`` (divide the rate by ``1 / factor`` after
        ``scheduler_patience`` epochs without improvement), ``cosine`` (to
        ``min_learning_rate`` over ``epochs``) or ``none``
    :param scheduler_patience: epochs without improvement before a plateau cut
    :param scheduler_factor: factor of a plateau cut
    :param min_learning_rate: the rate never goes below this
    :param early_stopping_patience: stop after this many epochs without a
        better validation loss
    :param checkpoint_every: write a checkpoint every this many epochs
    :param gradient_clip: clip the gradient norm (``None`` for no clipping)
    :param batching: ``frames`` draws every batch from a new random
        permutation of the frames; ``blocks`` cuts the frames, in storage
        order, into consecutive batches at a random offset and shuffles the
        batches. With ``blocks`` a batch is a slice of the precomputed
        features (no copy: 2x faster epochs with forces); store the frames in
        a random order, as ``train_potential`` does, so that consecutive
        frames are not consecutive MD steps
    :param seed: seeds the initial weights and the batch order
    :param dtype: ``float32`` or ``float64``
    :param device: ``auto`` (a CUDA GPU when torch sees one, else the CPU),
        ``cpu``, ``cuda`` or ``cuda:N``; the precomputed features move there
        once. Not part of the run's identity: a run resumes on another device
    """

    epochs: int = 300
    batch_size: int = 8
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    scheduler: Literal["plateau", "cosine", "none"] = "plateau"
    scheduler_patience: int = 10
    scheduler_factor: float = 0.5
    min_learning_rate: float = 1e-5
    early_stopping_patience: int = 40
    checkpoint_every: int = 10
    gradient_clip: Optional[float] = 10.0
    batching: Literal["frames", "blocks"] = "blocks"
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"
    device: str = "auto"

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be >= 1")
        if self.learning_rate <= 0:
            raise ConfigError("learning_rate must be > 0")
        if not 0 < self.scheduler_factor < 1:
            raise ConfigError("scheduler_factor must be in (0, 1)")
        if self.checkpoint_every < 1:
            raise ConfigError("checkpoint_every must be >= 1")

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


@dataclass
class FitResult:
    """What :func:`fit` returns: the best epoch and the per-epoch history."""

    best_epoch: int
    best_validation_loss: float
    history: List[Dict[str, float]]
    stopped_early: bool
    seconds: float


def fit(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
    validate_fn: Callable[[torch.nn.Module], Tuple[float, Dict[str, float]]],
    n_train: int,
    config: TrainConfig,
    output_dir: PathLike,
    progress: bool = True,
    stop_after: Optional[int] = None,
    fingerprint: Optional[dict] = None,
) -> FitResult:
    """Train ``model`` in place and restore its best weights.

    :param loss_fn: loss of the training frames at the given indices
    :param validate_fn: ``(validation loss, metrics)`` of the current model
    :param n_train: number of training frames
    :param output_dir: where ``log.csv`` and ``checkpoint.pt`` go
    :param stop_after: stop (as if interrupted) after this epoch, leaving the
        checkpoint; used to test resuming
    :param fingerprint: plain data identifying the run (configs, data hashes);
        a checkpoint with another fingerprint is not resumed from
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = output_dir / "checkpoint.pt"
    _check_distributed(n_train, loss_fn)
    settings = to_mapping(config)
    settings.pop("device", None)  # where it runs is not what it computes
    run_id = hash_json({"train": settings, "run": fingerprint or {}})
    optimizer = _optimizer(model, config)
    scheduler = _scheduler(optimizer, config)
    state = _restore(checkpoint_path, run_id, model, optimizer, scheduler) or _fresh_state(model)
    distributed.broadcast_parameters(model)
    main = distributed.is_main()
    bar = tqdm(
        total=config.epochs,
        initial=state["epoch"],
        desc="training",
        unit="epoch",
        disable=not progress or not main,
        leave=False,
    )
    with bar:
        while state["epoch"] < config.epochs and not state.get("stopped", False):
            epoch = state["epoch"] + 1
            start = time.perf_counter()
            train_loss = _train_epoch(model, loss_fn, optimizer, n_train, config, epoch)
            model.eval()
            validation_loss, metrics = validate_fn(model)
            _check_finite(epoch, {"validation_loss": validation_loss, **metrics})
            if scheduler is not None:
                if config.scheduler == "plateau":
                    scheduler.step(validation_loss)
                else:
                    scheduler.step()
            if validation_loss < state["best_loss"]:
                state.update(
                    best_loss=validation_loss,
                    best_epoch=epoch,
                    best_state=copy.deepcopy(model.state_dict()),
                    bad_epochs=0,
                )
            else:
                state["bad_epochs"] += 1
            elapsed = time.perf_counter() - start
            state["seconds"] += elapsed
            state["history"].append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "validation_loss": validation_loss,
                    "learning_rate": optimizer.param_groups[0]["lr"],
                    "seconds": elapsed,
                    **metrics,
                }
            )
            state["epoch"] = epoch
            state["stopped"] = state["bad_epochs"] >= config.early_stopping_patience
            if main:
                _write_log(output_dir / "log.csv", state["history"])
            bar.update(1)
            bar.set_postfix(val=f"{validation_loss:.4g}", best=state["best_epoch"])
            finished = state["stopped"] or epoch == config.epochs
            if epoch % config.checkpoint_every == 0 or finished or epoch == stop_after:
                if main:
                    _save_checkpoint(checkpoint_path, run_id, model, optimizer, scheduler, state)
                distributed.barrier()
            if stop_after is not None and epoch >= stop_after and not finished:
                break

    model.load_state_dict(state["best_state"])
    return FitResult(
        best_epoch=state["best_epoch"],
        best_validation_loss=state["best_loss"],
        history=state["history"],
        stopped_early=bool(state.get("stopped", False)),
        seconds=state["seconds"],
    )


def _fresh_state(model) -> Dict[str, Any]:
    """The loop state before the first epoch."""
    return {
        "epoch": 0,
        "best_loss": math.inf,
        "best_epoch": 0,
        "best_state": copy.deepcopy(model.state_dict()),
        "bad_epochs": 0,
        "history": [],
        "seconds": 0.0,
    }


def _check_distributed(n_train: int, loss_fn) -> None:
    """Refuse, in one line, what cannot train under torchrun."""
    distributed.check_frames(n_train)
    if distributed.world_size() > 1 and len(inspect.signature(loss_fn).parameters) < 3:
        raise ConfigError(
            "this task does not train under torchrun (its loss has no per-rank share); "
            "run it in one process"
        )


def _restore(path: Path, run_id: str, model, optimizer, scheduler) -> Optional[Dict[str, Any]]:
    """The loop state of the checkpoint at ``path`` (weights, optimizer and
    scheduler restored in place), or ``None`` when there is none."""
    if not path.is_file():
        return None
    try:
        checkpoint = load_torch(path, "training checkpoint")
        if not isinstance(checkpoint, dict) or "state" not in checkpoint:
            raise FileFormatError(f"{path}: not an equilens training checkpoint")
    except FileFormatError as error:
        warnings.warn(f"{error}; training starts again from epoch 0", stacklevel=3)
        return None
    if checkpoint.get("version") != CHECKPOINT_VERSION or checkpoint.get("run_id") != run_id:
        raise EquilensError(
            f"{path} belongs to another run (different configuration or data); "
            "delete it or choose another output folder"
        )
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    return checkpoint["state"]


def _train_epoch(model, loss_fn, optimizer, n_train: int, config: TrainConfig, epoch: int) -> float:
    """One pass over the training batches; returns the mean training loss."""
    model.train()
    total, count = 0.0, 0
    several = distributed.world_size() > 1
    for batch in _batches(n_train, config, epoch):
        optimizer.zero_grad(set_to_none=True)
        value = 0.0
        if not several:
            loss = loss_fn(model, batch)
        else:
            shard = distributed.shard(batch)
            # a rank without frames in this batch adds zero gradients
            loss = loss_fn(model, shard, batch) if len(shard) else None
        if loss is not None:
            value = float(loss.detach())
            _check_finite(epoch, {"training loss": value})
            loss.backward()
        distributed.all_reduce_gradients(model)
        if config.gradient_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip)
        optimizer.step()
        total += distributed.all_reduce_sum(value) * len(batch)
        count += len(batch)
    return total / count


def _check_finite(epoch: int, values: Dict[str, float]) -> None:
    """Stop with an error naming the epoch and the first non-finite term."""
    for name, value in values.items():
        if not math.isfinite(float(value)):
            raise EquilensError(
                f"the {name.replace('_', ' ')} became {value} at epoch {epoch}; training "
                "stopped (check the data for overlapping atoms or bad targets, or lower the "
                "learning rate)"
            )


def _batches(n_train: int, config: TrainConfig, epoch: int) -> List[torch.Tensor]:
    """The batches of frame indices of ``epoch``; they depend only on
    ``(seed, epoch)``, which is what makes resuming exact."""
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    if config.batching == "frames":
        return list(torch.randperm(n_train, generator=generator).split(config.batch_size))
    offset = int(torch.randint(config.batch_size, (1,), generator=generator))
    frames = torch.arange(n_train)
    batches = ([frames[:offset]] if offset else []) + list(frames[offset:].split(config.batch_size))
    # fewer training frames than the offset leave an empty slice: not a batch
    batches = [batch for batch in batches if len(batch)]
    order = torch.randperm(len(batches), generator=generator)
    return [batches[i] for i in order]


def _optimizer(model: torch.nn.Module, config) -> torch.optim.AdamW:
    """AdamW, with torch's fused kernel where the parameters' device has it:
    one kernel for every tensor instead of a loop over them in Python (an
    equivariant potential's 84 tensors: 2.4 -> 0.7 ms per step on 2 cores)."""
    parameters = list(model.parameters())
    fused = bool(parameters) and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in parameters
    )
    return torch.optim.AdamW(
        parameters,
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        fused=fused or None,
    )


def _scheduler(optimizer, config: TrainConfig):
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            factor=config.scheduler_factor,
            patience=config.scheduler_patience,
            min_lr=config.min_learning_rate,
        )
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.epochs, eta_min=config.min_learning_rate
        )
    return None


def _save_checkpoint(path, run_id, model, optimizer, scheduler, state) -> None:
    checkpoint = {
        "version": CHECKPOINT_VERSION,
        "run_id": run_id,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "state": state,
    }
    save_torch(path, checkpoint)


def _write_log(path: Path, history: List[Dict[str, float]]) -> None:
    columns = list(history[0])
    for row in history[1:]:
        columns += [c for c in row if c not in columns]
    with atomic_write(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
