"""Speed of the 3-measure comparison matrix between 8 feature sets.

Target (issue 4): GFRE, GFRD and LFRE between 8 feature sets at 10,000
sampled atoms in at most 2 minutes on 2 cores (LFRE on its own budget).

The 8 sets, all on the atoms of the iron/water training set: the 4 layers of
a trained iron/water model (``--model``; an untrained one of the same
architecture when absent), the 2 hidden layers of an untrained network (a
random-feature reference), and SOAP with the ``small`` and ``default``
presets.

    python benchmarks/compare.py [--model results/accuracy/iron_water/model.pt] [--baseline]

``--baseline`` also times, in the same process and on one seeded random
selection of the same sets (so that the machine's speed cancels out), the
pair-by-pair path equilens used before its measures fitted each source once
for all targets: scikit-matter's ``global_reconstruction_error`` and
``local_reconstruction_error`` with equilens's factorising estimator (each
source's factorisations cached), and the thin GFRD, pair by pair; LFRE of
both in 2 worker processes, one source per task before, chunks of test
points now. Prints both times and the largest difference of the values.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from skmatter.metrics import global_reconstruction_error, local_reconstruction_error
from threadpoolctl import threadpool_limits

from equilens.analysis.compare import compare
from equilens.analysis.estimators import FactorizedRidge2FoldCV
from equilens.analysis.latents import latents
from equilens.analysis.pairwise import lfre_values
from equilens.analysis.reconstruction import global_measures, global_reconstruction_distortion_thin
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
    parser.add_argument(
        "--baseline", action="store_true", help="also time the pair-by-pair path (A/B)"
    )
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
    if args.baseline:
        arrays = [np.vstack([b.values for b in f.blocks()]) for f in features.values()]
        baseline(arrays, args.n_samples, args.lfre_samples, args.lfre_neighbors)


def baseline(arrays, n_samples: int, lfre_samples: int, neighbors: int) -> None:
    """A/B of the pair-by-pair path against the one-fit-per-source measures."""
    rng = np.random.default_rng(0)
    rows = rng.choice(len(arrays[0]), n_samples, replace=False)
    data = [a[rows] for a in arrays]
    half = n_samples // 2
    train, test = np.arange(half), np.arange(half, n_samples)
    lfre_train, lfre_test = np.arange(lfre_samples // 2), np.arange(lfre_samples // 2, lfre_samples)
    started = time.perf_counter()
    estimator = FactorizedRidge2FoldCV()
    old = np.array(
        [
            [
                [global_reconstruction_error(a, b, train_idx=train, test_idx=test,
                                             estimator=estimator),
                 global_reconstruction_distortion_thin(a, b, train, test, estimator)]
                for b in data
            ]
            for a in data
        ]
    )  # fmt: skip
    old_global = time.perf_counter() - started
    started = time.perf_counter()
    new = np.array([np.transpose(global_measures(a, data, train, test)) for a in data])
    new_global = time.perf_counter() - started
    small = [d[:lfre_samples] for d in data]
    started = time.perf_counter()
    tasks = [(i, small, lfre_train, lfre_test, neighbors) for i in range(len(small))]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        old_lfre = np.array(list(pool.map(_pair_by_pair_lfre, tasks)))
    old_local = time.perf_counter() - started
    started = time.perf_counter()
    values = lfre_values(small, lfre_train, lfre_test, neighbors, 2, False)
    new_local = time.perf_counter() - started
    new_lfre = np.array([[values[("lfre", i, j)] for j in range(len(small))]
                         for i in range(len(small))])  # fmt: skip
    print(
        f"A/B on one random selection: GFRE + GFRD pair by pair {old_global:.1f} s, one fit "
        f"per source {new_global:.1f} s (largest difference {np.max(np.abs(old - new)):.1e}); "
        f"LFRE one source per task {old_local:.1f} s, chunks of test points {new_local:.1f} s "
        f"(largest difference {np.max(np.abs(old_lfre - new_lfre)):.1e})"
    )


def _pair_by_pair_lfre(task):
    """One source's LFRE row as equilens computed it before (a worker process)."""
    source, sets, train, test, neighbors = task
    local = FactorizedRidge2FoldCV(cache_size=len(test) + 1, cache_min_samples=0)
    with threadpool_limits(1):
        return [
            local_reconstruction_error(sets[source], target, neighbors, train_idx=train,
                                       test_idx=test, estimator=local)
            for target in sets
        ]  # fmt: skip


if __name__ == "__main__":
    main()
