"""Which torch device a command runs on: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

One function, :func:`resolve_device`, turns the ``--device`` option or the
``device`` key of a configuration into a :class:`torch.device`, and refuses
in one line a device this machine does not have. ``auto`` takes the first
GPU torch sees (under torchrun, the GPU of the process's ``LOCAL_RANK``),
else the CPU.
"""

from __future__ import annotations

import os
import re

import torch

from .errors import ConfigError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(spec: str = "auto") -> torch.device:
    """The device named by ``spec``; a :class:`ConfigError` when it is not there."""
    spec = str(spec).strip().lower()
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", spec):
        raise ConfigError(f"device must be {DEVICE_CHOICES}, got {spec!r}")
    available = torch.cuda.is_available()
    if spec == "cpu" or (spec == "auto" and not available):
        return torch.device("cpu")
    if not available:
        raise ConfigError(f"device {spec!r}: torch sees no CUDA GPU on this machine (use cpu)")
    if spec in ("auto", "cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", local % torch.cuda.device_count())
    index = int(spec.split(":")[1])
    if index >= torch.cuda.device_count():
        raise ConfigError(
            f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)"
        )
    return torch.device("cuda", index)


def model_on_device(model, spec: str = "auto"):
    """``model`` moved to the device ``spec`` names (:meth:`Model.to`); with
    ``auto`` a model that computes on the CPU only stays there instead of
    being refused."""
    from .errors import ModelError

    device = resolve_device(spec)
    try:
        return model.to(device)
    except ModelError:
        if str(spec).strip().lower() != "auto":
            raise
        return model
