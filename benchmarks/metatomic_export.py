"""The exported metatomic model: speed, size, and energy conservation in NVE.

On an iron/water reference frame (164 atoms, periodic), with a potential
trained by ``equilens train iron_water`` (``--model``; or a short training of
``--epochs`` epochs made here):

- export time and file size (model file and collected extensions);
- energy + forces per frame: the equilens ASE calculator vs the exported model
  through metatomic-ase, alternating, best of ``--repeats``, 2 threads;
- agreement of energy, forces and stress between the two;
- ``--steps`` steps of NVE (velocity Verlet, 0.5 fs, from 300 K) with the
  metatomic-ase calculator: drift of the total energy per atom per ps (slope
  of a linear fit) and its standard deviation.

    python benchmarks/metatomic_export.py [--model results/train/iron_water/model.pt]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet

from equilens.data import ReadOptions, read_dataset, reference_path
from equilens.export.metatomic import export_metatomic
from equilens.models import load


def trained_model(args) -> Path:
    if args.model:
        return Path(args.model)
    from equilens.models import load_run_config, train
    from equilens.training import with_overrides

    config = with_overrides(load_run_config("iron_water"), args.output + "/model", args.epochs)
    train(config, progress=True)
    return Path(config.output) / "model.pt"


def best_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a trained equilens potential")
    parser.add_argument("--epochs", type=int, default=30, help="training when no --model")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default="results/metatomic_export")
    args = parser.parse_args()
    torch.set_num_threads(2)
    import featomic.torch  # noqa: F401  (before loading a model with extensions)
    from metatomic_ase import MetatomicCalculator

    potential = load(trained_model(args))
    start = time.perf_counter()
    path = export_metatomic(potential, Path(args.output) / "model.pt")
    export_s = time.perf_counter() - start
    extensions = path.parent / "extensions"
    ext_mb = sum(p.stat().st_size for p in extensions.rglob("*") if p.is_file()) / 1e6
    frame = read_dataset(reference_path("iron_water/test"), ReadOptions(index="0")).frames[0]

    ours, theirs = frame.copy(), frame.copy()
    ours.calc = potential.calculator()
    theirs.calc = MetatomicCalculator(str(path), extensions_directory=str(extensions))

    rng = np.random.default_rng(0)

    def run(atoms):  # a new geometry each time: nothing comes from ASE's cache
        atoms.positions = frame.positions + 1e-4 * rng.normal(size=frame.positions.shape)
        atoms.get_forces()

    t_ours, t_theirs = [], []
    for _ in range(args.repeats):  # alternate the two
        t_ours.append(best_time(lambda: run(ours), 1))
        t_theirs.append(best_time(lambda: run(theirs), 1))
    ours.calc.results, theirs.calc.results = {}, {}
    ours.positions = theirs.positions = frame.positions
    agreement = {
        "energy_rel": abs(ours.get_potential_energy() - theirs.get_potential_energy())
        / abs(ours.get_potential_energy()),
        "forces_max": float(np.abs(ours.get_forces() - theirs.get_forces()).max()),
        "stress_max": float(np.abs(ours.get_stress() - theirs.get_stress()).max()),
    }
    atoms = frame.copy()
    atoms.calc = theirs.calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    energies, start = [], time.perf_counter()
    for _ in range(args.steps):
        dynamics.run(1)
        energies.append(atoms.get_total_energy() / len(atoms))
    md_s = time.perf_counter() - start
    t_ps = np.arange(1, args.steps + 1) * 0.5e-3
    slope = np.polyfit(t_ps, energies, 1)[0]
    report = {
        "export_s": export_s,
        "model_mb": path.stat().st_size / 1e6,
        "extensions_mb": ext_mb,
        "equilens_calculator_s": min(t_ours),
        "metatomic_ase_s": min(t_theirs),
        "agreement": agreement,
        "md_steps": args.steps,
        "md_s_per_step": md_s / args.steps,
        "drift_meV_per_atom_per_ps": 1000 * slope,
        "energy_std_meV_per_atom": 1000 * float(np.std(energies)),
        "final_temperature_K": float(atoms.get_temperature()),
    }
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
