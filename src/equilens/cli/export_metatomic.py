"""``equilens export-metatomic MODEL OUT.pt``: a metatomic model for ASE, LAMMPS, chemiscope."""

from __future__ import annotations

import argparse

from .common import add_overwrite_argument


def register(commands) -> None:
    parser = commands.add_parser(
        "export-metatomic",
        help="save a potential or tensor model as a metatomic model (ASE, LAMMPS, chemiscope)",
        description=(
            "Save MODEL (from `equilens train`) as a metatomic TorchScript model. A potential "
            "computes SOAP with featomic-torch inside and gives energy (forces and stress by "
            "autograd), 'feature' (the last hidden layer) and 'feature/<layer>' for every "
            "layer. A tensor model computes lambda-SOAP inside and gives 'equilens::<target>' "
            "(e.g. equilens::polarizability), 'equilens::feature/<layer>' (equivariant blocks) "
            "and invariant summaries as 'feature' and 'feature/<layer>'. The compiled "
            "extensions it needs are collected into --extensions; load it with "
            "metatomic_ase.MetatomicCalculator(OUT, extensions_directory=...)."
        ),
    )
    parser.add_argument("model", help="model file written by `equilens train`")
    parser.add_argument("output", help="the metatomic model file to write (.pt)")
    parser.add_argument(
        "--extensions", help="folder for the compiled extensions (default: extensions/ beside)"
    )
    parser.add_argument(
        "--dtype", choices=["float64", "float32"], help="model precision (default: float64)"
    )
    add_overwrite_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from ..export.metatomic import export_metatomic
    from ..models import load
    from ..storage import check_outputs
    from .common import fingerprint_of_inputs, library_defaults

    library_defaults(args, export_metatomic, ("dtype",))
    output = Path(args.output)
    fingerprint = fingerprint_of_inputs(args, ("dtype",), [args.model])
    marker = output.with_name(f".{output.name}.run.json")
    record = check_outputs(marker, fingerprint, [output], args.overwrite, str(output))
    model = load(args.model)
    start = time.perf_counter()
    path = export_metatomic(model, output, args.extensions, args.dtype)
    record()
    extensions = args.extensions or path.parent / "extensions"
    print(
        f"{model.kind} -> {path} ({path.stat().st_size / 1e6:.2f} MB, "
        f"{time.perf_counter() - start:.1f} s); extensions in {extensions}"
    )
    print(f"use: MetatomicCalculator({str(path)!r}, extensions_directory={str(extensions)!r})")
    return 0
