"""Speed of reading every layer of a model on the iron/water training set.

Target (issue 4): all layers for the 360 frames (59,040 atoms) in at most
30 s on 2 cores, without position gradients.

    python benchmarks/latents.py [--model results/accuracy/iron_water/model.pt]

Without a model file, an untrained potential of the iron/water
architecture shipped until 2026-12-07 (2 x 128, kept so that the figures
compare across sessions) is used (the cost does not depend on the weights).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch

from equilens.analysis.latents import latents
from equilens.data import ReadOptions, read_dataset, reference_path
from equilens.descriptors import PRESETS, SpeciesPCA, compute_soap
from equilens.models.bpnn.config import BPNNConfig
from equilens.models.bpnn.model import Potential

SPECIES = (1, 8, 26)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="results/accuracy/iron_water/model.pt")
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()

    frames = read_dataset(
        reference_path("iron_water/train"), ReadOptions(require_energy=False)
    ).frames
    if Path(args.model).is_file():
        potential = Potential.load(args.model)
        source = args.model
    else:
        hypers = PRESETS["default"].to_featomic()
        pca = SpeciesPCA(n_components=256).fit(compute_soap(frames, SPECIES, hypers))
        potential = Potential.build(hypers, pca, BPNNConfig(hidden=(128, 128)))
        source = "untrained, 2 x 128 (the iron/water architecture until 2026-12-07)"
    n_atoms = sum(len(f) for f in frames)

    start = time.perf_counter()
    layers = latents(potential, frames, batch_size=args.batch_size)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    widths = {name: t.block(0).values.shape[1] for name, t in layers.items()}
    print(f"model: {source}; layers {widths}")
    print(
        f"all {len(layers)} layers for {len(frames)} frames ({n_atoms} atoms): {elapsed:.1f} s "
        f"({n_atoms / elapsed:.0f} atoms/s, {torch.get_num_threads()} threads); "
        f"peak RSS {peak:.2f} GB"
    )


if __name__ == "__main__":
    main()
