"""Accuracy of a committee (the mean of several trained potentials) against its members.

Loads two or more potentials (``model.pt`` files of ``equilens train``, e.g.
one configuration trained with different seeds), predicts energies and
forces on one split of their shared training record (default: ``test``), and
prints every member's errors next to those of the committee's mean
prediction (:class:`equilens.uncertainty.Ensemble`, the same mean
``equilens uncertainty --method ensemble`` and its ASE calculator use):
energy RMSE per atom (meV/atom), force RMSE over components (eV/Å), per
species, and the committee's force spread. With ``--json`` the figures are
also written to a file.

    python benchmarks/committee.py RUN0/model.pt RUN1/model.pt RUN2/model.pt \
        [--split test] [--json committee.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Tuple

import numpy as np

from equilens.errors import EquilensError
from equilens.models import load
from equilens.training.metrics import energy_force_metrics
from equilens.uncertainty import Ensemble
from equilens.uncertainty.sets import recorded_splits

#: frames predicted at once: a few hundred atoms each, bounded memory
CHUNK = 8


def _metrics(energies, forces: List[np.ndarray], dataset) -> Dict[str, float]:
    numbers = np.concatenate([atoms.numbers for atoms in dataset.frames])
    return energy_force_metrics(
        energies,
        dataset.energies,
        np.array([len(atoms) for atoms in dataset.frames]),
        np.concatenate(forces),
        np.concatenate(dataset.forces),
        numbers,
    )


def _predict(ensemble: Ensemble, frames):
    """Every member's energies and forces and the committee's (the mean that
    :class:`~equilens.uncertainty.Ensemble` predicts, with its force
    spread), chunk by chunk, each chunk predicted once for all of them."""
    members: List[Tuple[list, list]] = [([], []) for _ in ensemble.models]
    energies, forces, spread = [], [], []
    for start in range(0, len(frames), CHUNK):
        chunk = frames[start : start + CHUNK]
        results = ensemble.members(chunk)
        for (e_all, f_all), (e, f) in zip(members, results):
            e_all.append(e)
            f_all.extend(f)
        energy, _, atoms, mean_forces = ensemble.combine(results, chunk, forces=True)
        energies.append(energy)
        forces.extend(mean_forces)
        spread.extend(atoms)
    alone = [(np.concatenate(e), f) for e, f in members]
    return alone, (np.concatenate(energies), forces, np.concatenate(spread))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="two or more model files")
    parser.add_argument("--split", default="test", help="split of the models' record")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    try:
        models = [load(path) for path in args.models]
        records = [m.describe().provenance.get("config", {}).get("data") for m in models]
        if any(record != records[0] for record in records[1:]):
            raise EquilensError("the models were trained on different data sections")
        splits = recorded_splits(models[0])
        if args.split not in splits:
            raise EquilensError(f"no '{args.split}' split in the models' record: {list(splits)}")
        dataset = splits[args.split]
        ensemble = Ensemble(models)
    except EquilensError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    alone, (energies, forces, spread) = _predict(ensemble, dataset.frames)
    rows = {path: _metrics(*member, dataset) for path, member in zip(args.models, alone)}
    rows["committee mean"] = _metrics(energies, forces, dataset)
    rows["committee mean"]["force_spread_rms_eV_per_A"] = float(np.sqrt(np.mean(spread**2)))
    total = "force_rmse_eV_per_A"
    species = sorted(
        k for k in rows["committee mean"] if k.startswith("force_rmse_") and k != total
    )
    print(f"{args.split}: {len(dataset)} frames, {sum(len(a) for a in dataset.frames)} atoms")
    header = ["model", "energy meV/atom", "forces eV/A", *(k.split("_")[2] for k in species)]
    print(" | ".join(header))
    for name, row in rows.items():
        cells = [f"{row['energy_rmse_meV_per_atom']:.2f}", f"{row['force_rmse_eV_per_A']:.3f}"]
        cells += [f"{row[k]:.3f}" for k in species]
        print(" | ".join([name, *cells]))
    spread_rms = rows["committee mean"]["force_spread_rms_eV_per_A"]
    print(f"committee force spread (RMS): {spread_rms:.3f} eV/A")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"split": args.split, "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
