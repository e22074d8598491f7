"""Datasets: reading and validation, splits, reference data, built-in examples."""

from .examples import iron_water_example  # noqa: F401
from .io import Dataset, ReadOptions, SkippedFrame, read_dataset, validate_frames  # noqa: F401
from .reference import (  # noqa: F401
    ENV_VARIABLE,
    data_root,
    fetch_reference,
    manifest,
    reference_path,
)
from .splits import SplitConfig, load_splits, random_split, random_split_indices  # noqa: F401
