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
import os
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


#: settings of the process the command owns, given to torch before it is
#: imported (a user's own value is kept). ``THP_MEM_ALLOC_ENABLE``: torch
#: backs CPU tensors of 2 MB and more with transparent huge pages, so that
#: a fresh array (a training batch's gathered descriptor gradients, ~100 MB
#: on iron/water) costs 512 times fewer page faults: a float16 gather of
#: 100 MB took 20 ms instead of 58 ms, an iron/water BPNN epoch 3.9-4.7 s
#: instead of 5.4-7.7 s (``docs/benchmarks.md``). Library users who import
#: torch themselves set it in their environment.
PROCESS_ENVIRONMENT = {"THP_MEM_ALLOC_ENABLE": "1"}


def configure_process() -> None:
    """Set :data:`PROCESS_ENVIRONMENT` where the environment does not (before
    torch is imported: torch reads it once; child processes inherit it)."""
    for name, value in PROCESS_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``equilens`` console script."""
    from ..errors import EquilensError

    configure_process()
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
