"""Datasets: reading and validation, splits, reference and embedded data, examples.

- :func:`read_dataset` / :func:`validate_frames`: validated frames with
  energies and forces, errors naming the file and frame;
- :class:`SplitConfig`, :func:`load_splits`, :func:`split_indices`: seeded,
  optionally stratified splits;
- :func:`reference_path`: the public reference datasets ($EQUILENS_DATA,
  else ../shared/data) with checksums; :func:`embedded_path`: the datasets
  shipped inside the package (``embedded:NAME``);
- :func:`resolve_path`: a path, ``reference:NAME`` or ``embedded:NAME``;
- :func:`iron_water_example`: a seeded built-in example.
"""

from .embedded import embedded_names, embedded_path
from .examples import iron_water_example
from .geometry import check_geometry
from .io import Dataset, ReadOptions, SkippedFrame, read_dataset, validate_frames
from .reference import ENV_VARIABLE, data_root, fetch_reference, manifest, reference_path
from .splits import (
    SplitConfig,
    load_splits,
    random_split,
    random_split_indices,
    resolve_path,
    split_indices,
    stratified_split_indices,
)

__all__ = [
    "ENV_VARIABLE",
    "Dataset",
    "ReadOptions",
    "SkippedFrame",
    "SplitConfig",
    "check_geometry",
    "data_root",
    "embedded_names",
    "embedded_path",
    "fetch_reference",
    "iron_water_example",
    "load_splits",
    "manifest",
    "random_split",
    "random_split_indices",
    "read_dataset",
    "reference_path",
    "resolve_path",
    "split_indices",
    "stratified_split_indices",
    "validate_frames",
]
