"""``equilens data overview FILE``: figures and a chemiscope map of a dataset."""

from __future__ import annotations

import argparse


def register(data_commands) -> None:
    parser = data_commands.add_parser(
        "overview",
        help="element table, size/energy distributions, maps and exemplars of a dataset",
        description=(
            "Write into --output: elements.png (periodic table of element counts), sizes.png "
            "(atoms and energy per atom), maps.png (UMAP, else PCA, of composition vectors and "
            "of structure-pooled geometry-only SOAP), exemplars.extxyz/.png (farthest-point "
            "sampling), overview.json.gz (chemiscope) and overview.json."
        ),
    )
    parser.add_argument("file", help="dataset (any ASE-readable file)")
    parser.add_argument("--output", help="folder (default: results/overview/<file stem>)")
    parser.add_argument("--index", default=":", help="frames to read (ASE slice)")
    parser.add_argument(
        "--exemplars", dest="n_exemplars", type=int, help="exemplary structures (default: 6)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the overview of another file or setting"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.io import read_frames
    from ..errors import DataError
    from ..export.overview import OUTPUTS, dataset_overview
    from ..storage import check_outputs
    from .common import library_defaults

    library_defaults(args, dataset_overview, ("n_exemplars",))

    path = Path(args.file)
    frames = read_frames(path, args.index)
    if len(frames) < 2:
        raise DataError("an overview needs at least 2 frames", path=path)
    output = Path(args.output or f"results/overview/{path.stem}")
    fingerprint = {"input": str(path.resolve()), "index": args.index, "n": args.n_exemplars}
    record = check_outputs(
        output / ".overview.run.json", fingerprint, [output / name for name in OUTPUTS],
        args.overwrite, str(output),
    )  # fmt: skip
    record()
    summary = dataset_overview(frames, output, path.stem, args.n_exemplars)
    print(
        f"{summary['frames']} frames, {summary['atoms']} atoms, "
        f"{len(summary['elements'])} elements -> {output}"  # type: ignore[arg-type]
    )
    return 0
