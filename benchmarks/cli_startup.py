"""Wall time of ``equilens --help`` (goal: under 0.5 s), the median of repeated runs.

python benchmarks/cli_startup.py [--repeats 10]
"""

import argparse
import statistics
import subprocess
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "equilens.cli", "--help"], check=True, capture_output=True
        )
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(
        f"equilens --help: median {median:.3f} s, min {min(times):.3f} s, max {max(times):.3f} s "
        f"over {len(times)} runs (goal < 0.5 s): {'PASS' if median < 0.5 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
