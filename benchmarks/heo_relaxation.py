"""Relaxing high-entropy oxides with SevenNet-0 before and after fine-tuning.

Data: the GFN1-xTB rock-salt (Mg,Co,Ni,Cu,Zn)O set of ``equilens generate
heo`` (``data/heo_xtb.extxyz`` and its ``.minima.extxyz``). The frames of the
first starts train (``task: sevenn``: SevenNet-0 fine-tuned by sevenn's
trainer, offsets refitted); the last ``--test-starts`` starts are held out.
For each held-out start and each model (SevenNet-0 zero-shot, fine-tuned):

- in distribution: the xTB minimum rattled by ``--rattle`` Å (several seeds),
  relaxed at fixed cell (BFGS, ``fmax`` 0.05 eV/Å);
- out of distribution: the ideal substituted parent crystal (the structure
  the xTB relaxation started from), relaxed in positions and cell.

Reported per relaxation: converged or not, optimiser steps, RMSD of the
relaxed positions to the xTB minimum (minimum image; fractional coordinates
mapped onto the minimum's cell for the out-of-distribution case, with the
volume difference), and the GFN1-xTB energy of the relaxed structure above
the xTB minimum (meV/atom). Figures: ``relaxation.png``; structures and
numbers: ``relaxed.extxyz``, ``relaxed.json.gz`` (chemiscope), ``report.json``.

    python benchmarks/heo_relaxation.py [--epochs 6]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import ase.io
import numpy as np
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from equilens.config import from_mapping
from equilens.data.generate.heo import HeoConfig, substituted
from equilens.data.generate.iron_water import xtb_calculator
from equilens.models.adapters.sevenn import SevenNetModel
from equilens.training.sevenn import SevennConfig, train_sevenn


def rmsd(moved: ase.Atoms, reference: ase.Atoms) -> float:
    """RMSD (Å) of ``moved`` to ``reference``, fractional coordinates mapped
    onto the reference cell, minimum image, mean displacement removed."""
    delta = moved.get_scaled_positions(wrap=False) - reference.get_scaled_positions(wrap=False)
    delta -= np.round(delta)
    cartesian = delta @ reference.cell.array
    cartesian -= cartesian.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(cartesian**2, axis=1))))


def relax(atoms: ase.Atoms, calculator, cell: bool, steps: int = 300):
    atoms = atoms.copy()
    atoms.calc = calculator
    target = FrechetCellFilter(atoms) if cell else atoms
    optimizer = BFGS(target, logfile=None)  # type: ignore[arg-type]
    converged = optimizer.run(fmax=0.05, steps=steps)
    return atoms, bool(converged), int(optimizer.nsteps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/heo_xtb.extxyz")
    parser.add_argument("--test-starts", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rattle", type=float, default=0.1)
    parser.add_argument("--rattle-seeds", type=int, default=2)
    parser.add_argument("--output", default="results/heo_relaxation")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    frames = ase.io.read(data, ":")
    minima = ase.io.read(data.with_name(data.stem + ".minima.extxyz"), ":")
    starts = sorted({int(f.info["start"]) for f in frames})
    held = starts[-args.test_starts :]
    train = [f for f in frames if int(f.info["start"]) not in held]
    test = [f for f in frames if int(f.info["start"]) in held]
    ase.io.write(output / "train.extxyz", train)
    ase.io.write(output / "test.extxyz", test)
    config = from_mapping(
        SevennConfig,
        {
            "task": "sevenn",
            "name": "sevennet-0-heo",
            "data": {
                "train": str(output / "train.extxyz"),
                "validation_fraction": 0.15,
                "test": str(output / "test.extxyz"),
            },
            "base_model": "7net-0",
            "training": {
                "epochs": args.epochs,
                "batch_size": 4,
                "learning_rate": 0.001,
                "stress_weight": 0.01,
                "checkpoint_every": 2,
            },  # fmt: skip
            "output_dir": str(output / "finetune"),
        },
    )
    start = time.perf_counter()
    finetuned, summary = train_sevenn(config)
    print(f"fine-tuned in {time.perf_counter() - start:.0f} s")
    models = {"SevenNet-0": SevenNetModel("7net-0"), "fine-tuned": finetuned}
    xtb = xtb_calculator()
    heo = HeoConfig()
    rows, relaxed_frames = [], []
    for s in held:
        reference = next(m for m in minima if int(m.info["start"]) == s)
        e_min = reference.get_potential_energy()
        tasks = []
        for seed in range(args.rattle_seeds):
            rattled = reference.copy()
            rattled.rattle(args.rattle, seed=100 + seed)
            tasks.append((f"rattled minimum {seed}", rattled, False))
        parent = substituted(heo, s)
        tasks.append(("parent crystal", parent, True))
        for name, model in models.items():
            for task, structure, cell in tasks:
                t0 = time.perf_counter()
                result, converged, steps = relax(structure, model.calculator(), cell)
                seconds = time.perf_counter() - t0
                check = result.copy()
                check.calc = xtb
                above = 1000 * (check.get_potential_energy() - e_min) / len(result)
                row = {
                    "start": s, "model": name, "task": task, "converged": converged,
                    "steps": steps, "seconds": seconds, "rmsd_A": rmsd(result, reference),
                    "xtb_energy_above_minimum_meV_per_atom": above,
                    "volume_change_percent": 100 * (result.get_volume() / reference.get_volume()
                                                    - 1),
                }  # fmt: skip
                rows.append(row)
                result.info.update({k: v for k, v in row.items() if k != "seconds"})
                relaxed_frames.append(result)
                print(
                    f"start {s} {name:10s} {task:18s} {'ok ' if converged else 'NOT'} "
                    f"{steps:3d} steps, RMSD {row['rmsd_A']:.3f} A, "
                    f"xTB +{above:.1f} meV/atom, dV {row['volume_change_percent']:+.1f}%"
                )
    report = {"training": {k: summary[k] for k in ("metrics", "baselines", "seconds")},
              "relaxations": rows}  # fmt: skip
    (output / "report.json").write_text(json.dumps(report, indent=2, default=float))
    ase.io.write(output / "relaxed.extxyz", [_plain(f) for f in relaxed_frames])
    plot(rows, output / "relaxation.png")
    chemiscope_file(relaxed_frames, rows, output / "relaxed.json.gz")
    print(f"-> {output}")


def _plain(atoms: ase.Atoms) -> ase.Atoms:
    copy = ase.Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    copy.info.update(atoms.info)
    return copy


def plot(rows, path: Path) -> None:
    from equilens.figures import pyplot

    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    kinds = sorted({(r["task"].startswith("parent"), r["model"]) for r in rows})
    for i, (ood, model) in enumerate(kinds):
        chosen = [r for r in rows if r["model"] == model and r["task"].startswith("parent") == ood]
        label = f"{model}, {'parent crystal' if ood else 'rattled minima'}"
        for axis, key in zip(axes, ("rmsd_A", "xtb_energy_above_minimum_meV_per_atom", "steps")):
            values = [r[key] for r in chosen]
            axis.bar(i, np.mean(values), yerr=np.std(values), label=label, alpha=0.8)
    titles = ("RMSD to xTB minimum (Å)", "xTB energy above minimum (meV/atom)", "BFGS steps")
    for axis, title in zip(axes, titles):
        axis.set(title=title, xticks=[])
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)


def chemiscope_file(frames, rows, path: Path) -> None:
    import chemiscope

    properties = {
        key: {"target": "structure", "values": [float(r[key]) for r in rows]}
        for key in ("rmsd_A", "xtb_energy_above_minimum_meV_per_atom", "steps",
                    "volume_change_percent")
    }  # fmt: skip
    properties["model"] = {"target": "structure", "values": [r["model"] for r in rows]}
    properties["task"] = {"target": "structure", "values": [r["task"] for r in rows]}
    settings = {"map": {"x": {"property": "rmsd_A"},
                        "y": {"property": "xtb_energy_above_minimum_meV_per_atom"},
                        "color": {"property": "steps"}}}  # fmt: skip
    chemiscope.write_input(
        str(path), structures=[_plain(f) for f in frames], properties=properties,
        metadata={"name": "HEO relaxations: SevenNet-0 vs fine-tuned"}, settings=settings,
    )  # fmt: skip


if __name__ == "__main__":
    main()
