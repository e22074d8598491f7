"""``equilens study [CONFIG]``: the latent-space study."""

from __future__ import annotations

import argparse

from .common import add_device_argument, add_scheduler_argument


def register(commands) -> None:
    parser = commands.add_parser(
        "study",
        help="the latent-space study: architectures x layers, scorecard, GFRE, chemiscope",
        description=(
            "Train a sweep of models of several families (BPNNs on SOAP, equivariant "
            "potentials on lambda-SOAP, sevenn's NequIP-type models) over several seeds on the "
            "same splits, read every layer, score how well each exposes physical labels, "
            "compare layers with GFRE and write "
            "results/<name>/ (scorecard.csv, report.md, plots) and chemiscope_out/<name>.json.gz. "
            "Without CONFIG it runs on the embedded GFN1-xTB iron/water set; CONFIG is a "
            "YAML file or a built-in name (study_iron_water)."
        ),
    )
    parser.add_argument("config", nargs="?", help="study YAML (default: the built-in study)")
    parser.add_argument(
        "--output",
        help="folder of the results and of the chemiscope file (overrides output_dir "
        "and chemiscope_dir)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_argument(parser, "the sweep's equilens potentials", "training.device")
    add_scheduler_argument(parser, "the sweep's runs and the scorecard's sets")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs of a study with another configuration of the same name",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from ..devices import resolve_device
    from ..study import load_study_config, run_study

    config = load_study_config(args.config)
    if args.device is not None:
        resolve_device(args.device)  # refused here, before anything runs
        training = dataclasses.replace(config.training, device=args.device)
        config = dataclasses.replace(config, training=training)
    if args.output:
        config = dataclasses.replace(config, output_dir=args.output, chemiscope_dir=args.output)
    start = time.perf_counter()
    folder = run_study(
        config, progress=not args.quiet, overwrite=args.overwrite, scheduler=args.scheduler
    )
    print(f"study '{config.name}' done in {time.perf_counter() - start:.0f} s -> {folder}")
    return 0
