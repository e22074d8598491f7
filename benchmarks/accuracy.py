"""Accuracy of every potential family against the published bars, side by side.

Trains shipped configurations on the reference data, each in a child process
(``equilens train NAME``, fresh output folder, no feature cache, so the wall
time covers descriptors, gradients and training), and prints each run's
errors, epoch time, wall time and peak memory next to the bars of its
dataset:

- ``water`` (842 train / 200 validation): energy RMSE <= 5 meV/atom and force
  RMSE <= 0.10 eV/Å (published Behler-Parrinello result); aim 2.5 and 0.07
  (issue 25: best family <= 0.07 eV/Å);
- ``iron_water`` (360 train with 10% validation / 41 test): test energy RMSE
  <= 35 meV/atom (previous AMPTorch network); issue 25: best family
  <= 2 meV/atom and <= 0.20 eV/Å on the test set.

The runs are configuration names: ``water`` and ``iron_water`` (BPNN),
``equivariant_iron_water`` (equivariant network on lambda-SOAP),
``sevenn_iron_water`` (NequIP-type model trained from scratch by sevenn). With
``--metatrain`` it also runs ``benchmarks/metatrain_compare.py`` (its own
virtual environment, metatrain's SOAP-BPNN with default hypers, same splits)
once per dataset and prints it beside the BPNN, with the wall-clock ratio.
With ``--seeds 0 1 2`` every run is trained once per training seed
(``equilens train NAME --seed S``, one after the other) and the committee of
its seeds (their mean prediction, ``benchmarks/committee.py``) is scored
beside them and counted as a candidate for the bars.

    python benchmarks/accuracy.py [--runs water iron_water equivariant_iron_water
        sevenn_iron_water] [--seeds 0 1 2] [--metatrain]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from equilens.models import load_run_config

BARS = {
    "water": {"split": "validation", "energy": 5.0, "force": 0.10, "aim_energy": 2.5,
              "aim_force": 0.07},
    "iron_water": {"split": "test", "energy": 35.0, "force": None, "aim_energy": 2.0,
                   "aim_force": 0.20},
}  # fmt: skip
RUNS = ["water", "iron_water", "equivariant_iron_water", "sevenn_iron_water"]

# runs one command and prints the peak resident memory of its process tree
_MEASURED = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print("peak_kB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)
sys.exit(code)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=RUNS, help="configuration names")
    parser.add_argument("--output", default="results/accuracy")
    parser.add_argument("--metatrain", action="store_true", help="also run metatrain's SOAP-BPNN")
    parser.add_argument("--metatrain-epochs", type=int, default=50)
    parser.add_argument("--epochs", type=int, help="override every run's epochs (smoke test)")
    parser.add_argument(
        "--seeds", nargs="+", type=int, help="train every run with each seed; score their committee"
    )
    args = parser.parse_args()

    report = {}
    for name in args.runs:
        dataset = _dataset(name)
        task = load_run_config(name).task
        members = []
        for seed in args.seeds or [None]:
            label = name if seed is None else f"{name}/seed{seed}"
            result = _train(name, Path(args.output) / label, args.epochs, seed)
            report[label] = {"dataset": dataset, "task": task, **result}
            _print(label, dataset, result)
            members.append(Path(args.output) / label / "model.pt")
        if len(members) > 1:
            label = f"{name}/committee"
            result = _committee(members, BARS[dataset]["split"], Path(args.output) / label)
            report[label] = {"dataset": dataset, "task": task, **result}
            _print(label, dataset, result)
    for dataset in sorted({entry["dataset"] for entry in report.values()}):
        runs = {n: e for n, e in report.items() if e["dataset"] == dataset}
        _verdict(dataset, runs)
        if args.metatrain:
            theirs = _metatrain(dataset, args.metatrain_epochs)
            report[f"metatrain/{dataset}"] = theirs
            bpnn = runs.get(dataset) or runs.get(f"{dataset}/seed{(args.seeds or [0])[0]}")
            if bpnn is not None:
                _side_by_side(dataset, BARS[dataset]["split"], bpnn, theirs)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "accuracy.json").write_text(json.dumps(report, indent=2))


def _dataset(name: str) -> str:
    """The reference dataset a configuration trains on (``water``, ``iron_water``)."""
    train = str(load_run_config(name).data.train)
    for dataset in BARS:
        if train.startswith(f"reference:{dataset}/"):
            return dataset
    raise SystemExit(f"{name}: trains on {train}, not on a reference dataset with bars")


def _train(
    name: str, output: Path, epochs: Optional[int] = None, seed: Optional[int] = None
) -> dict:
    """Train ``name`` in a child process; its metrics, wall time and peak memory."""
    # a fresh folder: a checkpoint left by an earlier run would be resumed from
    output = output.resolve()
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, "-m", "equilens.cli", "train", name, "--output", str(output),
               "--no-progress"] + ([] if epochs is None else ["--epochs", str(epochs)])  # fmt: skip
    command += [] if seed is None else ["--seed", str(seed)]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:  # its feature cache starts empty
        done = subprocess.run([sys.executable, "-c", _MEASURED, *command], cwd=folder,
                              capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name}: equilens train failed:\n{done.stderr[-2000:]}")
    peak = int(done.stdout.rsplit("peak_kB", 1)[1].split()[0])
    summary = json.loads((output / "metrics.json").read_text())
    return {
        "metrics": summary["metrics"],
        "baselines": summary.get("baselines", {}),
        "wall_s": wall,
        "seconds_per_epoch": summary["seconds_per_epoch"],
        "epochs": summary["epochs_run"],
        "peak_memory_GiB": peak / 2**20,
    }


def _committee(members: list, split: str, output: Path) -> dict:
    """The errors of the members' mean prediction on ``split``
    (``benchmarks/committee.py`` in a child process), as ``_train`` reports them."""
    output.mkdir(parents=True, exist_ok=True)
    figures = output / "committee.json"
    command = [sys.executable, str(Path(__file__).with_name("committee.py")),
               *map(str, members), "--split", split, "--json", str(figures)]  # fmt: skip
    subprocess.run(command, check=True)
    rows = json.loads(figures.read_text())["rows"]
    return {"metrics": {split: rows["committee mean"]}, "members": [str(m) for m in members]}


def _print(name: str, dataset: str, result: dict) -> None:
    bar = BARS[dataset]
    metrics = result["metrics"][bar["split"]]
    cost = (
        f"; {result['epochs']} epochs, {result['seconds_per_epoch']:.1f} s/epoch, wall "
        f"{result['wall_s']:.0f} s, peak memory {result['peak_memory_GiB']:.1f} GiB"
        if "wall_s" in result
        else f"; the mean of {len(result['members'])} members"
    )
    print(
        f"{name} ({dataset} {bar['split']}): energy RMSE "
        f"{metrics['energy_rmse_meV_per_atom']:.2f} meV/atom, force RMSE "
        f"{metrics['force_rmse_eV_per_A']:.3f} eV/A{cost}"
    )


def _verdict(dataset: str, runs: dict) -> None:
    """The bars of ``dataset`` met by each run, and by the best family."""
    bar = BARS[dataset]
    rows = {n: e["metrics"][bar["split"]] for n, e in runs.items()}
    best = min(rows, key=lambda n: rows[n]["force_rmse_eV_per_A"])
    energy = rows[best]["energy_rmse_meV_per_atom"]
    force = rows[best]["force_rmse_eV_per_A"]
    published = energy <= bar["energy"] and (bar["force"] is None or force <= bar["force"])
    aim = energy <= bar["aim_energy"] and force <= bar["aim_force"]
    print(
        f"{dataset}: best family by forces {best} ({energy:.2f} meV/atom, {force:.3f} eV/A): "
        f"published bar {'PASS' if published else 'FAIL'}, aim (<= {bar['aim_energy']} "
        f"meV/atom, <= {bar['aim_force']} eV/A) {'PASS' if aim else 'FAIL'}"
    )


def _metatrain(dataset: str, epochs: int) -> dict:
    command = [sys.executable, "benchmarks/metatrain_compare.py", "--datasets", dataset,
               "--epochs", str(epochs)]  # fmt: skip
    subprocess.run(command, check=True)
    return json.loads(Path(f"results/metatrain/{dataset}/metatrain_metrics.json").read_text())


def _side_by_side(name, split, ours, theirs):
    mt = theirs["errors"][split]
    wall = theirs["training_wall_s"]
    ours = {**ours["metrics"][split], "wall_s": ours["wall_s"]}
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
