"""``equilens data lemat OUT``: LeMat-Bulk rows (hub or local file) as extxyz."""

from __future__ import annotations

import argparse


def register(data_commands) -> None:
    parser = data_commands.add_parser(
        "lemat",
        help="read LeMat-Bulk (Hugging Face, or a local file in its schema) into extxyz",
        description=(
            "Stream rows of LeMat-Bulk (LeMaterial/LeMat-Bulk on the Hugging Face hub, or a "
            "local .parquet/.jsonl file in the same schema) and write them as extxyz with "
            "energies, forces and identifiers, ready for 'equilens data filter'. Needs "
            "pip install 'equilens[lemat]'."
        ),
    )
    parser.add_argument("output", help="extxyz file to write")
    parser.add_argument("--source", default="LeMaterial/LeMat-Bulk", help="hub repo or file")
    parser.add_argument("--config", default="compatible_pbe", help="hub configuration")
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, help="at most this many rows")
    parser.add_argument(
        "--stress-unit", choices=["kbar", "eV/A^3"], help="attach stress_tensor in this unit"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import ase.io

    from ..data.lemat import read_lemat
    from ..errors import OutputError
    from ..storage import atomic_write, check_writable

    output = Path(args.output)
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; give the path of the extxyz file to write")
    check_writable(output.parent)
    frames = read_lemat(args.source, args.config, args.split, args.limit, args.stress_unit)
    with atomic_write(args.output, "w") as handle:
        ase.io.write(handle, frames, format="extxyz")
    print(f"{len(frames)} structures from {args.source} -> {args.output}")
    return 0
