"""``equilens export MODEL FILE``: a chemiscope file of a model on a dataset."""

from __future__ import annotations

import argparse

from .common import add_overwrite_argument, add_read_arguments, parse_species


def register(commands) -> None:
    parser = commands.add_parser(
        "export",
        help="chemiscope file of a trained model on a dataset (layer maps, errors, forces)",
        description=(
            "Write a chemiscope .json.gz (chemiscope.org) with the structures of FILE, a map "
            "of each layer of MODEL, atomic energies, energy and force errors and force "
            "arrows; --html also writes an offline page showing it. For a tensor model: "
            "maps of the invariant summaries of its layers and the predicted (and, with "
            "--reference, reference) dipoles as arrows or polarizabilities as ellipsoids."
        ),
    )
    parser.add_argument(
        "model",
        help="any model equilens opens: a model.pt, sevenn:7net-0, a MACE or metatomic file",
    )
    parser.add_argument("file", help="dataset file (any ASE-readable format)")
    add_read_arguments(parser)
    parser.add_argument(
        "--layers", nargs="+", help="layers to map (default: all but the output layer)"
    )
    parser.add_argument(
        "--projections", nargs="+", choices=["pca", "pcovr", "umap"], help="default: pca"
    )
    parser.add_argument("--species", help="only atoms of these species, e.g. 8,26")
    parser.add_argument("--cutoff", type=float, help="environment radius in Å (default: 3.5)")
    parser.add_argument("--no-forces", action="store_true", help="skip force predictions")
    parser.add_argument("--color", help="atom property to colour the map by (default: species)")
    parser.add_argument("--no-lod", action="store_true", help="draw every point of big maps")
    parser.add_argument("--html", action="store_true", help="also write an offline viewer page")
    parser.add_argument(
        "--reference", help="tensor models: the target .mts of FILE's frames (rows in file order)"
    )
    parser.add_argument(
        "--output", help="output file (default: chemiscope_out/<FILE stem>.json.gz)"
    )
    add_overwrite_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..export.page import standalone_html
    from ..export.potential import export_potential
    from ..models import load
    from ..storage import check_outputs
    from .common import fingerprint_of_inputs, library_defaults, read_frames

    library_defaults(args, export_potential, ("projections", "cutoff"))
    model = load(args.model)
    dataset = read_frames(args, species=model.species)
    stem = Path(str(args.file).split(":")[-1]).stem
    output = args.output or f"chemiscope_out/{stem}.json.gz"
    output_path = Path(output)
    fingerprint = fingerprint_of_inputs(
        args,
        ("index", "layers", "projections", "species", "cutoff", "no_forces", "color", "no_lod"),
        [args.model, args.file, *([args.reference] if args.reference else [])],
    )
    page = output_path.with_name(output_path.name.split(".json")[0] + ".html")
    marker = output_path.with_name(f".{output_path.name}.run.json")
    record = check_outputs(
        marker, fingerprint, [output_path, page], args.overwrite, str(output_path)
    )
    options = dict(
        projections=args.projections,
        species=parse_species(args.species),
        cutoff=args.cutoff,
        color=args.color,
        lod=not args.no_lod,
    )
    if "energy" in model.outputs:
        path = export_potential(
            output,
            model,
            dataset,
            layers=args.layers,
            forces=not args.no_forces,
            **options,
        )
    else:  # a tensorial target (dipole, polarizability, density coefficients)
        from ..data.splits import resolve_path
        from ..export.tensor import export_tensor_model
        from ..storage import load_tensormap

        reference = None
        if args.reference:
            reference = load_tensormap(resolve_path(args.reference), "reference TensorMap")
        path = export_tensor_model(output, model, dataset.frames, reference, **options)
    record()
    size = path.stat().st_size / 1e6
    print(f"{len(dataset)} frames, {dataset.n_atoms} atoms -> {path} ({size:.2f} MB)")
    if args.html:
        print(f"offline viewer -> {standalone_html(path)}")
    return 0
