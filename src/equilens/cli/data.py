"""``equilens data ACTION``: reference datasets and dataset validation."""

from __future__ import annotations

import argparse

from .common import add_read_arguments


def register(commands) -> None:
    parser = commands.add_parser(
        "data",
        help="reference datasets and dataset validation",
        description=(
            "List, locate, fetch and verify the public reference datasets "
            "($EQUILENS_DATA, else ../shared/data), and validate any dataset file."
        ),
    )
    data_commands = parser.add_subparsers(dest="data_command", metavar="ACTION")
    data_commands.required = True
    listing = data_commands.add_parser("list", help="reference datasets and where they are")
    listing.set_defaults(handler=_run_data_list)
    info = data_commands.add_parser("info", help="read and validate a dataset file")
    info.add_argument("file")
    info.add_argument("--require-forces", action="store_true", help="fail on frames without forces")
    info.add_argument("--species", help="comma-separated allowed atomic numbers (default: any)")
    info.add_argument("--skip-bad", action="store_true", help="skip invalid frames and report them")
    add_read_arguments(info)
    info.set_defaults(handler=_run_data_info)
    fetch = data_commands.add_parser("fetch", help="download a reference dataset")
    fetch.add_argument("name", nargs="+", help="dataset name(s), e.g. water/train")
    fetch.add_argument("--dest", help="data folder (default: $EQUILENS_DATA or ../shared/data)")
    fetch.set_defaults(handler=_run_data_fetch)
    verify = data_commands.add_parser("verify", help="check SHA-256 of local copies")
    verify.set_defaults(handler=_run_data_verify)
    from . import data_filter, data_lemat, data_overview, data_select

    data_filter.register(data_commands)
    data_select.register(data_commands)
    data_lemat.register(data_commands)
    data_overview.register(data_commands)


def _run_data_list(args: argparse.Namespace) -> int:
    from ..data.embedded import embedded_names
    from ..data.reference import data_root, manifest

    root = data_root()
    print(f"data folder: {root if root is not None else '(none found)'}")
    for name, entry in manifest().items():
        present = root is not None and (root / entry.path).is_file()
        print(
            f"  {name:28s} {entry.frames:5d} frames  {entry.formula:12s} "
            f"{'present' if present else 'missing'}"
        )
    print("embedded (shipped with equilens, name them embedded:NAME):")
    for name in embedded_names():
        print(f"  {name}")
    return 0


def _run_data_info(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from ..data.io import ReadOptions, read_dataset
    from ..data.splits import resolve_path
    from .common import parse_species

    options = ReadOptions(
        index=args.index,
        energy_key=args.energy_key,
        forces_key=args.forces_key,
        require_forces=args.require_forces,
        species=parse_species(args.species),
        on_error="skip" if args.skip_bad else "raise",
    )
    dataset = read_dataset(resolve_path(args.file), options)
    summary = dataset.summary()
    summary["skipped"] = [dataclasses.asdict(s) for s in dataset.skipped]
    print(json.dumps(summary, indent=2))
    return 0


def _run_data_fetch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.reference import fetch_reference

    for name in args.name:
        path = fetch_reference(name, Path(args.dest) if args.dest else None)
        print(f"{name}: {path} (SHA-256 verified)")
    return 0


def _run_data_verify(args: argparse.Namespace) -> int:
    from ..data.reference import manifest, reference_path
    from ..errors import EquilensError

    failures = 0
    for name in manifest():
        try:
            reference_path(name, verify=True)
            print(f"  {name:28s} ok")
        except EquilensError as error:
            failures += 1
            print(f"  {name:28s} FAILED: {error}")
    return 1 if failures else 0
