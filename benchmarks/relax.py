"""Relaxing high-entropy oxides: equilens BPNN, SevenNet-0 zero-shot and fine-tuned.

Data: the GFN1-xTB (Mg,Co,Ni,Cu,Zn)O set of ``equilens generate heo``
(``data/heo_xtb.extxyz`` and ``.minima.extxyz``). The frames of all but the
last ``--test-starts`` starts train; the others are held out. Models:

- an equilens BPNN trained from scratch on the training frames (energies,
  forces; its ASE calculator gives stress for cell relaxations);
- SevenNet-0 zero-shot;
- SevenNet-0 fine-tuned on the same frames through sevenn (``task: sevenn``).

Each model's energy and force RMSE on the held-out frames, then
``equilens relax`` on the held-out minima (rattled copies, fixed cell) and on
their parent crystals (the unrelaxed substituted rock salt the xTB
relaxation started from; positions and cell), scored against the xTB minima
with GFN1-xTB single points.

    python benchmarks/relax.py [--epochs 6] [--bpnn-epochs 200]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import ase.io

from equilens.config import from_mapping
from equilens.data.generate.heo import held_out_starts
from equilens.models.bpnn.config import PotentialConfig
from equilens.models.bpnn.task import train_potential
from equilens.models.sevenn.task import SevennConfig, train_sevenn
from equilens.relax.config import RelaxConfig
from equilens.relax.run import run_relax


def split(data: Path, output: Path, n_test: int):
    """The held-out starts of the generated set, written to ``output``."""
    minima = ase.io.read(data.with_name(data.stem + ".minima.extxyz"), ":")
    parts = held_out_starts(ase.io.read(data, ":"), minima, n_test)
    output.mkdir(parents=True, exist_ok=True)
    paths = {name: output / f"{name}.extxyz" for name in parts}
    for name, frames in parts.items():
        ase.io.write(paths[name], frames)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/heo_xtb.extxyz")
    parser.add_argument("--test-starts", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6, help="SevenNet fine-tuning epochs")
    parser.add_argument("--bpnn-epochs", type=int, default=200)
    parser.add_argument("--copies", type=int, default=2, help="rattled copies per minimum")
    parser.add_argument("--output", default="results/relax_heo")
    args = parser.parse_args()
    output = Path(args.output)
    paths = split(Path(args.data), output, args.test_starts)
    data = {"train": str(paths["train"]), "validation_fraction": 0.15, "test": str(paths["test"])}
    timings = {}

    start = time.perf_counter()
    bpnn = from_mapping(PotentialConfig, {
        "task": "potential", "name": "heo-bpnn", "data": data,
        "descriptor": {"preset": "small"}, "compression": {"n_components": 32},
        "model": {"hidden": [32, 32]},
        "training": {"epochs": args.bpnn_epochs, "batch_size": 8, "learning_rate": 0.002},
        "output_dir": str(output / "bpnn"), "cache_dir": str(output / "cache"),
    })  # fmt: skip
    _, bpnn_summary = train_potential(bpnn, progress=False)
    timings["bpnn_training_s"] = time.perf_counter() - start

    start = time.perf_counter()
    sevenn = from_mapping(SevennConfig, {
        "task": "sevenn", "name": "sevennet-0-heo", "data": data, "base_model": "7net-0",
        "training": {"epochs": args.epochs, "batch_size": 4, "learning_rate": 0.001,
                     "checkpoint_every": 2},
        "output_dir": str(output / "sevenn"),
    })  # fmt: skip
    _, sevenn_summary = train_sevenn(sevenn)
    timings["sevenn_finetuning_s"] = time.perf_counter() - start
    errors = {
        "BPNN": bpnn_summary["metrics"]["test"],
        "SevenNet-0": sevenn_summary["baselines"]["zero_shot"]["test"],
        "SevenNet-0 fine-tuned": sevenn_summary["metrics"]["test"],
    }
    for label, values in errors.items():
        print(
            f"{label:22s} held-out: {values['energy_rmse_meV_per_atom']:.2f} meV/atom, "
            f"{values['force_rmse_eV_per_A']:.3f} eV/A"
        )

    start = time.perf_counter()
    relax = from_mapping(RelaxConfig, {
        "name": "heo", "minima": str(paths["minima"]), "parents": str(paths["parents"]),
        "calculators": {
            "BPNN": str(output / "bpnn" / "model.pt"),
            "SevenNet-0": "sevenn:7net-0",
            "SevenNet-0 fine-tuned": f"sevenn:{output / 'sevenn' / 'model.pth'}",
        },
        "reference": "xtb",
        "rattle": {"amplitude": 0.1, "copies": args.copies, "seed": 0},
        "output_dir": str(output / "relax"),
    })  # fmt: skip
    summary = run_relax(relax)
    timings["relaxations_s"] = time.perf_counter() - start
    for label, tasks in summary.items():
        for task, entry in tasks.items():
            print(
                f"{label:22s} {task:20s} converged {entry['converged_fraction']:.0%}, RMSD median "
                f"{entry['rmsd_median_A']:.3f} / p90 {entry['rmsd_p90_A']:.3f} A, E - E_min "
                f"{entry.get('energy_above_minimum_median_meV_per_atom', float('nan')):.1f} "
                f"meV/atom, {entry['steps_median']:.0f} steps, "
                f"{1000 * entry['seconds_per_step_median']:.0f} ms/step"
            )
    report = {"errors": errors, "relaxations": summary, "timings": timings}
    (output / "report.json").write_text(json.dumps(report, indent=2))
    print(f"-> {output / 'report.json'}, {output / 'relax'}")


if __name__ == "__main__":
    main()
