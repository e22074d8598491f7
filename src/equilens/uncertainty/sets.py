"""The frames a model was trained and validated on, from its own record.

A model trained by equilens keeps its training configuration (the
``data`` section of :class:`~equilens.data.splits.SplitConfig`), so the
estimators can be fitted on its training split and calibrated on its
validation split without the user naming them again. Paths in the record
are as they were given at training time (relative ones to the folder
training ran in).
"""

from __future__ import annotations

from typing import Dict

from ..data.io import Dataset
from ..data.splits import SplitConfig, load_splits
from ..errors import ConfigError, EquilensError


def recorded_splits(model) -> Dict[str, Dataset]:
    """``{"train", "validation", ...}`` of the model's training record.

    :raises ConfigError: (one line) when the model has no record of its
        data or its files cannot be read; give the frames explicitly then
    """
    config = model.describe().provenance.get("config") or {}
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, dict) or "train" not in data:
        raise ConfigError(
            f"this {model.kind} model carries no record of its training data; "
            "give the training frames (--train) and calibration frames (--calibration)"
        )
    try:
        return load_splits(SplitConfig(**data))
    except (EquilensError, TypeError, ValueError) as error:
        raise ConfigError(
            f"cannot read the model's training data {data.get('train')!r} ({error}); "
            "give --train and --calibration"
        ) from None
