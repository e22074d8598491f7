"""Step 3: train the architecture chosen in step 2 on its own, for longer.

    python workflows/latent_study/3_train_best.py [--quick] [--output DIR] [--epochs N]

The chosen sweep entry becomes a training configuration of its task (the
study's data, descriptor, compression and training, the entry's own
sections), trained with twice the study's epochs (or --epochs) into
DIR/<name>/best/: model.pt, metrics.json, parity plots, learning curve.
Rerunning resumes.
"""

from __future__ import annotations

import dataclasses
import json

from common import arguments, study_config, study_folder

from equilens.models import train
from equilens.study.sweep import entry_config
from equilens.training import headline

if __name__ == "__main__":
    args = arguments(__doc__.splitlines()[0], epochs=True)
    config = study_config(args)
    folder = study_folder(config)
    choice = json.loads((folder / "choice.json").read_text())
    entry = next(e for e in config.sweep if e.name == choice["entry"])
    run = entry_config(config, entry, config.seeds[0], folder)
    training = dataclasses.replace(run.training, epochs=args.epochs or 2 * run.training.epochs)
    run = dataclasses.replace(run, training=training, output_dir=str(folder / "best"),
                              name=f"{entry.name}-best")  # fmt: skip
    model, summary = train(run)
    print(f"{run.name} ({run.task}), {training.epochs} epochs -> {run.output}")
    for split, metrics in summary["metrics"].items():
        print(f"  {split:10s} {headline(metrics)}")
    print(f"layer chosen in step 2: {choice['layer']}")
