"""Scaling figures of issue 27: Dask workers for the study, torchrun for training.

``study``: the default study (embedded GFN1-xTB set) in this process and on
a local Dask cluster of ``--workers`` worker processes, each in fresh
output and cache folders (no run reuses another's descriptors or models);
prints every stage's wall time and the sweep's speed-up.

``torchrun``: the built-in ``iron_water`` BPNN (reference DFT data) trained
for ``--epochs`` epochs by 1 and by ``--processes`` processes under
torchrun (gloo, CPU), with ``OMP_NUM_THREADS`` set so that the processes
share the cores; prints the time per epoch and the validation and test
errors of both.

``memory``: the built-in ``water`` BPNN (842 training frames, k = 256,
float16 gradients) trained for ``--epochs`` epochs on its training set
repeated ``--copies`` times (e.g. ``1,10``), each in a fresh process with
fresh output and cache folders; prints the peak resident memory of the
process (all of it, and the anonymous part: what the system cannot drop),
the projected features written to disk, the time per epoch and the errors.

    python benchmarks/scale.py study [--workers 2]
    python benchmarks/scale.py torchrun [--processes 2] [--epochs 10]
    python benchmarks/scale.py memory [--copies 1,10] [--epochs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def study(workers: int, keep: Path) -> None:
    from equilens.study import StudyConfig, run_study

    results = {}
    for label, scheduler in (("1 process", None), (f"{workers} Dask workers", f"local:{workers}")):
        folder = keep / label.replace(" ", "_")
        config = dataclasses.replace(
            StudyConfig(),
            output_dir=str(folder / "results"),
            chemiscope_dir=str(folder / "chemiscope"),
            cache_dir=str(folder / "cache"),
        )
        started = time.perf_counter()
        out = run_study(config, progress=False, scheduler=scheduler)
        wall = time.perf_counter() - started
        timings = json.loads((out / "metrics.json").read_text())["timings_s"]
        results[label] = (wall, timings)
    print(f"default study, {os.cpu_count()} cores")
    stages = list(next(iter(results.values()))[1])
    print(f"{'':20s}" + "".join(f"{s:>11s}" for s in stages) + f"{'wall':>9s}")
    for label, (wall, timings) in results.items():
        row = "".join(f"{timings[s]:10.1f}s" for s in stages)
        print(f"{label:20s}{row}{wall:8.0f}s")
    (one, _), (many, _) = results.values()
    sweep = [timings["train"] for _, timings in results.values()]
    print(f"sweep speed-up {sweep[0] / sweep[1]:.2f}x, whole study {one / many:.2f}x")


def _train(processes: int, epochs: int, folder: Path) -> dict:
    threads = max(1, (os.cpu_count() or 1) // processes)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m"]
    if processes > 1:
        command += ["torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m"]
    command += ["equilens", "train", "iron_water", "--epochs", str(epochs), "--no-progress"]
    command += ["--device", "cpu", "--output", str(folder)]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=environment, cwd=folder.parent)
    summary = json.loads((folder / "metrics.json").read_text())
    summary["wall_s"] = time.perf_counter() - started
    return summary


def torchrun(processes: int, epochs: int, keep: Path) -> None:
    print(f"iron_water BPNN, {epochs} epochs, {os.cpu_count()} cores")
    for count in (1, processes):
        summary = _train(count, epochs, keep / f"ranks{count}")
        test = summary["metrics"].get("test", {})
        validation = summary["metrics"]["validation"]
        print(
            f"{count} process(es): {summary['seconds_per_epoch']:.2f} s/epoch, wall "
            f"{summary['wall_s']:.0f} s (features {summary['timings']['features_s']:.0f} s), "
            f"validation {validation['energy_rmse_meV_per_atom']:.2f} meV/atom "
            f"{validation['force_rmse_eV_per_A']:.3f} eV/A, test "
            f"{test.get('energy_rmse_meV_per_atom', float('nan')):.2f} meV/atom "
            f"{test.get('force_rmse_eV_per_A', float('nan')):.3f} eV/A, "
            f"frames per rank {summary['frames_per_rank']}"
        )


def _tree(pid: int) -> list:
    """``pid`` and its descendants (``/proc/<pid>/task/*/children``)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def _resident(pid: int, names) -> dict:
    values = dict.fromkeys(names, 0)
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in values:
                values[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return values


def _peak_memory(command, cwd: Path) -> dict:
    """Run ``command``; its peak RSS (``wait4``'s ``ru_maxrss``), the peak of
    its anonymous and file-backed resident memory, and the peak of the
    resident memory of it and its child processes together (``/proc``,
    every 0.2 s)."""
    process = subprocess.Popen(command, cwd=cwd)
    names = ("RssAnon", "RssFile", "VmRSS")
    peaks = {"RssAnon": 0, "RssFile": 0, "tree": 0}
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        own = _resident(process.pid, names)
        peaks["RssAnon"] = max(peaks["RssAnon"], own["RssAnon"])
        peaks["RssFile"] = max(peaks["RssFile"], own["RssFile"])
        tree = sum(_resident(p, names)["VmRSS"] for p in _tree(process.pid))
        peaks["tree"] = max(peaks["tree"], tree)
        time.sleep(0.2)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, command))}: exit status {status}")
    return {
        "anon_peak": peaks["RssAnon"],
        "file_peak": peaks["RssFile"],
        "tree_peak": peaks["tree"],
        "max_rss": usage.ru_maxrss * 1024,
    }


def memory(copies_list, epochs: int, keep: Path) -> None:
    from importlib.resources import files

    import ase.io
    import yaml

    from equilens.data.reference import reference_path

    train = ase.io.read(reference_path("water/train"), index=":")
    base = yaml.safe_load((files("equilens.configs") / "water.yaml").read_text())
    print(f"water BPNN, {epochs} epochs, {os.cpu_count()} cores")
    for copies in copies_list:
        folder = keep / f"copies{copies}"
        folder.mkdir(parents=True, exist_ok=True)
        data = folder / "train.extxyz"
        ase.io.write(data, train * copies)
        config = {**base, "name": f"water_x{copies}", "output_dir": str(folder / "run")}
        config["cache_dir"] = str(folder / "cache")
        config["data"] = {**base["data"], "train": str(data)}
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        command = [sys.executable, "-m", "equilens", "train", str(folder / "config.yaml")]
        command += ["--epochs", str(epochs), "--no-progress", "--device", "cpu"]
        started = time.perf_counter()
        peaks = _peak_memory(command, folder)
        wall = time.perf_counter() - started
        summary = json.loads((folder / "run" / "metrics.json").read_text())
        on_disk = sum(f.stat().st_size for f in (folder / "cache").rglob("*.bin"))
        validation = summary["metrics"]["validation"]
        gib = 1024**3
        print(
            f"x{copies} ({len(train) * copies} frames): peak RSS with child processes "
            f"{peaks['tree_peak'] / gib:.2f} GiB; of the process alone "
            f"{peaks['max_rss'] / gib:.2f} GiB (anonymous {peaks['anon_peak'] / gib:.2f}, "
            f"file-backed {peaks['file_peak'] / gib:.2f}), "
            f"features on disk {on_disk / gib:.1f} GiB, "
            f"{summary['seconds_per_epoch']:.1f} s/epoch, features "
            f"{summary['timings']['features_s']:.0f} s, wall {wall:.0f} s, validation "
            f"{validation['energy_rmse_meV_per_atom']:.2f} meV/atom "
            f"{validation['force_rmse_eV_per_A']:.3f} eV/A"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["study", "torchrun", "memory"])
    parser.add_argument("--copies", default="1,10", help="training-set repeats (memory)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--keep", help="folder for the runs (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        keep = Path(args.keep or scratch).resolve()
        keep.mkdir(parents=True, exist_ok=True)
        if args.what == "study":
            study(args.workers, keep)
        elif args.what == "memory":
            memory([int(c) for c in args.copies.split(",")], args.epochs, keep)
        else:
            torchrun(args.processes, args.epochs, keep)


if __name__ == "__main__":
    main()
