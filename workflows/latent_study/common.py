"""What the three scripts of the latent-study workflow share: the
configuration of the chosen mode and where its results are."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from equilens.study import StudyConfig, load_study_config

HERE = Path(__file__).resolve().parent


def arguments(description: str, epochs: bool = False) -> argparse.Namespace:
    """The options of the workflow's scripts (``--epochs`` for step 3)."""
    parser = argparse.ArgumentParser(description=description)
    if epochs:
        parser.add_argument("--epochs", type=int, help="epochs (default: twice the study's)")
    parser.add_argument("--quick", action="store_true", help="the small study (under a minute)")
    parser.add_argument("--output", default="results/workflows", help="results folder")
    parser.add_argument("--scheduler", help="Dask scheduler for the study (local:N, tcp://...)")
    return parser.parse_args()


def study_config(args: argparse.Namespace) -> StudyConfig:
    """The study of the chosen mode, writing under ``--output``."""
    config = load_study_config(str(HERE / ("study_quick.yaml" if args.quick else "study.yaml")))
    output = Path(args.output)
    return dataclasses.replace(
        config,
        output_dir=str(output),
        chemiscope_dir=str(output),
        cache_dir=str(output / "cache"),
    )


def study_folder(config: StudyConfig) -> Path:
    return Path(config.output_dir) / config.name
