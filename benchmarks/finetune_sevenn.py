"""Fine-tuning SevenNet-0 on the DFT iron/water data, through sevenn's trainer.

SevenNet-0 (PBE, Materials Project relaxations) is fine-tuned with
``equilens finetune`` (``task: sevenn``) on the first ``--frames`` frames of
the same seeded permutation of the DFT training file that
``benchmarks/finetune.py`` uses (so its 10-frame set is the BPNN curve's),
with ``--validation`` frames of its validation hold-out; per-species energy
offsets are refitted first. Reported on the DFT test frames: zero-shot
(offsets refitted) and fine-tuned energy and force RMSE, the cost per frame
and epoch of sevenn's trainer here, and the latent drift per layer (GFRE both
ways and CKA between SevenNet-0 and its fine-tuned version, per species).

    python benchmarks/finetune_sevenn.py [--frames 10] [--epochs 8]

Needs the reference data (``$EQUILENS_DATA`` or ``../shared/data``) and sevenn.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import ase.io
import numpy as np

from equilens.config import from_mapping
from equilens.data import ReadOptions, read_dataset, reference_path
from equilens.models.sevenn.task import SevennConfig, train_sevenn


def subsets(output: Path, n_frames: int, n_validation: int):
    """The training and validation frames, as in ``benchmarks/finetune.py``."""
    data = read_dataset(reference_path("iron_water/train"), ReadOptions(require_forces=True))
    order = np.random.default_rng(0).permutation(len(data))
    frames = [data.frames[i] for i in order]
    folder = output / "data"
    folder.mkdir(parents=True, exist_ok=True)
    validation, train = folder / "validation.extxyz", folder / f"train_{n_frames}.extxyz"
    ase.io.write(validation, frames[:n_validation])
    ase.io.write(train, frames[12 : 12 + n_frames])
    return train, validation


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--validation", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=0.001)
    parser.add_argument("--drift-frames", type=int, default=10)
    parser.add_argument("--output", default="results/finetune_sevenn")
    args = parser.parse_args()
    output = Path(args.output)
    train, validation = subsets(output, args.frames, args.validation)
    config = from_mapping(
        SevennConfig,
        {
            "task": "sevenn",
            "name": f"sevennet-0-iron-water-{args.frames}",
            "data": {
                "train": str(train),
                "validation": str(validation),
                "test": str(reference_path("iron_water/test")),
            },
            "base_model": "7net-0",
            "training": {
                "epochs": args.epochs,
                "batch_size": 2,
                "learning_rate": args.learning_rate,
                "checkpoint_every": 2,
            },
            "output_dir": str(output / f"run_{args.frames}"),
        },
    )
    start = time.perf_counter()
    model, summary = train_sevenn(config)
    wall = time.perf_counter() - start
    per_frame = summary["seconds_per_epoch"] / args.frames
    test, zero = summary["metrics"]["test"], summary["baselines"]["zero_shot"]["test"]
    print(
        f"SevenNet-0 fine-tuned on {args.frames} DFT frames, {args.epochs} epochs "
        f"({wall:.0f} s in all; {summary['seconds_per_epoch']:.1f} s/epoch, "
        f"{per_frame:.1f} s per frame and epoch incl. validation)"
    )
    for label, values in (("zero-shot", zero), ("fine-tuned", test)):
        print(
            f"  {label:10s} test: {values['energy_rmse_meV_per_atom']:.2f} meV/atom, "
            f"{values['force_rmse_eV_per_A']:.3f} eV/A"
        )

    from equilens.analysis.drift import latent_drift
    from equilens.export.plots import plot_drift
    from equilens.models.sevenn.model import SevenNetModel

    frames = read_dataset(reference_path("iron_water/test")).frames[: args.drift_frames]
    pairs = [("finetune", "base")]
    start = time.perf_counter()
    rows = latent_drift({"base": SevenNetModel("7net-0"), "finetune": model}, frames, pairs)
    print(f"latent drift ({args.drift_frames} test frames, {time.perf_counter() - start:.0f} s):")
    for row in rows:
        print(
            "  "
            + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{v}" for k, v in row.items())
        )
    title = f"latent drift: SevenNet-0 fine-tuned on {args.frames} DFT frames vs SevenNet-0"
    plot_drift(rows, pairs, output / "latent_drift.png", title)
    report = {
        "frames": args.frames,
        "epochs": args.epochs,
        "wall_s": wall,
        "seconds_per_epoch": summary["seconds_per_epoch"],
        "seconds_per_frame_epoch": per_frame,
        "zero_shot_test": zero,
        "finetuned_test": test,
        "energy_offsets_eV": summary["energy_offsets_eV"],
        "drift": rows,
    }
    (output / "report.json").write_text(json.dumps(report, indent=2))
    print(f"-> {output / 'report.json'}, {output / 'latent_drift.png'}")


if __name__ == "__main__":
    main()
