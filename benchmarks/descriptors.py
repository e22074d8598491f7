"""Descriptor throughput: equilens vs a bare featomic call on the same frames.

Prints atoms per second for the iron/water training set (360 frames x 164
atoms), SOAP with the ``default`` preset, without and with position
gradients, and the equilens overhead (must stay under 10%). Without gradients
the equilens output is the dense layout (neighbor types in properties). With
gradients both layouts are timed: ``keys`` (featomic's sparse blocks over the
fixed species list: the layout for training with forces) and ``properties``
(dense, zero-padded gradient rows: about twice the memory of the sparse
blocks, so it also costs more time).

    python benchmarks/descriptors.py [--repeats 3] [--gradient-frames 360]

Without gradients the whole set is computed at once (equilens in batches of
its default size, joined). With gradients the full tensor would not fit in
memory (about 60 MB per frame), so both sides run over the set in chunks of
``--chunk`` frames and discard each result.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import featomic

from equilens.data import read_dataset, reference_path
from equilens.descriptors import PRESETS, compute_soap

SPECIES = (1, 8, 26)


def timed(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gradient-frames", type=int, default=360)
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    frames = read_dataset(reference_path("iron_water/train")).frames
    n_atoms = sum(len(f) for f in frames)
    hypers = PRESETS[args.preset].to_featomic()
    calculator = featomic.SoapPowerSpectrum(**hypers)

    # warm-up (thread pools, spline construction)
    calculator.compute(frames[:2])
    compute_soap(frames[:2], SPECIES, hypers)

    results = {
        "preset": args.preset,
        "hypers": hypers,
        "machine": platform.processor() or platform.machine(),
    }

    # alternate the two sides so that drifts in machine load hit both
    bare_t, equi_t = [], []
    for _ in range(args.repeats):
        bare_t.append(timed(lambda: calculator.compute(frames), 1)[0])
        equi_t.append(timed(lambda: compute_soap(frames, SPECIES, hypers), 1)[0])
    bare, equi = min(bare_t), min(equi_t)
    results["no_gradients"] = {
        "frames": len(frames),
        "atoms": n_atoms,
        "featomic_atoms_per_s": n_atoms / bare,
        "equilens_atoms_per_s": n_atoms / equi,
        "overhead_percent": 100 * (equi / bare - 1),
        "featomic_seconds": bare_t,
        "equilens_seconds": equi_t,
    }

    subset = frames[: args.gradient_frames]
    n_sub = sum(len(f) for f in subset)
    chunks = [subset[i : i + args.chunk] for i in range(0, len(subset), args.chunk)]
    totals = {"bare": 0.0, "keys": 0.0, "properties": 0.0}
    for chunk in chunks:
        start = time.perf_counter()
        calculator.compute(chunk, gradients=["positions"])
        totals["bare"] += time.perf_counter() - start
        for layout in ("keys", "properties"):
            start = time.perf_counter()
            compute_soap(
                chunk, SPECIES, hypers, gradients=True, batch_size=args.chunk, neighbors=layout
            )
            totals[layout] += time.perf_counter() - start
    for layout in ("keys", "properties"):
        results[f"gradients_{layout}"] = {
            "frames": len(subset),
            "atoms": n_sub,
            "chunk": args.chunk,
            "featomic_atoms_per_s": n_sub / totals["bare"],
            "equilens_atoms_per_s": n_sub / totals[layout],
            "overhead_percent": 100 * (totals[layout] / totals["bare"] - 1),
        }

    for name in ("no_gradients", "gradients_keys", "gradients_properties"):
        r = results[name]
        print(
            f"SOAP {args.preset:8s} {name:21s} {r['frames']:4d} frames {r['atoms']:6d} atoms: "
            f"featomic {r['featomic_atoms_per_s']:8.0f} atoms/s, "
            f"equilens {r['equilens_atoms_per_s']:8.0f} atoms/s, "
            f"overhead {r['overhead_percent']:+5.1f}%"
        )
    if args.json:
        with open(args.json, "w") as fd:
            json.dump(results, fd, indent=2)


if __name__ == "__main__":
    main()
