"""``equilens data select POOL OUT``: the structures of a pool to compute next."""

from __future__ import annotations

import argparse


def register(data_commands) -> None:
    parser = data_commands.add_parser(
        "select",
        help="choose the pool structures to compute next (uncertainty or farthest points)",
        description=(
            "Rank the frames of POOL by the uncertainty of MODEL's energy (--by uncertainty; "
            "llpr, latent distance or ensemble, fitted on the model's training frames) or "
            "choose them by farthest-point sampling in a layer, away from the training "
            "frames (--by fps), or by how much each would reduce the summed LLPR variance "
            "of the whole pool (--by variance-reduction: uncertain and representative, "
            "rather than outliers), and write the N chosen frames to OUT (extxyz) and OUT + "
            "'.selection.csv' (index in POOL, score)."
        ),
    )
    parser.add_argument("pool", help="candidate frames (any ASE-readable file)")
    parser.add_argument("output", help="file for the chosen frames (.extxyz)")
    parser.add_argument("--model", required=True, help="the model whose uncertainty ranks")
    parser.add_argument("--n", type=int, required=True, help="how many frames to choose")
    parser.add_argument(
        "--by", choices=["uncertainty", "variance-reduction", "fps"], default="uncertainty"
    )
    parser.add_argument("--method", choices=["llpr", "distance", "ensemble"], default="llpr")
    parser.add_argument("--member", action="append", default=[], help="ensemble member (repeat)")
    parser.add_argument("--layer", help="layer (default: the last hidden one)")
    parser.add_argument("--train", help="training frames (default: the model's training split)")
    parser.add_argument("--index", default=":", help="pool frames to read (ASE slice)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace outputs of another selection"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import csv
    from pathlib import Path

    import ase.io

    from ..data.io import ReadOptions, read_dataset
    from ..data.splits import resolve_path
    from ..errors import ConfigError, DataError, OutputError
    from ..models import load
    from ..storage import atomic_write, check_outputs
    from ..uncertainty.methods import make_estimator
    from ..uncertainty.selection import (
        select_by_uncertainty,
        select_by_variance_reduction,
        select_farthest,
    )
    from ..uncertainty.sets import recorded_splits
    from .common import fingerprint_of_inputs

    model = load(args.model)
    members = [load(path) for path in args.member]
    estimator = None
    if args.by == "variance-reduction" and args.method != "llpr":
        raise ConfigError(f"--by variance-reduction needs --method llpr, not {args.method}")
    if args.by != "fps":
        estimator = make_estimator(args.method, model, members, args.layer)
    options = ReadOptions(index=args.index, species=tuple(model.species), require_energy=False)
    pool = read_dataset(resolve_path(args.pool), options).frames
    if not 1 <= args.n <= len(pool):
        raise DataError(f"{args.pool}: cannot select --n {args.n} of its {len(pool)} frames")
    output = Path(args.output)
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; give the path of the extxyz file to write")
    table = output.with_name(output.name + ".selection.csv")
    fingerprint = fingerprint_of_inputs(
        args,
        ("by", "method", "layer", "n", "index", "train", "member"),
        [args.model, args.pool, *args.member],
    )
    marker = output.with_name(f".{output.name}.run.json")
    record = check_outputs(marker, fingerprint, [output, table], args.overwrite, str(output))
    if args.train:
        train = read_dataset(resolve_path(args.train), options).frames
    elif args.by == "fps" or args.method != "ensemble":
        train = recorded_splits(model)["train"].frames
    else:
        train = []
    if args.by == "variance-reduction":
        chosen, scores = select_by_variance_reduction(estimator.fit(train), pool, args.n)
        what = "pool_variance_reduction_uncalibrated"
    elif estimator is not None:
        chosen, scores = select_by_uncertainty(estimator.fit(train), pool, args.n)
        what = "energy_uncertainty_uncalibrated"
    else:
        chosen, scores = select_farthest(model, pool, args.n, train, args.layer)
        what = "distance_to_nearest_known"
    record()
    with atomic_write(output, "w") as handle:
        ase.io.write(handle, [pool[i] for i in chosen], format="extxyz")
    with atomic_write(table, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "pool_index", what])
        for rank, (index, score) in enumerate(zip(chosen, scores)):
            writer.writerow([rank, int(index), f"{score:.6g}"])
    print(f"chose {len(chosen)} of {len(pool)} frames by {args.by} -> {output}, {table.name}")
    return 0
