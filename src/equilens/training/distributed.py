"""Data-parallel training under ``torchrun``, with ``torch.distributed``.

``torchrun --nproc_per_node N -m equilens train CONFIG`` starts ``N``
processes with ``RANK``, ``WORLD_SIZE`` and the rendezvous in their
environment; :func:`process_group` joins them (gloo on CPU, NCCL on CUDA)
for the duration of the command. Everything else asks torch.distributed
where it is (:func:`rank`, :func:`world_size`), so that one process is
simply the world of size 1 and nothing here holds state of its own.

What the training loop does with it (:func:`equilens.training.loop.fit`):

- every process featurizes and holds only its training frames
  (:func:`own_frames`: frame ``f`` belongs to rank ``f mod N``), so the
  memory of the features is divided by ``N``;
- every process draws the same global batch (``batch_size`` frames, order
  seeded by ``(seed, epoch)``) and computes the loss of its share,
  :func:`shard`, normalised by the whole batch's counts;
- :func:`all_reduce_gradients` sums the gradients (one flat buffer, one
  call), so every rank takes the same optimizer step as one process would
  on the whole batch, to the order of the floating-point sums;
- only rank 0 writes the log, the checkpoint, the model, the metrics and
  the plots and shows the progress bar; the others wait for it where they
  need its files (:func:`main_first`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Iterator, Optional

import numpy as np
import torch

from ..errors import ConfigError

#: how long a process waits for the others to join or reach a barrier
TIMEOUT = datetime.timedelta(minutes=30)


def launched() -> bool:
    """Whether this process was started by torchrun with other processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world_size() -> int:
    """Processes training together (1 without torchrun)."""
    distributed = torch.distributed
    return distributed.get_world_size() if distributed.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    distributed = torch.distributed
    return distributed.get_rank() if distributed.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes the outputs (rank 0)."""
    return rank() == 0


@contextlib.contextmanager
def process_group(device: Optional[torch.device] = None) -> Iterator[None]:
    """Join the processes torchrun started (nothing when it did not), and
    leave the group at the end. NCCL on a CUDA ``device`` (each process on
    ``cuda:LOCAL_RANK``), gloo otherwise."""
    if not launched() or torch.distributed.is_initialized():
        yield
        return
    backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend, timeout=TIMEOUT)
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def barrier() -> None:
    """Wait for every process (nothing for one process)."""
    if world_size() > 1:
        torch.distributed.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first (it fills a cache, claims a folder),
    then on the other ranks."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This rank's frames of a global batch of frame indices."""
    size = world_size()
    return batch if size == 1 else batch[batch % size == rank()]


def check_frames(n_train: int) -> None:
    """Refuse more processes than training frames, in one line."""
    size = world_size()
    if size > n_train:
        raise ConfigError(
            f"torchrun started {size} processes for {n_train} training frames; use at most "
            f"{n_train} processes (--nproc_per_node)"
        )


def own_frames(n_train: int) -> np.ndarray:
    """The training frames this rank owns (and featurizes): ``f mod N == rank``."""
    return np.arange(rank(), n_train, world_size())


def local_positions(frames: torch.Tensor) -> torch.Tensor:
    """Positions, in this rank's shard, of frames it owns."""
    return frames // world_size()


def gather_to_main(value):
    """``[value of rank 0, value of rank 1, ...]`` on rank 0 (``None`` on the
    others; ``[value]`` for one process)."""
    if world_size() == 1:
        return [value]
    gathered = [None] * world_size() if is_main() else None
    torch.distributed.gather_object(value, gathered, dst=0)
    return gathered


def frames_per_rank(n_train: int) -> list:
    """How many training frames each rank owns (:func:`shard`)."""
    size = world_size()
    return [len(range(r, n_train, size)) for r in range(size)]


def all_reduce_gradients(module: torch.nn.Module) -> None:
    """Sum every parameter's gradient over the processes, in place."""
    if world_size() == 1:
        return
    parameters = [p for p in module.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    offset = 0
    for parameter, grad in zip(parameters, grads):
        size = grad.numel()
        parameter.grad = flat[offset : offset + size].view_as(grad).clone()
        offset += size


def all_reduce_sum(value: float) -> float:
    """The sum of ``value`` over the processes."""
    if world_size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    torch.distributed.all_reduce(tensor)
    return float(tensor[0])


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Give every process rank 0's parameters and buffers."""
    if world_size() == 1:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        torch.distributed.broadcast(tensor.data, src=0)
