"""``equilens descriptors [FILE]``: SOAP / lambda-SOAP TensorMaps of a dataset."""

from __future__ import annotations

import argparse

from .common import add_overwrite_argument, add_read_arguments, parse_species


def register(commands) -> None:
    parser = commands.add_parser(
        "descriptors",
        help="compute SOAP / lambda-SOAP TensorMaps for a dataset file",
        description=(
            "Compute SOAP and/or lambda-SOAP for the frames of FILE (any ASE-readable "
            "file, reference:NAME or embedded:NAME), or for the built-in Fe(110)/water "
            "example when FILE is omitted. Writes NAME-KIND.mts, a PCA plot per "
            "descriptor and NAME.json into --output; results are cached by a hash of "
            "hypers and structures."
        ),
    )
    parser.add_argument("file", nargs="?", help="dataset file; omit for the built-in example")
    parser.add_argument(
        "--kind",
        nargs="+",
        choices=["soap", "lambda_soap"],
        default=["soap", "lambda_soap"],
        help="which descriptors to compute (default: both)",
    )
    parser.add_argument(
        "--config",
        help="YAML file (or built-in name, e.g. 'descriptors') with DescriptorConfig fields",
    )
    parser.add_argument(
        "--preset", choices=["small", "default", "accurate"], help="hyper-parameter preset"
    )
    parser.add_argument(
        "--species",
        help="comma-separated atomic numbers covered by the descriptor, e.g. 1,8,26 "
        "(default: the species of the file)",
    )
    parser.add_argument("--lambda-max", type=int, help="largest o3_lambda of lambda-SOAP")
    parser.add_argument(
        "--gradients", action="store_true", help="also compute position gradients (SOAP)"
    )
    parser.add_argument(
        "--neighbors",
        choices=["auto", "properties", "keys"],
        help="SOAP layout: neighbor types in properties or in keys (default: auto, "
        "keys with gradients)",
    )
    add_read_arguments(parser)
    parser.add_argument("--name", help="prefix of the output files (default: file stem)")
    parser.add_argument(
        "--output", default="results/descriptors", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--cache-dir",
        default=".equilens_cache/descriptors",
        help="descriptor cache folder; 'none' disables the cache (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_overwrite_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..config import from_mapping, load_yaml, to_mapping
    from ..data.examples import iron_water_example
    from ..descriptors import DescriptorConfig
    from ..export.descriptors import descriptor_job
    from ..storage import check_outputs, glob_escape, hash_frames
    from .common import fingerprint_of_inputs, read_frames

    if args.file is None:
        frames = iron_water_example()
        name = args.name or "example"
        source = "built-in Fe(110)/water example (equilens.data.examples)"
    else:
        frames = read_frames(args).frames
        name = args.name or Path(str(args.file).split(":")[-1]).stem
        source = str(args.file)

    base = load_yaml(args.config) if args.config else {}
    overrides = {
        "preset": args.preset,
        "species": parse_species(args.species),
        "lambda_max": args.lambda_max,
        "gradients": True if args.gradients else None,
        "neighbors": args.neighbors,
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    base.pop("kind", None)
    configs = []
    for kind in args.kind:
        mapping = dict(base)
        if kind == "lambda_soap":
            mapping.pop("gradients", None)
            mapping.pop("neighbors", None)
        configs.append(
            from_mapping(DescriptorConfig, {**mapping, "kind": kind}, args.config or "cli")
        )

    output = Path(args.output)
    fingerprint = {
        **fingerprint_of_inputs(args, ("index", "energy_key", "forces_key")),
        "structures": hash_frames(frames),
        "configs": [to_mapping(c) for c in configs],
    }
    outputs = [output / f"{name}.json", *output.glob(f"{glob_escape(name)}-*")]
    check_outputs(output / f".{name}.run.json", fingerprint, outputs, args.overwrite)()
    cache = None if args.cache_dir.lower() == "none" else args.cache_dir
    summary = descriptor_job(
        frames,
        name,
        configs,
        args.output,
        cache_dir=cache,
        progress=not args.no_progress,
        source=source,
    )
    print(f"{name}: {summary['n_frames']} frames, {summary['n_atoms']} atoms ({source})")
    for kind, entry in summary["descriptors"].items():
        print(
            f"  {kind}: {entry['n_blocks']} blocks -> {entry['file']} "
            f"({entry['seconds']:.2f} s), plot {entry['plot']}"
        )
    print(f"  summary: {Path(args.output) / (name + '.json')}")
    return 0
