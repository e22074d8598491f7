"""Accuracy of the BPNN potential against the published bars (and metatrain).

Trains the shipped configurations on the reference data and prints the
errors next to the bars of issue 3:

- ``water`` (842 train / 200 validation): energy RMSE <= 5 meV/atom and force
  RMSE <= 0.10 eV/Å (published Behler-Parrinello result); aim 2.5 and 0.07;
- ``iron_water`` (360 train with 10% validation / 41 test): test energy RMSE
  <= 35 meV/atom (previous AMPTorch network); aim 10.

With ``--metatrain`` it also runs ``benchmarks/metatrain_compare.py`` (its own
virtual environment, metatrain's SOAP-BPNN with default hypers, same splits)
and prints both side by side, with the wall-clock ratio.

    python benchmarks/accuracy.py [--datasets water iron_water] [--metatrain]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from equilens.models import load_run_config
from equilens.models.bpnn.task import train_potential

BARS = {
    "water": {
        "split": "validation",
        "energy": 5.0,
        "force": 0.10,
        "aim_energy": 2.5,
        "aim_force": 0.07,
    },
    "iron_water": {
        "split": "test",
        "energy": 35.0,
        "force": None,
        "aim_energy": 10.0,
        "aim_force": None,
    },
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["water", "iron_water"], choices=list(BARS)
    )
    parser.add_argument("--output", default="results/accuracy")
    parser.add_argument("--metatrain", action="store_true", help="also run metatrain's SOAP-BPNN")
    parser.add_argument("--metatrain-epochs", type=int, default=50)
    args = parser.parse_args()

    report = {}
    for name in args.datasets:
        config = load_run_config(name)
        output = Path(args.output) / name
        # a fresh folder: a checkpoint left by an earlier run would be resumed from
        shutil.rmtree(output, ignore_errors=True)
        # no feature cache: the wall time covers descriptors, gradients and training
        config = dataclasses.replace(config, output_dir=str(output), cache_dir=None)
        start = time.perf_counter()
        _, summary = train_potential(config, progress=True)
        wall = time.perf_counter() - start
        bar = BARS[name]
        metrics = summary["metrics"][bar["split"]]
        energy, force = metrics["energy_rmse_meV_per_atom"], metrics["force_rmse_eV_per_A"]
        verdict = energy <= bar["energy"] and (bar["force"] is None or force <= bar["force"])
        report[name] = {
            "equilens": {
                **metrics,
                "wall_s": wall,
                "seconds_per_epoch": summary["seconds_per_epoch"],
                "epochs": summary["epochs_run"],
            }
        }
        print(
            f"equilens {name}: {bar['split']} energy RMSE {energy:.2f} meV/atom "
            f"(bar {bar['energy']}, aim {bar['aim_energy']}), force RMSE {force:.3f} eV/A"
            + (f" (bar {bar['force']}, aim {bar['aim_force']})" if bar["force"] else "")
            + f"; wall {wall:.0f} s ({summary['epochs_run']} epochs, "
            f"{summary['seconds_per_epoch']:.1f} s/epoch) -> {'PASS' if verdict else 'FAIL'}"
        )
        if args.metatrain:
            command = [
                sys.executable,
                "benchmarks/metatrain_compare.py",
                "--datasets",
                name,
                "--epochs",
                str(args.metatrain_epochs),
            ]
            subprocess.run(command, check=True)
            theirs = json.loads(
                Path(f"results/metatrain/{name}/metatrain_metrics.json").read_text()
            )
            report[name]["metatrain"] = theirs
            _side_by_side(name, bar["split"], report[name]["equilens"], theirs)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "accuracy.json").write_text(json.dumps(report, indent=2))


def _side_by_side(name, split, ours, theirs):
    mt = theirs["errors"][split]
    wall = theirs["training_wall_s"]
    print(
        f"  {name} {split}: energy RMSE equilens {ours['energy_rmse_meV_per_atom']:.2f} "
        f"vs metatrain {mt['energy_rmse_meV_per_atom']:.2f} meV/atom; force RMSE equilens "
        f"{ours['force_rmse_eV_per_A']:.3f} vs metatrain {mt['force_rmse_eV_per_A']:.3f} eV/A; "
        f"wall equilens {ours['wall_s']:.0f} s vs metatrain {wall:.0f} s "
        f"(ratio {ours['wall_s'] / wall:.2f})"
    )
    better = (
        ours["energy_rmse_meV_per_atom"] < mt["energy_rmse_meV_per_atom"]
        and ours["force_rmse_eV_per_A"] < mt["force_rmse_eV_per_A"]
        and ours["wall_s"] <= 0.5 * wall
    )
    print(
        f"  lower energy and force error in at most half the time: {'PASS' if better else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
