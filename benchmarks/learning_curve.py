"""A learning curve of a shipped potential: test errors against training frames.

Trains one built-in configuration (default ``iron_water``) on nested random
subsets of its training split (``data.train_frames``; the validation and test
frames stay the same), each in a child process with a fresh output folder,
and fits ``error = a * frames ** -b`` to the force and energy RMSEs of the
split it reports (``test`` when the configuration has one). The fit says
what the same model and recipe would reach with more data of the same kind,
e.g. the 1,042 frames of the group that published 0.23 eV/Å on its larger
iron/water set, against 324 training frames here.

By default every size gets the same number of optimisation steps as the full
set (``epochs * full / frames`` epochs), so that small sets are not
under-trained, and no early stopping: the learning-rate schedule runs to its
end for every size (a run stopped early keeps a high rate and is penalised
against the full set), and the epoch with the best validation loss is kept,
as always. ``--same-epochs`` keeps the configuration's epochs.

    python benchmarks/learning_curve.py [--config iron_water] [--frames 40 81 162 324]
        [--extrapolate 1042] [--published 1042 0.23 4] [--bar 0.20 2]
        [--output results/learning_curve]

Prints one line per size and the fit, writes ``learning_curve.json`` and
``learning_curve.png`` in the output folder. A run whose ``metrics.json``
exists is reused (delete the folder to start again).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import yaml

from equilens.config import to_mapping
from equilens.models import load_run_config


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="iron_water", help="built-in name or YAML file")
    parser.add_argument("--frames", type=int, nargs="+", default=[40, 81, 162, 324])
    parser.add_argument("--extrapolate", type=int, nargs="*", default=[1042])
    parser.add_argument("--same-epochs", action="store_true")
    parser.add_argument("--epochs", type=int, help="the full set's epochs (default: the config's)")
    parser.add_argument("--published", type=float, nargs=3, metavar=("FRAMES", "FORCE", "ENERGY"),
                        help="a published result to mark (frames, eV/A, meV/atom)")  # fmt: skip
    parser.add_argument("--bar", type=float, nargs=2, metavar=("FORCE", "ENERGY"),
                        help="the errors to reach (eV/A, meV/atom), drawn as lines")  # fmt: skip
    parser.add_argument("--output", default="results/learning_curve")
    args = parser.parse_args()

    config = to_mapping(load_run_config(args.config))
    if args.epochs is not None:
        config["training"]["epochs"] = args.epochs
    output = Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    full = max(args.frames)
    rows: List[Dict] = []
    for frames in sorted(args.frames):
        epochs = config["training"]["epochs"]
        if not args.same_epochs:
            epochs = int(round(epochs * full / frames))
        rows.append(_train(config, frames, epochs, output / f"frames-{frames}"))
        _print(rows[-1])
    split = rows[0]["split"]
    fits = {kind: _power_law(rows, kind) for kind in ("force", "energy")}
    for kind, (a, b, r2) in fits.items():
        unit = "eV/A" if kind == "force" else "meV/atom"
        guesses = ", ".join(f"{n} frames {a * n**-b:.3g} {unit}" for n in args.extrapolate)
        print(
            f"{kind}: {split} RMSE = {a:.3g} * frames^-{b:.3f} (R^2 in log space {r2:.3f}); "
            f"extrapolated: {guesses}"
        )
    summary = {"config": args.config, "split": split, "runs": rows,
               "fits": {k: {"a": a, "b": b, "r2": r2} for k, (a, b, r2) in fits.items()},
               "extrapolate": args.extrapolate, "published": args.published,
               "bar": args.bar}  # fmt: skip
    (output / "learning_curve.json").write_text(json.dumps(summary, indent=2))
    _plot(summary, output / "learning_curve.png")
    print(f"wrote {output / 'learning_curve.json'} and learning_curve.png")


def _train(config: Dict, frames: int, epochs: int, folder: Path) -> Dict:
    """Train ``config`` on ``frames`` training frames for ``epochs`` (child process)."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = folder / "model" / "metrics.json"
    if not metrics.is_file():
        mapping = json.loads(json.dumps(config))
        mapping["data"]["train_frames"] = frames
        mapping["training"]["epochs"] = epochs
        mapping["training"]["early_stopping_patience"] = epochs
        mapping["name"] = f"{config['name']}-{frames}"
        mapping["output_dir"] = str(folder / "model")
        mapping["cache_dir"] = str(folder / "cache")
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(mapping, sort_keys=False))
        start = time.perf_counter()
        command = [sys.executable, "-m", "equilens.cli", "train", str(path), "--no-progress"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{frames} frames: equilens train failed:\n{done.stderr[-2000:]}")
        (folder / "wall_s").write_text(f"{time.perf_counter() - start:.1f}\n")
    summary = json.loads(metrics.read_text())
    split = "test" if "test" in summary["metrics"] else "validation"
    wall = folder / "wall_s"
    species = {
        key[len("force_rmse_") : -len("_eV_per_A")]: value
        for key, value in summary["metrics"][split].items()
        if key.startswith("force_rmse_") and key != "force_rmse_eV_per_A"
    }
    return {
        "frames": summary["n_frames"]["train"],
        "epochs": epochs,
        "epochs_run": summary["epochs_run"],
        "best_epoch": summary["best_epoch"],
        "split": split,
        "force": summary["metrics"][split]["force_rmse_eV_per_A"],
        "energy": summary["metrics"][split]["energy_rmse_meV_per_atom"],
        "force_per_species": species,
        "train_force": summary["metrics"]["train"]["force_rmse_eV_per_A"],
        "seconds_per_epoch": summary["seconds_per_epoch"],
        "wall_s": float(wall.read_text()) if wall.is_file() else None,
    }


def _print(row: Dict) -> None:
    wall = "" if row["wall_s"] is None else f", wall {row['wall_s']:.0f} s"
    print(
        f"{row['frames']} frames: {row['split']} {row['energy']:.2f} meV/atom, "
        f"{row['force']:.3f} eV/A ("
        + ", ".join(f"{k} {v:.3f}" for k, v in row["force_per_species"].items())
        + f"; training forces {row['train_force']:.3f}); "
        f"{row['epochs_run']} of {row['epochs']} epochs, best {row['best_epoch']}, "
        f"{row['seconds_per_epoch']:.2f} s/epoch{wall}",
        flush=True,
    )


def _power_law(rows: List[Dict], kind: str):
    """Least-squares ``(a, b, r2)`` of ``log error = log a - b log frames``,
    with the fit's coefficient of determination in log space (an
    extrapolation is only as good as the points are a straight line)."""
    frames = np.log([row["frames"] for row in rows])
    errors = np.log([row[kind] for row in rows])
    slope, intercept = np.polyfit(frames, errors, 1)
    residual = errors - (intercept + slope * frames)
    spread = np.sum((errors - errors.mean()) ** 2)
    r2 = 1.0 - np.sum(residual**2) / spread if spread > 0 else float("nan")
    return float(np.exp(intercept)), float(-slope), float(r2)


def _plot(summary: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["runs"]
    frames = np.array([row["frames"] for row in rows], dtype=float)
    reach = max([*frames, *summary["extrapolate"]])
    grid = np.geomspace(frames.min(), reach, 50)
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    kinds = (("force", "eV/Å"), ("energy", "meV/atom"))
    for index, (axis, (kind, unit)) in enumerate(zip(axes, kinds)):
        a, b, r2 = (summary["fits"][kind][key] for key in ("a", "b", "r2"))
        axis.loglog(frames, [row[kind] for row in rows], "o", color="C0",
                    label=f"{summary['split']} set")  # fmt: skip
        fit = f"fit, exponent -{b:.2f}, $R^2$ {r2:.2f}"
        axis.loglog(grid, a * grid**-b, "--", color="C0", label=fit)
        if kind == "force":
            axis.loglog(frames, [row["train_force"] for row in rows], "s", mfc="none",
                        color="C1", label="training set")  # fmt: skip
        if summary["published"]:
            axis.loglog(summary["published"][0], summary["published"][1 + index], "*",
                        color="C3", ms=11, label="published (larger set)")  # fmt: skip
        if summary["bar"]:
            axis.axhline(summary["bar"][index], color="C2", lw=0.8, label="bar")
        for n in summary["extrapolate"]:
            axis.axvline(n, color="grey", lw=0.8)
        axis.set_xlabel("training frames")
        axis.set_ylabel(f"{kind} RMSE ({unit})")
        axis.legend(fontsize=8)
    figure.suptitle(f"{summary['config']}: learning curve (grey: extrapolated to)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)


if __name__ == "__main__":
    main()
