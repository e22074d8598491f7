"""``equilens finetune CONFIG``: continue training a potential on new data."""

from __future__ import annotations

import argparse

from .train import add_run_arguments


def register(commands) -> None:
    parser = commands.add_parser(
        "finetune",
        help="fine-tune a trained potential on new data (full, frozen layers, last layer)",
        description=(
            "Train the potential task of CONFIG starting from the model named in its "
            "'finetune' section: base_model (an equilens potential), mode (full; frozen, "
            "keeping the first frozen_layers hidden layers; last_layer), compression "
            "(keep the base projection or refit it), refit_offsets (per-species energies "
            "refitted on the new data; default true). Species the base model lacks get "
            "new networks. Same outputs, checkpoints and resume as 'equilens train'. "
            "With 'task: sevenn', a SevenNet model (base_model: 7net-0 or a checkpoint) "
            "is fine-tuned by sevenn's own trainer, energy offsets refitted first."
        ),
    )
    parser.add_argument(
        "config", help="YAML configuration: task potential with a finetune section, or task sevenn"
    )
    add_run_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .train import run as train

    return train(args, finetune=True)
