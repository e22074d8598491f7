"""Summary, figures and chemiscope file of a relaxation benchmark."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

import ase
import numpy as np

from ..figures import pyplot, save_figure

PathLike = Union[str, "os.PathLike[str]"]
ENERGY = "reference_energy_above_minimum_meV_per_atom"


def summarise(rows: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Per calculator and task: relaxations, convergence rate, median and 90th
    percentile RMSD, median volume change, median reference energy above the
    minimum, median steps and seconds per step."""
    summary: Dict[str, Dict[str, Dict[str, float]]] = {}
    for label in dict.fromkeys(r["calculator"] for r in rows):
        summary[label] = {}
        for task in dict.fromkeys(r["task"] for r in rows):
            chosen = [r for r in rows if r["calculator"] == label and r["task"] == task]
            if not chosen:
                continue
            rmsd = np.array([r["rmsd_A"] for r in chosen])
            entry = {
                "relaxations": len(chosen),
                "converged_fraction": float(np.mean([r["converged"] for r in chosen])),
                "rmsd_median_A": float(np.median(rmsd)),
                "rmsd_p90_A": float(np.percentile(rmsd, 90)),
                "volume_change_median_percent": float(
                    np.median([r["volume_change_percent"] for r in chosen])
                ),
                "steps_median": float(np.median([r["steps"] for r in chosen])),
                "seconds_per_step_median": float(
                    np.median([r["seconds_per_step"] for r in chosen])
                ),
            }
            if all(ENERGY in r for r in chosen):
                entry["energy_above_minimum_median_meV_per_atom"] = float(
                    np.median([r[ENERGY] for r in chosen])
                )
            summary[label][task] = entry
    return summary


def plot_relaxations(rows: Sequence[Dict[str, Any]], path: PathLike, title: str = "") -> Path:
    """RMSD, reference energy above the minimum and steps of every relaxation,
    per calculator and task: each relaxation a point (open when it did not
    converge), a box where there are enough of them to describe."""
    plt = pyplot()
    keys = [("rmsd_A", "RMSD to the reference minimum (Å)"), ("steps", "optimiser steps")]
    if all(ENERGY in r for r in rows):
        keys.insert(1, (ENERGY, "reference E - E_min (meV/atom)"))
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 4.8))
    groups = list(dict.fromkeys((r["calculator"], r["task"]) for r in rows))
    for axis, (key, label) in zip(np.atleast_1d(axes), keys):
        data = [[r for r in rows if (r["calculator"], r["task"]) == g] for g in groups]
        if min(len(chosen) for chosen in data) >= 5:
            axis.boxplot([[r[key] for r in chosen] for chosen in data], showfliers=False)
        for position, chosen in enumerate(data, start=1):
            spread = np.linspace(-0.12, 0.12, len(chosen)) if len(chosen) > 1 else [0.0]
            for offset, row in zip(spread, chosen):
                axis.plot(
                    position + offset, row[key], "o", color="C0",
                    markerfacecolor="C0" if row["converged"] else "white",
                )  # fmt: skip
        axis.set_xticks(range(1, len(groups) + 1))
        axis.set_xticklabels(
            [f"{c}\n{'in' if t.startswith('in') else 'out of'} distr." for c, t in groups],
            rotation=45, ha="right", fontsize=7,
        )  # fmt: skip
        axis.set_ylabel(label)
        values = np.abs([r[key] for r in rows if np.isfinite(r[key])])
        if key == ENERGY and values.size and values.max() > 30 * max(np.median(values), 10.0):
            axis.set_yscale("symlog", linthresh=10.0)  # a few runaway relaxations
    converged = sum(bool(r["converged"]) for r in rows)
    fig.suptitle(
        f"{title}: {len(rows)} relaxations, {converged} converged (open circles: not converged)"
    )
    return save_figure(fig, path)


def relaxation_chemiscope(
    structures: List[ase.Atoms], rows: Sequence[Dict[str, Any]], path: PathLike, name: str
) -> Path:
    """The relaxed structures with their scores, one chemiscope file."""
    import chemiscope

    numeric = ["rmsd_A", "steps", "volume_change_percent", "seconds_per_step"]
    if all(ENERGY in r for r in rows):
        numeric.insert(1, ENERGY)
    properties: Dict[str, Dict[str, Any]] = {
        key: {"target": "structure", "values": [float(r[key]) for r in rows]} for key in numeric
    }
    for key in ("calculator", "task"):
        properties[key] = {"target": "structure", "values": [str(r[key]) for r in rows]}
    y = ENERGY if ENERGY in properties else "steps"
    settings = {"map": {"x": {"property": "rmsd_A"}, "y": {"property": y},
                        "color": {"property": "steps"}}}  # fmt: skip
    plain = [ase.Atoms(a.numbers, a.positions, cell=a.cell, pbc=a.pbc) for a in structures]
    chemiscope.write_input(
        str(path), structures=plain, properties=properties,
        metadata={"name": f"{name}: relaxations"}, settings=settings,
    )  # fmt: skip
    return Path(path)
