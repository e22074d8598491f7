"""Outputs of the study: aggregated scorecard, tables, figures, chemiscope file, report."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List

import numpy as np

from ..config import to_mapping
from ..figures import pyplot, save_figure
from ..storage import atomic_write, save_json
from ..tensormaps import atom_tensormap, frame_atoms
from .config import REFERENCES


def aggregate(rows: List[dict]) -> List[dict]:
    """Mean and spread over seeds of each feature set's scores and rank;
    ``top1_fraction``: how often it is the best model layer (references
    excluded) of a seed."""
    best_of_seed: Dict[int, str] = {}
    for row in sorted(rows, key=lambda r: r["place"]):
        if row["feature_set"] not in REFERENCES:
            best_of_seed.setdefault(row["seed"], row["feature_set"])
    by_set: Dict[str, List[dict]] = {}
    for row in rows:
        by_set.setdefault(row["feature_set"], []).append(row)
    aggregated = []
    for name, group in by_set.items():
        entry = {"feature_set": name, "seeds": len(group)}
        for metric in group[0]:
            if metric in ("feature_set", "seed", "place"):
                continue
            values = np.array([g[metric] for g in group], dtype=np.float64)
            entry[metric] = float(np.nanmean(values)) if np.any(np.isfinite(values)) else np.nan
            if metric == "mean_rank":
                entry["mean_rank_std"] = float(np.std(values))
        entry["top1_fraction"] = float(
            np.mean([best_of_seed.get(g["seed"]) == name for g in group])
        )
        aggregated.append(entry)
    aggregated.sort(key=lambda e: float(e["mean_rank"]))  # type: ignore[arg-type]
    return aggregated


def write_csv(path: Path, rows: List[dict]) -> None:
    names = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_write(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


def write_tables(folder, config, rows_per_seed, aggregated, metrics, gfre, timings) -> None:
    from ..export.plots import plot_matrix

    write_csv(folder / "scorecard_seeds.csv", rows_per_seed)
    write_csv(folder / "scorecard.csv", aggregated)
    save_json(folder / "metrics.json", {"models": metrics, "timings_s": timings})
    save_json(folder / "config.json", to_mapping(config))
    metrics_names = [
        m for m in aggregated[0] if m.startswith(("decode_", "gfre_", "trust", "pca_"))
    ]
    matrix = np.array([[row.get(m, np.nan) for m in metrics_names] for row in aggregated])
    plot_matrix(
        matrix,
        [row["feature_set"] for row in aggregated],
        folder / "scorecard.png",
        title="scorecard (mean over seeds)",
        columns=metrics_names,
    )


def plot_layer_maps(folder: Path, layers: Dict[str, np.ndarray], references, labels) -> None:
    from sklearn.decomposition import PCA

    plt = pyplot()

    sets = {**layers, **references}
    shown = [n for n in ("height", "o_state", "cn_fe_o", "hbonds") if n in labels]
    fig, axes = plt.subplots(
        len(sets), len(shown), figsize=(3.2 * len(shown), 3.0 * len(sets)), squeeze=False
    )
    for row, (name, values) in enumerate(sets.items()):
        coordinates = PCA(n_components=2).fit_transform(values - values.mean(0))
        for column, label in enumerate(shown):
            ax = axes[row, column]
            points = ax.scatter(*coordinates.T, c=labels[label], s=2, cmap="viridis")
            ax.set_title(f"{name}: {label}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(points, ax=ax, shrink=0.7)
    save_figure(fig, folder / "layer_maps.png", dpi=90)


def export_study(config, frames, layers, references, labels, atomic_energy, first) -> Path:
    """The study's chemiscope file: every compared layer's map and all labels."""
    from ..export.chemiscope import export_chemiscope

    system, atom, numbers = frame_atoms(frames)
    tensors = {}
    for name, values in {
        **{
            f"{k.split('/')[0]}/{n}": v
            for k, ls in layers.items()
            if k.endswith(f"/seed{config.seeds[0]}")
            for n, v in ls.items()
        },
        **references,
    }.items():
        tensors[name] = atom_tensormap(values, system, atom, numbers, per_species=False)
    properties = {k: v for k, v in labels.items() if k != "species"}
    properties["atomic energy"] = atomic_energy[first]
    return export_chemiscope(
        Path(config.chemiscope_dir) / f"{config.name}.json.gz",
        frames,
        layers=tensors,
        atom_properties=properties,
        units={"height": "Å", "force": "eV/Å", "atomic energy": "eV"},
        name=f"equilens study {config.name}",
        description="Every compared layer of the study's models (first seed) and two "
        "references, as PCA maps over the same atoms, with physical labels. Switch the map "
        "axes to compare layers.",
        hypers={
            "descriptor": config.descriptor.featomic_dict(),
            "sweep": [to_mapping(a) for a in config.sweep],
        },
        color="height",
    )


def write_report(folder, config, aggregated, metrics, gfre, chemiscope, timings) -> Path:
    # the optimal layer is chosen among the models; references are context
    best = next(row for row in aggregated if row["feature_set"] not in REFERENCES)
    reference_places = ", ".join(
        f"{row['feature_set']} {place + 1}"
        for place, row in enumerate(aggregated)
        if row["feature_set"] in REFERENCES
    )
    decoded = sorted(
        ((k[len("decode_") :], v) for k, v in best.items() if k.startswith("decode_")),
        key=lambda item: -item[1] if np.isfinite(item[1]) else 0,
    )
    lines = [
        f"# equilens study: {config.name}",
        "",
        f"Data: `{config.data.train}`; {len(config.sweep)} architectures x "
        f"{len(config.seeds)} seeds; descriptor preset `{config.descriptor.preset}`.",
        "",
        "## Most interpretable layer",
        "",
        f"**{best['feature_set']}**: mean rank {best['mean_rank']:.2f} "
        f"(spread over seeds {best['mean_rank_std']:.2f}; first in "
        f"{100 * best['top1_fraction']:.0f}% of the seeds), out of "
        f"{len(aggregated)} feature sets; the references place {reference_places}.",
        "Labels it decodes best: "
        + ", ".join(f"{name} ({value:.2f})" for name, value in decoded[:4])
        + ".",
        "",
        "## Scorecard (mean over seeds, best first)",
        "",
    ]
    columns = ["feature_set", "mean_rank", "mean_rank_std"] + [
        k for k in aggregated[0] if k.startswith(("decode_", "gfre_", "trust", "pca_"))
    ]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in aggregated:
        lines.append(
            "| "
            + " | ".join(
                str(row[c]) if isinstance(row[c], str) else f"{row[c]:.3f}" for c in columns
            )
            + " |"
        )
    lines += [
        "",
        "## Models",
        "",
        "| model | validation energy RMSE (meV/atom) | force RMSE (eV/Å) |",
        "|---|---:|---:|",
    ]
    for key, values in metrics.items():
        v = values.get("validation", {})
        lines.append(
            f"| {key} | {v.get('energy_rmse_meV_per_atom', float('nan')):.2f} | "
            f"{v.get('force_rmse_eV_per_A', float('nan')):.3f} |"
        )
    lines += ["", "## GFRE between layers (first seed, per species)", ""]
    for z in gfre:
        lines.append(f"- center type {z}: `gfre/center_type_{z}/heatmap_gfre.png`")
    lines += [
        "",
        "## Files",
        "",
        "`scorecard.csv`, `scorecard_seeds.csv`, `scorecard.png`, `layer_maps.png`, "
        "`metrics.json`, `models/*/seed*/parity_*.png`, and the chemiscope file "
        f"`{chemiscope}` (load it in chemiscope.org).",
        "",
        "Stage timings (s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in timings.items() if isinstance(v, float)),
    ]
    path = folder / "report.md"
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path
