"""Size and time of the chemiscope export of the iron/water training set.

Target (issue 5): the iron/water training set (about 59,000 atoms) with three
layers' 2D maps, species and errors stays under 20 MB gzipped.

    python benchmarks/export_size.py [--model results/accuracy/iron_water/model.pt]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from equilens.data import ReadOptions, read_dataset, reference_path
from equilens.export.chemiscope import read_chemiscope
from equilens.export.potential import export_potential
from equilens.models.bpnn.model import Potential


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="results/accuracy/iron_water/model.pt")
    parser.add_argument("--output", default="chemiscope_out/iron_water_train.json.gz")
    parser.add_argument("--no-forces", action="store_true")
    args = parser.parse_args()
    if not Path(args.model).is_file():
        raise SystemExit(
            f"{args.model} not found: train it with `python benchmarks/accuracy.py "
            "--datasets iron_water` or `equilens train iron_water`"
        )
    potential = Potential.load(args.model)
    dataset = read_dataset(reference_path("iron_water/train"), ReadOptions(require_forces=True))
    start = time.perf_counter()
    path = export_potential(args.output, potential, dataset, forces=not args.no_forces)
    elapsed = time.perf_counter() - start
    data = read_chemiscope(path)
    maps = sorted({k.rsplit("[", 1)[0] for k in data["properties"] if k.endswith("[1]")})
    size = path.stat().st_size / 1e6
    print(
        f"{len(dataset)} frames, {dataset.n_atoms} atoms, maps {maps}, "
        f"{len(data['properties'])} properties, shapes {sorted(data.get('shapes', {}))}"
    )
    print(f"export: {elapsed:.0f} s -> {path}: {size:.1f} MB gzipped (target < 20 MB)")


if __name__ == "__main__":
    main()
