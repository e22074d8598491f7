"""Cost of the LFRE local fits of one source, by the source's width.

Eight random sets of the widths of ``benchmarks/compare.py`` (a 40-dimensional
signal through ``tanh``, plus noise) on 1,000 rows; for each of four
sources, the squared local errors of 100 test points (100 neighbours among
500 training rows) to all eight sets, on one BLAS thread as in a worker of
:func:`equilens.analysis.compare.compare`.

    python benchmarks/lfre_sources.py
"""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits

from equilens.analysis.reconstruction import local_squared_errors

WIDTHS = [256, 128, 128, 1, 128, 128, 600, 1470]


def main():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(1000, 40))
    sets = [
        np.tanh(signal @ rng.normal(size=(40, w))) + 0.01 * rng.normal(size=(1000, w))
        for w in WIDTHS
    ]
    train, test = np.arange(500), np.arange(500, 600)
    with threadpool_limits(1):
        for source in (7, 6, 0, 1):
            start = time.perf_counter()
            local_squared_errors(sets[source], sets, 100, train, test)
            elapsed = time.perf_counter() - start
            print(f"source {WIDTHS[source]:>5} wide: {elapsed:.2f} s per 100 test points")


if __name__ == "__main__":
    main()
