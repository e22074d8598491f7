"""One configuration shape for every training task, and what a run owns.

A training YAML file names its ``task``; the rest of the file is validated
against that task's dataclass (the families' ``config.py``, looked up in
:mod:`equilens.models.registry`), which share the fields ``task``, ``name``,
``data``, ``training``, ``output_dir`` and ``cache_dir``::

    task: potential            # or: tensor, sevenn, metatrain
    name: water
    data: {train: reference:water/train, validation_fraction: 0.1}
    ...

This module holds the pieces every task uses the same way: command-line
overrides (:func:`with_overrides`), the run fingerprint that hashes the
configuration and the data (:func:`run_fingerprint`), and the claim on an
output folder, so that a folder is never silently overwritten by a run with
another configuration (:func:`claim_output`), and a finished run found in
it opened instead of run again (:func:`claim_run`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

from ..config import to_mapping
from ..data.splits import split_identity
from ..errors import ConfigError, EquilensError
from ..storage import claim_outputs
from .distributed import main_first

PathLike = Union[str, "os.PathLike[str]"]

#: files a run writes into its output folder
RUN_MARKER = "run.json"
RUN_OUTPUTS = ("checkpoint.pt", "model.pt", "metrics.json", "log.csv")


def with_overrides(
    config,
    output: Optional[str] = None,
    epochs: Optional[int] = None,
    device: Optional[str] = None,
    seed: Optional[int] = None,
):
    """``config`` with a new output folder, number of epochs, device and/or
    training seed (every task's ``training.seed``: the members of a
    committee differ by it)."""
    if device is not None:
        if not hasattr(config.training, "device"):
            raise ConfigError(f"task {config.task} takes no --device (its trainer chooses)")
        training = dataclasses.replace(config.training, device=device)
        config = dataclasses.replace(config, training=training)
    if output:
        config = dataclasses.replace(config, output_dir=str(output))
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {epochs}")
        training = dataclasses.replace(config.training, epochs=epochs)
        config = dataclasses.replace(config, training=training)
    if seed is not None:
        config = dataclasses.replace(
            config, training=dataclasses.replace(config.training, seed=seed)
        )
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
    if isinstance(mapping.get("training"), dict):
        mapping["training"].pop("device", None)  # a run resumes on another device
    if isinstance(mapping.get("data"), dict):
        mapping["data"] = split_identity(mapping["data"])
    return {"config": mapping, "data": data}


def claim_output(folder: Path, fingerprint: Dict[str, Any], overwrite: bool = False) -> None:
    """Make ``folder`` the output folder of the run ``fingerprint``
    (:func:`equilens.storage.claim_outputs`, recorded in ``run.json``)."""
    folder = Path(folder)
    outputs = [folder / name for name in RUN_OUTPUTS]
    with main_first():  # under torchrun: rank 0 claims, the others see its claim
        claim_outputs(folder / RUN_MARKER, fingerprint, outputs, overwrite, str(folder))


class FinishedRun(Exception):
    """Raised by :func:`claim_run` when the output folder already holds the
    run, finished: its ``model`` and ``summary``, which the family's train
    function returns instead of featurizing, training and evaluating again."""

    def __init__(self, model, summary: Dict[str, Any]):
        super().__init__(str(summary.get("name", "")))
        self.model = model
        self.summary = summary


def claim_run(config, fingerprint: Dict[str, Any], overwrite: bool, load: Callable) -> None:
    """Claim ``config.output`` for the run ``fingerprint``
    (:func:`claim_output`), then raise
    :class:`FinishedRun` with ``load(model.pt)`` and ``metrics.json`` when the
    folder holds this run finished: every epoch of ``config.training`` run or
    an early stop recorded, and the learning curve, the last file a run
    writes, there (a run stopped or killed before its end resumes as before;
    a study run again opens its finished models)."""
    claim_output(config.output, fingerprint, overwrite)
    folder = Path(config.output)
    if not all((folder / name).is_file() for name in FINISHED_FILES):
        return
    try:
        summary = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):  # unreadable: evaluated and written again
        return
    if not isinstance(summary, dict):
        return
    if not (summary.get("stopped_early") or summary.get("epochs_run") == config.training.epochs):
        return
    try:
        model = load(folder / "model.pt")
    except EquilensError:  # damaged: trained on from its checkpoint and written again
        return
    raise FinishedRun(model, summary)


#: what a finished run has written, the learning curve last
#: (:func:`equilens.models.energy.task.fit_and_write`)
FINISHED_FILES = ("model.pt", "metrics.json", "learning_curve.png")
