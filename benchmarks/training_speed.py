"""Speed of force training on the iron/water training set.

Measures, for the 324 training frames (360 minus 10% validation) of
``iron_water/train`` with the default SOAP (1,470 features per species) and
PCA compression:

- the one-off cost: SOAP with gradients, projection, in atoms per second;
- the memory of the precomputed features and gradients;
- seconds per training epoch with energies and forces (mean over
  ``--epochs`` epochs after one warm-up epoch);
- the peak resident memory of the process.

    python benchmarks/training_speed.py [--components 128] [--epochs 3]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from equilens.data import ReadOptions, random_split, read_dataset, reference_path
from equilens.descriptors import PRESETS, SpeciesPCA, compute_soap, featurize
from equilens.models.bpnn.config import BPNNConfig
from equilens.models.bpnn.model import Potential
from equilens.models.energy.config import LossConfig
from equilens.models.energy.task import fit_baseline, objective
from equilens.training.loop import TrainConfig, _batches

SPECIES = (1, 8, 26)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=128)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gradient-storage", choices=["float32", "float16"], default="float32")
    parser.add_argument("--batching", choices=["frames", "blocks"], default="blocks")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    dataset = read_dataset(reference_path("iron_water/train"), ReadOptions(require_forces=True))
    parts = random_split(dataset, {"train": 0.9, "validation": 0.1}, seed=0)
    train = parts["train"]
    hypers = PRESETS["default"].to_featomic()
    n_atoms = train.n_atoms

    start = time.perf_counter()
    pca = SpeciesPCA(n_components=args.components).fit(compute_soap(train.frames, SPECIES, hypers))
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    features = {
        name: featurize(
            part.frames,
            hypers,
            pca,
            gradients=True,
            energies=part.energies,
            forces=part.forces,
            progress=True,
            gradient_dtype=getattr(torch, args.gradient_storage),
        )
        for name, part in parts.items()
    }
    featurize_s = time.perf_counter() - start
    f = features["train"]
    gradient_mb = f.grad_values.numel() * f.grad_values.element_size() / 1e6

    model = Potential.build(hypers, pca, BPNNConfig(hidden=tuple(args.hidden))).module
    baseline, scale, energy_std, force_rms = fit_baseline(train, SPECIES)
    model.baseline.copy_(torch.as_tensor(baseline, dtype=torch.float32))
    model.scale.fill_(scale)
    loss_fn, validate_fn = objective(features, LossConfig(), energy_std, force_rms, 16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    config = TrainConfig(batch_size=args.batch_size, batching=args.batching)

    def epoch(seed):
        for batch in _batches(f.n_frames, config, seed):
            optimizer.zero_grad()
            loss = loss_fn(model, batch)
            loss.backward()
            optimizer.step()
        validate_fn(model)

    epoch(0)  # warm-up
    times = []
    for e in range(args.epochs):
        start = time.perf_counter()
        epoch(e + 1)
        times.append(time.perf_counter() - start)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6

    print(
        f"iron/water train: {f.n_frames} frames, {int(f.atom_offsets[-1])} atoms, "
        f"{len(f.grad_values)} gradient pairs ({len(f.grad_values) / f.n_frames:.0f} per frame)"
    )
    print(f"PCA fit (SOAP without gradients + eigh): {fit_s:.1f} s")
    print(
        f"features with gradients, all splits: {featurize_s:.1f} s "
        f"({(n_atoms + parts['validation'].n_atoms) / featurize_s:.0f} atoms/s)"
    )
    print(
        f"projected gradients in memory: {gradient_mb:.0f} MB "
        f"({args.gradient_storage}, k={args.components})"
    )
    print(
        f"epoch with forces (train + validation pass), batch {args.batch_size}, "
        f"{args.batching} batching: "
        f"{np.mean(times):.2f} s (min {np.min(times):.2f}, over {len(times)} epochs, "
        f"{torch.get_num_threads()} threads)"
    )
    print(f"peak resident memory: {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
