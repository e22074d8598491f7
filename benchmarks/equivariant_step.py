"""Time of one training step of the default study's equivariant potential.

The study's equivariant entry (its features, hidden widths and batch of 16
frames) on the embedded GFN1-xTB iron/water set: one step is the energies,
the forces by the stored projected gradients (``create_graph``, as in
training), the loss and its backward. Prints the time per step over
``--steps`` steps after two warm-up steps (the median and the fastest: a
shared machine's noise only adds time), and the number of operators one
step runs (torch's profiler). AdamW is fused, as in training:

    python benchmarks/equivariant_step.py [--steps 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import ase.io
import torch

from equilens.data import embedded_path
from equilens.descriptors.equivariant import EquivariantFeatures, featurize_equivariant
from equilens.models.energy.forces import energy_and_forces
from equilens.models.equivariant.config import EquivariantNetworkConfig
from equilens.models.equivariant.model import build_module
from equilens.study.config import StudyConfig


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16, help="frames per step")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = StudyConfig()
    entry = next(e for e in config.sweep if e.task == "equivariant_potential")
    options = entry.options["features"]
    frames = ase.io.read(embedded_path("iron_water_xtb.extxyz"), ":64")
    species = sorted({int(z) for atoms in frames for z in atoms.numbers})
    features = EquivariantFeatures(
        species, config.descriptor.featomic_dict(), 2, options["density_components"],
        options["n_components"],
    ).fit(frames, 4000, 0)  # fmt: skip
    data = featurize_equivariant(frames, features, gradients=True, dtype=torch.float32)
    network = EquivariantNetworkConfig(hidden=tuple(entry.model["hidden"]))
    torch.manual_seed(0)
    module = build_module(features, network, torch.float32)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, fused=True)
    batches = [list(range(s, s + args.batch)) for s in range(0, len(frames), args.batch)]

    def step(index: int) -> None:
        batch = data.select(batches[index % len(batches)])
        optimizer.zero_grad(set_to_none=True)
        energy, force = energy_and_forces(module, batch, create_graph=True)
        loss = energy.pow(2).mean() + force.pow(2).mean()
        loss.backward()
        optimizer.step()

    for index in range(2):
        step(index)
    times = []
    for index in range(args.steps):
        start = time.perf_counter()
        step(index)
        times.append(time.perf_counter() - start)
    times.sort()
    seconds, fastest = times[len(times) // 2], times[0]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        step(0)
    operators = sum(e.count for e in profile.key_averages() if e.key.startswith("aten::"))
    print(
        f"features {options['n_components']} per o3_lambda, hidden {list(network.hidden)}, "
        f"{args.batch} frames per step: {1000 * seconds:.1f} ms per step (median; "
        f"fastest {1000 * fastest:.1f} ms; {torch.get_num_threads()} threads), "
        f"{operators} aten operator calls per step (nested ones included)"
    )


if __name__ == "__main__":
    main()
