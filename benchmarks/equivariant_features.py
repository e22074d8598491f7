"""Speed of the equivariant potential's features with their position gradients.

The lambda-SOAP of the default study's equivariant entry (its descriptor,
``density_components`` and ``n_components``), with exact position gradients,
for every frame of the embedded GFN1-xTB iron/water set, in one process:
the stage that the study's equivariant training starts with.

    python benchmarks/equivariant_features.py [--frames 216] [--repeat 2] [--save x.npz]

For an A/B against an older commit, run the same script with that commit's
sources first on ``PYTHONPATH`` (``git worktree add /tmp/old <commit>``,
then ``PYTHONPATH=/tmp/old/src python benchmarks/equivariant_features.py``),
alternating, and compare the arrays saved with ``--save``.
"""

from __future__ import annotations

import argparse
import time

import ase.io
import numpy as np
import torch

import equilens
from equilens.data import embedded_path
from equilens.descriptors.equivariant import EquivariantFeatures, featurize_equivariant
from equilens.study.config import StudyConfig


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=216)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--save", default=None, help="write the features to this .npz")
    args = parser.parse_args()

    config = StudyConfig()
    entry = next(e for e in config.sweep if e.task == "equivariant_potential")
    options = entry.options["features"]
    frames = ase.io.read(embedded_path("iron_water_xtb.extxyz"), f":{args.frames}")
    hypers = config.descriptor.featomic_dict()
    species = sorted({int(z) for atoms in frames for z in atoms.numbers})
    features = EquivariantFeatures(
        species, hypers, 2, options["density_components"], options["n_components"]
    ).fit(frames, 4000, 0)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = featurize_equivariant(frames, features, batch_size=4, dtype=torch.float64)
        times.append(time.perf_counter() - start)
    n_atoms = sum(len(atoms) for atoms in frames)
    print(
        f"equilens from {equilens.__file__}: {len(frames)} frames, {n_atoms} atoms, "
        f"{len(result.grad_values)} pairs, width {features.width}: "
        f"{', '.join(f'{t:.1f}' for t in times)} s (best {min(times):.1f} s, "
        f"{torch.get_num_threads()} threads)"
    )
    if args.save:
        np.savez(
            args.save,
            x=result.x.numpy(),
            grad=result.grad_values.numpy(),
            center=result.grad_center.numpy(),
            neighbor=result.grad_neighbor.numpy(),
        )


if __name__ == "__main__":
    main()
