"""``equilens compare INPUT...``: reconstruction measures between feature sets."""

from __future__ import annotations

import argparse

from .common import add_overwrite_argument, add_scheduler_argument


def register(commands) -> None:
    parser = commands.add_parser(
        "compare",
        help="GFRE / GFRD / LFRE between feature sets (layers, models, descriptors)",
        description=(
            "Reconstruction measures for every ordered pair of feature sets on the same "
            "samples. Each INPUT is a .mts file (name: file stem, or NAME=FILE) or a latents "
            "folder from `equilens latents` (all its layers, named FOLDER/LAYER). Writes "
            "table.csv, matrices.json and one heatmap per measure to --output."
        ),
    )
    parser.add_argument("inputs", nargs="+", help=".mts files, NAME=FILE, or latents folders")
    parser.add_argument(
        "--measures",
        nargs="+",
        choices=["gfre", "gfrd", "lfre", "cka", "ii", "id"],
        help="reconstruction errors (gfre, gfrd, lfre), debiased linear CKA (cka), "
        "information imbalance (ii), TwoNN intrinsic dimension (id); default: gfre gfrd lfre",
    )
    parser.add_argument("--rank-samples", type=int, help="sample budget of cka, ii and id")
    parser.add_argument("--n-samples", type=int, help="GFRE/GFRD sample budget")
    parser.add_argument("--lfre-samples", type=int, help="LFRE sample budget")
    parser.add_argument("--lfre-neighbors", type=int, help="neighbours of each LFRE fit")
    parser.add_argument("--selection", choices=["random", "fps"], help="how samples are chosen")
    parser.add_argument("--seed", type=int, help="seeds the samples and the split")
    parser.add_argument(
        "--jobs", type=int, help="GFRE/GFRD and LFRE worker processes (default: one per core)"
    )
    add_scheduler_argument(parser, "the GFRE/GFRD and LFRE tasks")
    parser.add_argument(
        "--per-species",
        action="store_true",
        help="compare each center species separately (for per-species networks); "
        "writes one subfolder center_type_Z per species",
    )
    parser.add_argument(
        "--equivariant",
        action="store_true",
        help="equivariant reconstruction error per (o3_lambda, o3_sigma, center_type) block "
        "(inputs: the equivariant/ latents of a tensor model); writes block_*.png",
    )
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="GFRE, GFRD and CKA over all atoms from statistics accumulated chunk by chunk "
        "(inputs: latents folders, e.g. from `equilens latents --chunk-frames`); memory "
        "independent of the number of atoms",
    )
    parser.add_argument(
        "--output", default="results/compare", help="output folder (default: %(default)s)"
    )
    add_overwrite_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..analysis.compare import compare
    from ..analysis.latents import load_latents
    from ..errors import EquilensError
    from ..storage import check_outputs, load_tensormap
    from ..tensormaps import warn_unfingerprinted
    from .common import fingerprint_of_inputs, library_defaults

    if args.streaming:
        if args.scheduler is not None:
            raise EquilensError("--scheduler runs LFRE tasks; --streaming computes no LFRE")
        return _run_streaming(args)
    budgets = ("rank_samples", "n_samples", "lfre_samples", "lfre_neighbors")
    library_defaults(args, compare, ("measures", *budgets, "selection", "seed"))
    features = {}
    for item in args.inputs:
        name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        path = Path(path)
        if path.is_dir():
            for layer, tensor in load_latents(path).items():
                features[f"{name or path.name}/{layer}"] = tensor
        elif path.is_file():
            features[name or path.stem] = load_tensormap(path)
        else:
            raise EquilensError(f"{path}: no such file or latents folder")
    if len(features) > 1:
        warn_unfingerprinted(features)
    output = Path(args.output)
    fingerprint = fingerprint_of_inputs(
        args,
        ("measures", "n_samples", "lfre_samples", "lfre_neighbors", "selection", "seed",
         "per_species", "equivariant", "rank_samples"),
        [item.rpartition("=")[2] for item in args.inputs],
    )  # fmt: skip
    outputs = [p for p in output.glob("*") if p.name != "run.json"] if output.is_dir() else []
    record = check_outputs(output / "run.json", fingerprint, outputs, args.overwrite)
    if args.equivariant:
        return _print_equivariant(features, args, record)
    options = dict(
        measures=args.measures,
        rank_samples=args.rank_samples,
        n_samples=args.n_samples,
        selection=args.selection,
        lfre_samples=args.lfre_samples,
        lfre_neighbors=args.lfre_neighbors,
        seed=args.seed,
        progress=True,
        n_jobs=args.jobs,
    )
    from ..study.cluster import dask_client, joblib_backend

    with dask_client(args.scheduler) as client, joblib_backend(client):
        results = _compare_in_memory(features, args, options)
    record()
    _print_results(results, args.output)
    return 0


def _compare_in_memory(features, args: argparse.Namespace, options: dict) -> dict:
    from ..analysis.compare import compare, compare_by_species

    if args.per_species:
        results = {
            f"center_type_{z}": result
            for z, result in compare_by_species(features, **options).items()
        }
    else:
        results = {"": compare(features, **options)}
    return results


def _print_results(results: dict, output) -> None:
    from pathlib import Path

    from ..export.comparisons import save_comparison

    for label, result in results.items():
        files = save_comparison(result, Path(output) / label)
        width = max(len(n) for n in result.names)
        for measure, matrix in result.matrices.items():
            title = f"{measure.upper()} {label}".strip()
            print(f"{title} (row: source -> column: target), {result.n_samples} samples")
            print(" " * (width + 2) + " ".join(f"{n[-8:]:>8s}" for n in result.names))
            for name, row in zip(result.names, matrix):
                print(f"{name:>{width}s}  " + " ".join(f"{v:8.3f}" for v in row))
        for measure, per_set in result.per_set.items():
            print(f"{measure.upper()} {label}".strip() + f", {result.rank_samples} samples")
            for name, value in per_set.items():
                print(f"{name:>{width}s}  {value:8.3f}")
        print(f"-> {', '.join(files.values())}")


def _run_streaming(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..analysis.chunks import chunk_arrays
    from ..analysis.streaming import MEASURES, StreamingComparison
    from ..errors import ConfigError, EquilensError
    from ..storage import check_outputs
    from .common import fingerprint_of_inputs

    measures = args.measures or list(MEASURES)
    unsupported = sorted(set(measures) - set(MEASURES))
    if unsupported or args.equivariant:
        what = unsupported or ["--equivariant"]
        raise ConfigError(f"--streaming computes {', '.join(MEASURES)} only, not {what}")
    folders = {}
    for item in args.inputs:
        name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        if not Path(path).is_dir():
            raise EquilensError(f"{path}: --streaming reads latents folders, not files")
        folders[name or Path(path).name] = path
    output = Path(args.output)
    fingerprint = fingerprint_of_inputs(
        args, ("measures", "seed", "per_species", "streaming"),
        [item.rpartition("=")[2] for item in args.inputs],
    )  # fmt: skip
    outputs = [p for p in output.glob("*") if p.name != "run.json"] if output.is_dir() else []
    record = check_outputs(output / "run.json", fingerprint, outputs, args.overwrite)
    comparisons: dict = {}
    for groups in chunk_arrays(folders, per_species=args.per_species):
        for group, arrays in groups.items():
            if group not in comparisons:
                comparisons[group] = StreamingComparison(measures, seed=args.seed or 0)
            comparisons[group].partial_fit(arrays)
    results = {
        ("" if group is None else f"center_type_{group}"): comparison.result()
        for group, comparison in sorted(comparisons.items(), key=lambda item: item[0] or 0)
    }
    record()
    _print_results(results, args.output)
    return 0


def _print_equivariant(features, args: argparse.Namespace, record) -> int:
    from ..analysis.equivariant import equivariant_gfre_matrix
    from ..export.comparisons import save_equivariant_comparison

    matrices = equivariant_gfre_matrix(features, seed=args.seed)
    record()
    files = save_equivariant_comparison(matrices, list(features), args.output)
    width = max(len(n) for n in features)
    for key, matrix in matrices.items():
        print(f"equivariant GFRE, block {key} (row: source -> column: target)")
        for name, row in zip(features, matrix):
            print(f"{name:>{width}s}  " + " ".join(f"{v:8.3f}" for v in row))
    print(f"-> {files['matrices']}")
    return 0
