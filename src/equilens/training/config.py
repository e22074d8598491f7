"""One configuration shape for every training task, and what a run owns.

A training YAML file names its ``task``; the rest of the file is validated
against that task's dataclass (:class:`~equilens.training.potential.PotentialConfig`
or :class:`~equilens.training.tensor.TensorConfig`), which share the fields
``task``, ``name``, ``data``, ``read``, ``descriptor``, ``model``,
``training``, ``output_dir`` and ``cache_dir``::

    task: potential            # or: tensor
    name: water
    data: {train: reference:water/train, validation_fraction: 0.1}
    ...

This module also holds the pieces every task uses the same way: command-line
overrides (:func:`with_overrides`), the run fingerprint that hashes the
configuration and the data (:func:`run_fingerprint`), and the claim on an
output folder, so that a folder is never silently overwritten by a run with
another configuration (:func:`claim_output`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..config import from_mapping, load_yaml, to_mapping
from ..errors import ConfigError
from ..storage import claim_outputs

PathLike = Union[str, "os.PathLike[str]"]

#: ``task`` -> ``module:class`` of its configuration dataclass
TASKS = {
    "potential": "equilens.training.potential:PotentialConfig",
    "tensor": "equilens.training.tensor:TensorConfig",
    "sevenn": "equilens.training.sevenn:SevennConfig",
    "metatrain": "equilens.training.metatrain:MetatrainConfig",
}
#: files a run writes into its output folder
RUN_MARKER = "run.json"
RUN_OUTPUTS = ("checkpoint.pt", "model.pt", "metrics.json", "log.csv")


def task_config_class(task: str):
    """The configuration dataclass of ``task``."""
    if task not in TASKS:
        raise ConfigError(f"unknown task '{task}'; expected one of: {', '.join(TASKS)}")
    module, _, name = TASKS[task].partition(":")
    return getattr(importlib.import_module(module), name)


def load_run_config(path: PathLike):
    """Read a training YAML file (or a built-in configuration name) and
    validate it against the dataclass of its ``task``."""
    mapping = load_yaml(path)
    task = mapping.get("task")
    if task is None:
        raise ConfigError(
            f"{path}: missing key 'task' (one of: {', '.join(TASKS)}); e.g. 'task: potential'"
        )
    if not isinstance(task, str) or task not in TASKS:
        raise ConfigError(f"{path}.task: expected one of {', '.join(TASKS)}, got {task!r}")
    return from_mapping(task_config_class(task), mapping, where=str(path))


def with_overrides(config, output: Optional[str] = None, epochs: Optional[int] = None):
    """``config`` with a new output folder and/or number of epochs."""
    if output:
        config = dataclasses.replace(config, output_dir=str(output))
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {epochs}")
        training = dataclasses.replace(config.training, epochs=epochs)
        config = dataclasses.replace(config, training=training)
    return config


def output_folder(config) -> Path:
    """Where a run writes: ``output_dir``, else ``results/train/<name>``."""
    return Path(config.output_dir or f"results/train/{config.name}")


def run_fingerprint(config, data: Dict[str, Any]) -> Dict[str, Any]:
    """What identifies a run: its configuration (without where it writes and
    caches) and hashes of its data (structures and targets of every split)."""
    mapping = to_mapping(config)
    for key in ("output_dir", "cache_dir"):
        mapping.pop(key, None)
    return {"config": mapping, "data": data}


def claim_output(folder: Path, fingerprint: Dict[str, Any], overwrite: bool = False) -> None:
    """Make ``folder`` the output folder of the run ``fingerprint``
    (:func:`equilens.storage.claim_outputs`, recorded in ``run.json``)."""
    folder = Path(folder)
    outputs = [folder / name for name in RUN_OUTPUTS]
    claim_outputs(folder / RUN_MARKER, fingerprint, outputs, overwrite, str(folder))
