"""What the four scripts of the foundation-model workflow share: the
settings of the chosen mode, where the data and results are, and how a
step's section becomes the configuration file of an equilens command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict

import yaml

from equilens.config import load_yaml

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "data"  # the oxides equilens generated, committed with the checkout


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a few frames and steps (minutes)")
    parser.add_argument(
        "--output", help="folder (default: results/workflows/foundation_heo[_quick])"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the outputs of other settings"
    )
    args = parser.parse_args()
    if args.output is None:  # each mode its own folder: neither replaces the other's outputs
        args.output = "results/workflows/foundation_heo" + ("_quick" if args.quick else "")
    return args


def merged(base: Dict[str, Any], update: Dict[str, Any]) -> Dict[str, Any]:
    """``base`` with ``update``'s values, nested mappings merged key by key."""
    result = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            value = merged(result[key], value)
        result[key] = value
    return result


def settings(args: argparse.Namespace) -> Dict[str, Any]:
    """workflow.yaml, with workflow_quick.yaml over it under ``--quick``."""
    values = load_yaml(HERE / "workflow.yaml")
    return merged(values, load_yaml(HERE / "workflow_quick.yaml")) if args.quick else values


def data_folder(args: argparse.Namespace) -> Path:
    """Where step 1 writes the curated set and its splits."""
    return Path(args.output) / "data"


def write_config(args: argparse.Namespace, section: str, **values: Any) -> Path:
    """The step's section with ``values`` over it, written as the YAML file
    the step's equilens command reads (``<output>/configs/<section>.yaml``)."""
    mapping = merged(settings(args)[section], values)
    path = Path(args.output) / "configs" / f"{section}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path
