"""The study's uncertainty stage: which layer's latent distance flags its model's errors.

For every trained model of the study that predicts energies, and for every
layer but the output, the latent distance to the training atoms
(:class:`~equilens.uncertainty.LatentDistance`, fitted on the study's
training split) is computed for the held-out frames (validation, and test
when the study has one) and compared with the model's own errors there:

- ``atom_spearman``: Spearman correlation between each atom's distance and
  the norm of its force error (hundreds of atoms: the robust figure);
- ``energy_spearman``: between each structure's uncertainty and its
  absolute energy error (few structures: indicative only).

Rank correlations do not depend on a calibration's scale factor, so none is
fitted here; ``equilens uncertainty`` calibrates. External models are left
out: the study does not know the frames they were trained on.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ..analysis.latents import arrange_layers
from ..data.io import Dataset
from ..models.energy.model import predict_shared
from ..uncertainty.calibration import rank_correlation
from ..uncertainty.estimators import LatentDistance, evaluated
from ..uncertainty.features import layer_tensors

#: the columns of ``uncertainty.csv``
COLUMNS = ("model", "task", "seed", "layer", "atom_spearman", "energy_spearman", "held_out_frames")


def held_out(splits: Dict[str, Dataset]) -> Dataset:
    """The validation frames, with the test frames when there are some."""
    parts = [splits[name] for name in ("validation", "test") if name in splits]
    frames = [atoms for part in parts for atoms in part.frames]
    energies = np.concatenate([part.energies for part in parts])
    forces = [f for part in parts for f in part.forces] if all(p.forces for p in parts) else None
    return Dataset(frames, energies, forces)


def layer_uncertainty(
    config, potentials, splits: Dict[str, Dataset], computed: Optional[Dict[str, dict]] = None
) -> List[dict]:
    """One row per (model, seed, layer): see the module's description.

    :param computed: ``{model key: {layer: TensorMap}}``, every layer of the
        models over the training frames when the study already has them (the
        layers stage's, when its analysis frames are the whole training split)
    """
    if not any(name in splits for name in ("validation", "test")):
        return []
    train = splits["train"].frames
    held = held_out(splits)
    tasks = {entry.name: entry.task for entry in config.sweep}
    read = {
        key: model
        for key, model in potentials.items()
        if "energy" in model.outputs and len(model.layer_names) >= 2
    }
    # the seeds of an entry featurize the held-out frames once, before the
    # layers' features (smaller) are shared between them
    predicted = predict_shared(read, held.frames, forces=held.forces is not None)
    rows = []
    for key, model in read.items():
        name, seed = key.rsplit("/seed", 1)
        layers = list(model.layer_names[:-1])
        if computed is not None and key in computed:
            raw = {layer: computed[key][layer] for layer in layers}
            fitted = arrange_layers(raw, per_species=True, pooling=None, invariant=True)
        else:
            fitted = layer_tensors(model, train, layers)
        on_held = evaluated(model, held.frames, layers, held.forces is not None, predicted[key])
        for layer in layers:
            estimator = LatentDistance(model, layer).fit(train, layers=fitted)
            result = estimator.predict(held.frames, held.forces is not None, **on_held)
            atoms = float("nan")
            if held.forces is not None:
                errors = [np.linalg.norm(p - r, axis=1) for p, r in zip(result.forces, held.forces)]
                atoms = rank_correlation(
                    np.concatenate(errors), np.concatenate(result.atom_uncertainty)
                )
            rows.append(
                {
                    "model": name,
                    "task": tasks.get(name, ""),
                    "seed": int(seed),
                    "layer": layer,
                    "atom_spearman": atoms,
                    "energy_spearman": rank_correlation(
                        result.energy - held.energies, result.energy_uncertainty
                    ),
                    "held_out_frames": len(held),
                }
            )
    return rows


def uncertainty_section(rows: List[dict]) -> List[str]:
    """The report's section: per model, each layer's correlations (mean and
    spread over seeds), and per family the layer that flags errors best."""
    if not rows:
        return []
    groups: Dict[tuple, List[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["model"], row["layer"]), []).append(row)
    lines = [
        "",
        "## Which layer's latent distance flags its model's errors",
        "",
        f"Distance of each held-out atom ({rows[0]['held_out_frames']} frames) to its 5 nearest "
        "training atoms of the same species, in each layer, against the model's own errors: "
        "Spearman correlation with the atom's force error (per atom) and with the structure's "
        "energy error (per structure, few structures); mean ± spread over seeds. A layer "
        "whose distance correlates better tells better where its model cannot be trusted "
        "(`equilens uncertainty MODEL FRAMES --method distance --layer NAME` calibrates it).",
        "",
        "| family | model | layer | force error (atoms) | energy error (structures) |",
        "|---|---|---|---:|---:|",
    ]
    best: Dict[str, tuple] = {}
    for (task, model, layer), members in groups.items():
        atoms = np.array([m["atom_spearman"] for m in members], dtype=float)
        energy = np.array([m["energy_spearman"] for m in members], dtype=float)
        lines.append(f"| {task} | {model} | {layer} | {_mean(atoms)} | {_mean(energy)} |")
        value = float(np.nanmean(atoms)) if np.isfinite(atoms).any() else -np.inf
        if task not in best or value > best[task][0]:
            best[task] = (value, f"{model}/{layer}")
    lines.append("")
    for task, (value, where) in best.items():
        if np.isfinite(value):
            lines.append(
                f"- {task}: **{where}** (Spearman {value:.2f} with the atoms' force errors)."
            )
    return lines


def _mean(values: np.ndarray) -> str:
    values = values[np.isfinite(values)]
    if not len(values):
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def write_uncertainty(folder, rows: List[dict]) -> None:
    """``uncertainty.csv``: the rows of :func:`layer_uncertainty`."""
    import csv

    from ..storage import atomic_write

    with atomic_write(folder / "uncertainty.csv", "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in COLUMNS})
