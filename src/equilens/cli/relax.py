"""``equilens relax CONFIG``: relax reference minima and parent crystals with every model."""

from __future__ import annotations

import argparse

from .common import add_device_argument


def register(commands) -> None:
    parser = commands.add_parser(
        "relax",
        help="relaxation benchmark: models against reference minima (RMSD, energies, steps)",
        description=(
            "For every calculator of CONFIG (equilens potentials, sevenn:7net-0, SevenNet "
            "checkpoints, metatomic .pt files, xtb, emt): relax rattled copies of the "
            "reference minima (in distribution) and the parent crystals (out of "
            "distribution), and score them against the minima: RMSD, reference energy above "
            "the minimum, steps, convergence, time per step. Writes relaxations.csv, "
            "summary.json, relaxed.extxyz, relaxation.png and relaxed.json.gz (chemiscope) "
            "to output_dir; a rerun skips finished relaxations."
        ),
    )
    parser.add_argument("config", help="YAML relaxation configuration")
    parser.add_argument("--output", help="output folder (overrides output_dir)")
    parser.add_argument("--overwrite", action="store_true", help="replace another run's outputs")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_device_argument(parser, "the machine-learned calculators", "device")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..config import from_mapping, load_yaml
    from ..devices import resolve_device
    from ..relax.config import RelaxConfig
    from ..relax.run import run_relax

    config = from_mapping(RelaxConfig, load_yaml(args.config), where=args.config)
    if args.output:
        config = dataclasses.replace(config, output_dir=args.output)
    if args.device is not None:
        config = dataclasses.replace(config, device=args.device)
    resolve_device(config.device)  # refused here, before anything runs
    summary = run_relax(config, progress=not args.no_progress, overwrite=args.overwrite)
    for label, tasks in summary.items():
        for task, entry in tasks.items():
            energy = entry.get("energy_above_minimum_median_meV_per_atom")
            print(
                f"  {label:14s} {task:20s} converged {entry['converged_fraction']:.0%}, "
                f"RMSD median {entry['rmsd_median_A']:.3f} / p90 {entry['rmsd_p90_A']:.3f} A"
                + (f", E - E_min {energy:.1f} meV/atom" if energy is not None else "")
                + f", {entry['steps_median']:.0f} steps"
            )
    print(f"-> {config.output}")
    return 0
