"""Accuracy of the equivariant tensor models against their linear baseline.

Bars (issue 7), on the held-out structures of ``data/water_tensors`` (water
monomers, dimers and trimers, B3LYP/cc-pVDZ):

- dipole: test RMSE at most 5% of the standard deviation of the components;
- polarizability: the same on the Cartesian 3 x 3 tensor;
- density coefficients: at most 5% SALTED-style %RMSE in the overlap metric
  of the auxiliary basis;
- on each, the nonlinear network beats the per-block ridge baseline.

Each target is trained from scratch from its shipped configuration
(``workflows/configs/tensor_*.yaml``) in a fresh folder:

    python benchmarks/tensors.py [--targets dipole polarizability density]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from equilens.train_tensor import load_tensor_config, train_tensor_model

HEADLINE = {
    "dipole": ("relative_rmse", 0.05, "RMSE / std"),
    "polarizability": ("cartesian_relative_rmse", 0.05, "RMSE / std (Cartesian)"),
    "density": ("overlap_percent_rmse", 5.0, "overlap %RMSE"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=list(HEADLINE), choices=list(HEADLINE))
    parser.add_argument("--output", default="results/tensors")
    args = parser.parse_args()
    rows = []
    for target in args.targets:
        config = load_tensor_config(f"workflows/configs/tensor_{target}.yaml")
        folder = Path(args.output) / target
        shutil.rmtree(folder, ignore_errors=True)
        config = dataclasses.replace(config, output_dir=str(folder))
        start = time.perf_counter()
        _, summary = train_tensor_model(config, progress=False)
        seconds = time.perf_counter() - start
        name, bar, label = HEADLINE[target]
        network = summary["metrics"]["network"]["test"][name]
        ridge = summary["metrics"]["ridge"]["test"][name]
        rows.append(
            {
                "target": target,
                "metric": label,
                "network": network,
                "ridge": ridge,
                "bar": bar,
                "meets_bar": network <= bar,
                "beats_ridge": network < ridge,
                "seconds": seconds,
                "epochs": summary["epochs_run"],
                "best_epoch": summary["best_epoch"],
                "n_test": len(summary["splits"]["test"]),
            }
        )
        print(
            f"{target:15s} {label:24s} network {network:.4f}  ridge {ridge:.4f}  bar {bar}  "
            f"{'PASS' if network <= bar else 'FAIL'} / beats ridge: "
            f"{'yes' if network < ridge else 'NO'}  ({seconds:.0f} s, {summary['epochs_run']} epochs)",
            flush=True,
        )
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "summary.json").write_text(json.dumps(rows, indent=2))
    passed = all(r["meets_bar"] and r["beats_ridge"] for r in rows)
    print("all bars met" if passed else "some bars NOT met")


if __name__ == "__main__":
    main()
