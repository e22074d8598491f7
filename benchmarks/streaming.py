"""GFRE, GFRD and CKA of 10^6 atoms x 256 features, chunk by chunk.

Target (issue 27): latents of 10^6 atoms compared in under 2 GB of peak
memory. Two synthetic feature sets of ``--features`` columns each (the
second a nonlinear function of part of the first plus noise: a
reconstruction that is neither perfect nor hopeless) are generated
``--chunk`` rows at a time and accumulated by
:class:`equilens.analysis.streaming.StreamingComparison`; the held data never
exceed one chunk. The script prints the time of the accumulation and of the
final solve, the peak resident memory, the four GFRE/GFRD values and the
memory that the same sets would take in memory (the in-memory comparison
would also copy them).

With ``--check N`` it also compares, on the first ``N`` rows, the streaming
values with scikit-matter's in-memory GFRE on the same split.

    python benchmarks/streaming.py [--atoms 1000000] [--features 256] [--chunk 20000]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from tqdm.auto import tqdm

from equilens.analysis.streaming import StreamingComparison, assign_parts, split_indices


def _chunks(n_atoms: int, features: int, chunk: int, seed: int):
    mixing = np.random.default_rng(seed).normal(size=(features, features)) / np.sqrt(features)
    for start in range(0, n_atoms, chunk):
        rng = np.random.default_rng([seed, start])
        rows = min(chunk, n_atoms - start)
        a = rng.normal(size=(rows, features))
        b = np.tanh(a[:, : features // 2] @ mixing[: features // 2]) + 0.3 * rng.normal(
            size=(rows, features)
        )
        yield {"a": a, "b": b}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=20_000)
    parser.add_argument("--check", type=int, default=0, help="rows checked in memory")
    args = parser.parse_args()

    streaming = StreamingComparison(measures=("gfre", "gfrd", "cka"), seed=0)
    started = time.perf_counter()
    chunks = _chunks(args.atoms, args.features, args.chunk, seed=1)
    total = -(-args.atoms // args.chunk)
    for chunk in tqdm(chunks, total=total, desc="statistics", unit="chunk"):
        streaming.partial_fit(chunk)
    accumulated = time.perf_counter() - started
    result = streaming.result()
    solved = time.perf_counter() - started - accumulated
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    held = 2 * args.atoms * args.features * 8 / 1024**3
    print(f"{args.atoms} atoms x {args.features} features x 2 sets ({held:.2f} GiB in memory)")
    print(f"accumulation {accumulated:.1f} s, solve {solved:.1f} s, peak RSS {peak:.2f} GiB")
    print(f"train {result.n_train} rows, test {result.n_test} rows")
    for measure, matrix in result.matrices.items():
        print(f"{measure}: a->b {matrix[0, 1]:.4f}  b->a {matrix[1, 0]:.4f}")

    if args.check:
        from skmatter.metrics import global_reconstruction_error

        data = next(_chunks(args.check, args.features, args.check, seed=1))
        parts = assign_parts(0, args.check, 0.5, 0)
        small = StreamingComparison(measures=("gfre",), seed=0).partial_fit(data).result()
        train, test = split_indices(parts)
        # scikit-matter's folds differ from ours: compare the final value only
        value = global_reconstruction_error(data["a"], data["b"], train_idx=train, test_idx=test)
        print(
            f"check on {args.check} rows: streaming GFRE a->b {small.matrices['gfre'][0, 1]:.6f}, "
            f"scikit-matter {value:.6f} (same train/test split, own folds)"
        )


if __name__ == "__main__":
    main()
