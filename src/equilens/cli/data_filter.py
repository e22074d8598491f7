"""``equilens data filter IN OUT``: keep the frames that pass composition filters."""

from __future__ import annotations

import argparse


def register(data_commands) -> None:
    parser = data_commands.add_parser(
        "filter",
        help="keep the frames that pass composition filters (HEO curation)",
        description=(
            "Read any ASE-readable dataset, keep the frames that pass every given filter "
            "and write them to OUT (extxyz), with OUT's name + '.dropped.csv' listing every "
            "other frame and the first filter it failed. Filters can also come from a YAML "
            "file (--config) with the same names."
        ),
    )
    parser.add_argument("file", help="input dataset (any ASE-readable file)")
    parser.add_argument("output", help="output file for the kept frames (.extxyz)")
    parser.add_argument("--config", help="YAML file of filters (command-line values win)")
    parser.add_argument("--contains", help="elements every frame must have, e.g. O")
    parser.add_argument("--min-elements", type=int, help="at least this many elements")
    parser.add_argument(
        "--others-metals", action="store_true", help="every element besides --contains a metal"
    )
    parser.add_argument("--require-energy", action="store_true")
    parser.add_argument("--require-forces", action="store_true")
    parser.add_argument(
        "--min-entropy", type=float, help="cation configurational entropy >= this (units of R)"
    )
    parser.add_argument("--equimolar", type=float, help="every cation fraction within this of 1/n")
    parser.add_argument("--exclude", help="elements no kept frame may have, e.g. Au,Ag,Pt")
    parser.add_argument("--index", default=":", help="frames to read (ASE slice, default ':')")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace outputs of different filters"
    )
    parser.set_defaults(handler=run)


def _symbols(text):
    return tuple(s.strip() for s in text.split(",") if s.strip()) if text else None


def run(args: argparse.Namespace) -> int:
    import csv
    from pathlib import Path

    import ase.io

    from ..config import from_mapping, load_yaml, to_mapping
    from ..data.filters import FilterConfig, filter_frames
    from ..data.io import read_frames
    from ..errors import DataError, OutputError
    from ..storage import atomic_write, check_outputs

    mapping = load_yaml(args.config) if args.config else {}
    given = {
        "contains": _symbols(args.contains),
        "min_elements": args.min_elements,
        "others_metals": args.others_metals or None,
        "require_energy": args.require_energy or None,
        "require_forces": args.require_forces or None,
        "min_cation_entropy": args.min_entropy,
        "equimolar_tolerance": args.equimolar,
        "exclude": _symbols(args.exclude),
    }
    mapping.update({k: v for k, v in given.items() if v is not None})
    config = from_mapping(FilterConfig, mapping, where=args.config or "filters")
    path, output = Path(args.file), Path(args.output)
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; give the path of the extxyz file to write")
    frames = read_frames(path, args.index)
    dropped_path = output.with_name(output.name + ".dropped.csv")
    marker = output.with_name(f".{output.name}.run.json")
    fingerprint = {"filters": to_mapping(config), "input": str(path.resolve()), "index": args.index}
    record = check_outputs(marker, fingerprint, [output, dropped_path], args.overwrite, str(output))
    kept, dropped = filter_frames(frames, config)
    reasons: dict = {}
    for _, reason in dropped:
        first = reason.split(" ")[0]
        reasons[first] = reasons.get(first, 0) + 1
    if not kept:
        first = dropped[0][1]
        raise DataError(
            f"no frame passes the filters (first: frame {dropped[0][0]} {first}; "
            f"reasons {reasons}); nothing written",
            path=path,
        )
    record()
    with atomic_write(output, "w") as handle:
        ase.io.write(handle, [frames[i] for i in kept], format="extxyz")
    with atomic_write(dropped_path, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "formula", "reason"])
        for index, reason in dropped:
            writer.writerow([index, frames[index].get_chemical_formula(), reason])
    print(f"kept {len(kept)} of {len(frames)} frames -> {output}")
    print(f"dropped {len(dropped)} -> {dropped_path} ({reasons})")
    return 0
