"""The ``equilens`` command: one module per verb.

Each verb module registers its parser (``register``) and imports what its
handler needs inside the handler, so ``equilens --help`` imports nothing
heavy. Every error equilens raises on purpose ends as one line on stderr
naming the file, frame, key or layer, with exit code 2.

Verbs: ``study``, ``train``, ``finetune``, ``latents``, ``compare``, ``export``,
``export-metatomic``, ``descriptors``, ``generate``, ``data``, ``relax``,
``uncertainty``, ``config``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

__all__ = ["VERBS", "build_parser", "main"]

VERBS = (
    "study",
    "train",
    "finetune",
    "latents",
    "compare",
    "export",
    "export_metatomic",
    "descriptors",
    "generate",
    "data",
    "relax",
    "uncertainty",
    "config",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``equilens`` command."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="equilens",
        description=(
            "equilens: look inside equivariant atomistic models. Train potentials and "
            "tensor models on SOAP / lambda-SOAP, read every layer as metatensor "
            "TensorMaps, compare layers (GFRE, GFRD, LFRE), score and map them for "
            "chemiscope."
        ),
    )
    parser.add_argument("--version", action="version", version=f"equilens {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for verb in VERBS:
        importlib.import_module(f"{__name__}.{verb}").register(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``equilens`` console script."""
    from ..errors import EquilensError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except EquilensError as error:
        message = " ".join(str(error).split("\n"))
        print(f"equilens {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"equilens {args.command}: interrupted; outputs are written atomically and "
            "checkpointed: run the same command again to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
