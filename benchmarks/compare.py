"""Speed of the 3-measure comparison matrix between 8 feature sets.

Target (issue 4): GFRE, GFRD and LFRE between 8 feature sets at 10,000
sampled atoms in at most 2 minutes on 2 cores (LFRE on its own budget).

The 8 sets, all on the atoms of the iron/water training set: the 4 layers of
a trained iron/water model (``--model``; an untrained one of the same
architecture when absent), the 2 hidden layers of an untrained network (a
random-feature reference), and SOAP with the ``small`` and ``default``
presets.

    python benchmarks/compare.py [--model results/accuracy/iron_water/model.pt]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from equilens.analysis.compare import compare
from equilens.analysis.latents import latents
from equilens.data import ReadOptions, read_dataset, reference_path
from equilens.descriptors import PRESETS, SpeciesPCA, compute_soap
from equilens.export.comparisons import save_comparison
from equilens.models.bpnn.config import BPNNConfig
from equilens.models.bpnn.model import Potential

SPECIES = (1, 8, 26)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="results/accuracy/iron_water/model.pt")
    parser.add_argument("--n-samples", type=int, default=10000)
    parser.add_argument("--lfre-samples", type=int, default=1000)
    parser.add_argument("--lfre-neighbors", type=int, default=100)
    parser.add_argument("--output", default="results/compare_benchmark")
    args = parser.parse_args()

    frames = read_dataset(
        reference_path("iron_water/train"), ReadOptions(require_energy=False)
    ).frames
    hypers = PRESETS["default"].to_featomic()
    start = time.perf_counter()
    if Path(args.model).is_file():
        trained = Potential.load(args.model)
    else:
        pca = SpeciesPCA(n_components=256).fit(compute_soap(frames, SPECIES, hypers))
        trained = Potential.build(hypers, pca, BPNNConfig(hidden=(128, 128)))
    with torch.random.fork_rng():
        torch.manual_seed(123)
        random = Potential.build(trained.hypers, trained.pca, BPNNConfig(hidden=(128, 128)))
    features = {
        f"model/{name}": tensor
        for name, tensor in latents(trained, frames, per_species=False).items()
    }
    untrained = latents(random, frames, per_species=False)
    features["untrained/hidden_1"] = untrained["hidden_1"]
    features["untrained/hidden_2"] = untrained["hidden_2"]
    for preset in ("small", "default"):
        soap = compute_soap(frames, SPECIES, PRESETS[preset].to_featomic())
        features[f"soap/{preset}"] = soap.keys_to_samples("center_type")
    prepare = time.perf_counter() - start

    start = time.perf_counter()
    result = compare(
        features,
        n_samples=args.n_samples,
        lfre_samples=args.lfre_samples,
        lfre_neighbors=args.lfre_neighbors,
        n_jobs=None,  # LFRE rows on every core
    )
    elapsed = time.perf_counter() - start
    save_comparison(result, args.output)
    widths = {n: f.block(0).values.shape[1] for n, f in features.items()}
    print(f"feature sets: {widths}")
    print(f"preparing the feature sets (latents, SOAP): {prepare:.1f} s")
    print(
        f"GFRE + GFRD + LFRE, {len(features)} x {len(features)} pairs, {result.n_samples} samples "
        f"(LFRE {result.lfre_samples} samples, {args.lfre_neighbors} neighbors): {elapsed:.1f} s "
        f"(target <= 120 s) -> {args.output}"
    )
    print("  per measure: " + ", ".join(f"{m} {t:.1f} s" for m, t in result.seconds.items()))


if __name__ == "__main__":
    main()
