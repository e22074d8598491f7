"""What the scripts of the tensor workflow share: the mode, the data folder,
the three targets and how each is trained."""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ("dipole", "polarizability", "density")


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="a few small molecules, a minimal basis, few epochs"
    )
    parser.add_argument("--output", default="results/workflows/tensors", help="results folder")
    return parser.parse_args()


def data_folder(args: argparse.Namespace) -> Path:
    """The generated targets (step 1)."""
    return Path(args.output) / "data"


def model_folder(args: argparse.Namespace, target: str) -> Path:
    return Path(args.output) / target
