"""The files equilens hands to sevenn's trainer and reads back from it.

sevenn trains from an ``input.yaml`` (model, train and data sections) and
ASE-readable data files, and writes checkpoints and ``lc.csv`` learning
curves into its working folder. This module writes the first two, the
starting checkpoint (the base model with its per-species energy shifts moved
by the offsets refitted on the new data), and reads the learning curve.
Checkpoints are read with :func:`~equilens.models.sevenn.model.read_checkpoint`
(no unpickling); sevenn itself, in its own process, reads what it wrote.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import yaml

from ...storage import atomic_write

#: the model keys of sevenn's configuration (``sevenn._const``); the input
#: must repeat the checkpoint's values, since sevenn loads the weights into a
#: model built from the input with ``strict=False``
MODEL_KEYS = (
    "cutoff",
    "channel",
    "irreps_manual",
    "lmax",
    "lmax_edge",
    "lmax_node",
    "is_parity",
    "num_convolution_layer",
    "radial_basis",
    "cutoff_function",
    "act_radial",
    "act_scalar",
    "act_gate",
    "weight_nn_hidden_neurons",
    "conv_denominator",
    "train_denominator",
    "train_shift_scale",
    "use_bias_in_linear",
    "readout_as_fcn",
    "readout_fcn_hidden_neurons",
    "readout_fcn_activation",
    "self_connection_type",
    "interaction_type",
    "_normalize_sph",
)


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python numbers and lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def shifted_checkpoint(content: dict, offsets: Mapping[int, float]) -> dict:
    """``content`` (a SevenNet checkpoint) with ``offsets[Z]`` (eV) added to the
    per-species energy shift of each element ``Z``, optimizer state dropped."""
    import torch

    state = dict(content["model_state_dict"])
    type_map = {int(z): int(i) for z, i in content["config"]["_type_map"].items()}
    shift = state["rescale_atomic_energy.shift"].clone()
    if shift.numel() == 1 and len(type_map) > 1:
        shift = shift.repeat(len(type_map))  # one shared shift: make it per species
    for z, offset in offsets.items():
        shift[type_map[z]] += float(offset)
    state["rescale_atomic_energy.shift"] = shift
    config = dict(content["config"])
    config["shift"] = shift.numpy().copy()
    out = {k: v for k, v in content.items() if k not in ("optimizer_state_dict",)}
    out.update(model_state_dict=state, config=config, epoch=0)
    out["optimizer_state_dict"] = None
    out["scheduler_state_dict"] = None
    return {k: (torch.as_tensor(v) if k == "epoch" else v) for k, v in out.items()}


def continued_model(base_config: Mapping[str, Any]) -> Dict[str, Any]:
    """sevenn's ``model`` section for continuing a checkpoint whose
    configuration is ``base_config`` (its architecture repeated, species and
    shift/scale left to the checkpoint)."""
    model = {k: plain(base_config[k]) for k in MODEL_KEYS if base_config.get(k) is not None}
    model["chemical_species"] = "Auto"  # replaced by the checkpoint's
    model["train_shift_scale"] = False
    model["train_denominator"] = False
    return model


def input_yaml(
    path: Path,
    model: Mapping[str, Any],
    data_keys: Mapping[str, Any],
    training: Any,
    files: Mapping[str, Path],
    checkpoint: Optional[Path],
    resume: bool,
    stress: bool,
    epochs: int,
) -> Path:
    """sevenn's ``input.yaml`` for training ``model`` (its ``model`` section)
    on ``files``, from ``checkpoint`` where there is one.

    :param data_keys: further keys of sevenn's ``data`` section (``shift``,
        ``scale``)
    :param training: a :class:`~equilens.models.sevenn.config.SevennTraining`
    :param resume: continue an interrupted run (keep the optimizer, scheduler
        and epoch of ``checkpoint``) rather than start from its weights
    """
    loss = {"loss": "Huber", "loss_param": {"delta": training.huber_delta}}
    if training.loss == "mse":
        loss = {"loss": "mse", "loss_param": {}}
    records = [["Energy", "RMSE"], ["Force", "RMSE"], ["TotalLoss", "None"]]
    train = {
        "random_seed": training.seed,
        "is_train_stress": stress,
        "epoch": epochs,
        **loss,
        "optimizer": "adam",
        "optim_param": {"lr": training.learning_rate},
        "scheduler": "exponentiallr",
        "scheduler_param": {"gamma": training.scheduler_gamma},
        "force_loss_weight": training.force_weight,
        "per_epoch": training.checkpoint_every,
        "error_record": records[:2] + ([["Stress", "RMSE"]] if stress else []) + records[2:],
    }
    if checkpoint is not None:
        train["continue"] = {
            "checkpoint": str(Path(checkpoint).resolve()),
            "reset_optimizer": not resume,
            "reset_scheduler": not resume,
            "reset_epoch": not resume,
        }
    if stress:
        train["stress_loss_weight"] = training.stress_weight
    data = {
        "batch_size": training.batch_size,
        **data_keys,
        "data_format_args": {"index": ":"},
        "load_trainset_path": [str(Path(files["train"]).resolve())],
        "load_validset_path": [str(Path(files["validation"]).resolve())],
    }
    with atomic_write(path, "w") as handle:
        yaml.safe_dump(
            {"model": dict(model), "train": train, "data": data}, handle, sort_keys=False
        )
    return path


def latest_checkpoint(folder: Path) -> Optional[Path]:
    """The checkpoint of the latest epoch (>= 1) sevenn wrote in ``folder``."""
    found = []
    for path in folder.glob("checkpoint_*.pth"):
        suffix = path.stem.removeprefix("checkpoint_")
        if suffix.isdigit() and int(suffix) >= 1:
            found.append((int(suffix), path))
    return max(found)[1] if found else None


def learning_curve(folder: Path) -> List[Dict[str, float]]:
    """The rows of sevenn's ``lc*.csv`` files (one per start), one per epoch,
    as ``epoch``, ``learning_rate``, ``train_loss``, ``validation_loss`` and
    the energy (eV/atom) and force (eV/Å) RMSEs; a resumed epoch replaces an
    earlier row of the same number."""
    rows: Dict[int, Dict[str, float]] = {}
    for path in sorted(folder.glob("lc*.csv"), key=lambda p: (len(p.name), p.name)):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                epoch = int(row["epoch"])
                values = {"epoch": float(epoch), "learning_rate": float(row["lr"])}
                for split, prefix in (("train", "trainset"), ("validation", "validset")):
                    values[f"{split}_loss"] = _number(row, f"{prefix}_TotalLoss")
                    values[f"{split}_energy_rmse"] = _number(row, f"{prefix}_Energy_RMSE")
                    values[f"{split}_force_rmse"] = _number(row, f"{prefix}_Force_RMSE")
                rows[epoch] = values
    return [rows[epoch] for epoch in sorted(rows)]


def _number(row: Mapping[str, str], key: str) -> float:
    matches = [v for k, v in row.items() if k and k.replace(" ", "") == key]
    return float(matches[0]) if matches and matches[0] not in ("", None) else float("nan")
