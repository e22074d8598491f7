"""``equilens train CONFIG``: train a model of any registered task."""

from __future__ import annotations

import argparse

from .common import add_device_argument


def register(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="train a potential (BPNN, equivariant, SevenNet, MACE, metatrain) or a tensor model",
        description=(
            "Train the task named by CONFIG (a YAML file, or a built-in configuration "
            "such as 'water', 'iron_water', 'tensor_dipole'; `equilens config list`): "
            "'task: potential' trains per-species BPNNs on compressed SOAP; "
            "'task: equivariant_potential' an equivariant network on lambda-SOAP; "
            "'task: tensor' an equivariant network for a tensorial target (dipole, "
            "polarizability, density coefficients); 'task: sevenn', 'task: mace' and "
            "'task: metatrain' drive those packages' own trainers (from scratch, or "
            "fine-tuning with `equilens finetune`). Writes the model, metrics.json, "
            "log.csv, run.json and plots; running the same command again resumes."
        ),
    )
    parser.add_argument("config", help="YAML training configuration or built-in name")
    add_run_arguments(parser)
    parser.set_defaults(handler=run)


def add_run_arguments(parser) -> None:
    """The options every training verb takes."""
    parser.add_argument("--output", help="output folder (overrides output_dir)")
    parser.add_argument("--epochs", type=int, help="override training.epochs")
    parser.add_argument(
        "--seed",
        type=int,
        help="override training.seed (the members of a committee: one run per seed, "
        "each in its own --output)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs of a different run in the output folder",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_device_argument(
        parser,
        "the training and evaluation",
        "training.device",
        ". Under torchrun each process takes the GPU of its LOCAL_RANK",
    )


def run(args: argparse.Namespace, finetune: bool = False) -> int:
    from ..devices import resolve_device
    from ..models import load_run_config, train
    from ..models.registry import check_finetune
    from ..training import headline, with_overrides
    from ..training.distributed import is_main, process_group

    config = with_overrides(
        load_run_config(args.config), args.output, args.epochs, args.device, args.seed
    )
    if finetune:
        check_finetune(config, where=str(args.config))
    device = resolve_device(getattr(getattr(config, "training", None), "device", "cpu"))
    with process_group(device):
        main = is_main()
        _, summary = train(config, progress=not args.no_progress and main, overwrite=args.overwrite)
    if not main:
        return 0
    print(
        f"{config.name} ({config.task}): best epoch {summary['best_epoch']} of "
        f"{summary['epochs_run']} ({summary['seconds_per_epoch']:.2f} s/epoch) -> "
        f"{config.output}"
    )
    models = {"model": summary["metrics"], **summary.get("baselines", {})}
    for label, metrics in models.items():
        for split, values in metrics.items():
            print(f"  {label:11s} {split:10s} {headline(values)}")
    return 0
