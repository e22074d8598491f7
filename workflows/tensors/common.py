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


def generated_folder(args: argparse.Namespace) -> Path:
    """Where step 1 writes the targets it computes."""
    return Path(args.output) / "data"


def data_folder(args: argparse.Namespace) -> Path:
    """The targets steps 2 and 3 train on: step 1's, or with ``--quick`` the
    set equilens ships (made by the same generator at full size: 60
    monomers, 30 dimers, 12 trimers), since the few molecules of step 1's
    quick run are too few to split into training, validation and test."""
    if args.quick:
        from equilens.data.embedded import embedded_path

        return embedded_path("water_tensors/structures.extxyz").parent
    return generated_folder(args)


def model_folder(args: argparse.Namespace, target: str) -> Path:
    return Path(args.output) / target
