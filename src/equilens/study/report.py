"""Outputs of the study: aggregated scorecard, tables, figures, chemiscope file, report."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Dict, List

import numpy as np

from ..analysis.labels import CATEGORICAL
from ..analysis.scorecard import Scorecard
from ..config import to_mapping
from ..storage import atomic_write, save_json
from .config import is_reference
from .families import LEARNED, families_section, force_ratio
from .uncertainty import uncertainty_section


def aggregate(rows: List[dict]) -> List[dict]:
    """Mean and spread over seeds of each feature set's scores and ranks;
    ``top1_fraction``: how often it is the best model layer (references
    and descriptors excluded) of a seed. Sorted by the mean rank over the physical labels."""
    best_of_seed: Dict[int, str] = {}
    for row in sorted(rows, key=lambda r: r["place"]):
        if not is_reference(row["feature_set"]):
            best_of_seed.setdefault(row["seed"], row["feature_set"])
    by_set: Dict[str, List[dict]] = {}
    for row in rows:
        by_set.setdefault(row["feature_set"], []).append(row)
    aggregated = []
    for name, group in by_set.items():
        entry: Dict[str, object] = {"feature_set": name, "seeds": len(group)}
        entry["decoding"] = group[0].get("decoding", "shared")
        for metric in score_columns(group):
            values = np.array([g.get(metric, np.nan) for g in group], dtype=np.float64)
            entry[metric] = float(np.nanmean(values)) if np.any(np.isfinite(values)) else np.nan
            if metric == "mean_rank":
                entry["mean_rank_std"] = float(np.nanstd(values))
        entry["top1_fraction"] = float(
            np.mean([best_of_seed.get(g["seed"]) == name for g in group])
        )
        aggregated.append(entry)
    aggregated.sort(key=lambda e: _sort_key(e["mean_rank"]))
    return aggregated


def _sort_key(value) -> float:
    return float(value) if np.isfinite(value) else float("inf")


def score_columns(rows: List[dict]) -> List[str]:
    """The numeric score columns of ``rows``, in first-seen order."""
    skip = ("feature_set", "seed", "place", "decoding", "seeds")
    return [k for k in dict.fromkeys(k for r in rows for k in r) if k not in skip]


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
    columns = [c for c in score_columns(aggregated) if c.startswith(("decode_", "gfre_"))]
    matrix = np.array([[row.get(m, np.nan) for m in columns] for row in aggregated])
    # one colour, one meaning: darker is better in every column
    lower = np.array([c.startswith("gfre_") for c in columns])
    plot_matrix(
        matrix,
        [str(row["feature_set"]) for row in aggregated],
        folder / "scorecard.png",
        title="scorecard (mean over seeds; darker is better in every column)\ndecode_*: R² "
        "or balanced accuracy (higher: the label is read more directly); gfre_*: "
        "reconstruction error (lower: the target is more nearly a linear function of the "
        "source; shaded as 1 - GFRE)",
        columns=columns,
        shade=np.where(lower, 1.0 - matrix, matrix),
    )


def label_champions(aggregated: List[dict]) -> List[tuple]:
    """For each physical label: the feature set that decodes it best at equal
    dimension (``decode_<label>@pc``), its value, and the best at full width."""
    result = []
    for column in score_columns(aggregated):
        if not (column.startswith("decode_") and column.endswith("@pc")):
            continue
        label = column[len("decode_") : -len("@pc")]
        scored = [r for r in aggregated if np.isfinite(r.get(column, np.nan))]
        if not scored:
            continue
        best = max(scored, key=lambda r: r[column])
        full = max(scored, key=lambda r: r.get(f"decode_{label}", -np.inf))
        result.append((label, best, full))
    return result


def write_report(
    folder, config, aggregated, summaries, gfre, equivariant, chemiscope, timings, uncertainty=()
) -> Path:
    """``report.md``: the verdicts, who encodes what, the scorecard, the models."""
    models = [row for row in aggregated if not is_reference(row["feature_set"])]
    best = models[0]
    places = {row["feature_set"]: place + 1 for place, row in enumerate(aggregated)}
    references = ", ".join(
        f"{row['feature_set']} {places[row['feature_set']]}"
        for row in aggregated
        if is_reference(row["feature_set"])
    )
    by_output = sorted(
        (r for r in models if np.isfinite(r.get("output_rank", np.nan))),
        key=lambda r: r["output_rank"],
    )
    lines = [
        f"# equilens study: {config.name}",
        "",
        f"Data: `{config.data.train}`; {len(config.sweep)} architectures x "
        f"{len(config.seeds)} training seeds (initial weights and batch order; the "
        "descriptors and compressions of equilens' families are the same for every seed, "
        "so the spreads below are the training's); descriptor preset "
        f"`{config.descriptor.preset}`"
        + (
            " with " + ", ".join(f"`{k}: {v}`" for k, v in config.descriptor.hypers.items())
            if config.descriptor.hypers
            else ""
        )
        + (f"; external models: {', '.join(config.models)}." if config.models else "."),
        "",
        "## Most interpretable layer (physical labels only)",
        "",
        f"**{best['feature_set']}**: mean rank {best['mean_rank']:.2f} over the physical "
        f"labels decoded at full width and on {Scorecard.n_components} leading components "
        "(spread over seeds "
        f"{best['mean_rank_std']:.2f}; first in {100 * best['top1_fraction']:.0f}% of the "
        f"seeds), out of {len(aggregated)} feature sets; the references and the models' "
        f"fixed inputs (`*/descriptor`, learned by no model) place {references}. "
        "Decoding is done species by species for every set whenever some sets have "
        "per-species coordinates (per-species networks and compressions), so that no set "
        "is credited for differences between species; over all atoms otherwise.",
    ]
    if by_output:
        lines += [
            "",
            f"Closest to its own model's output (its atomic energy; scored apart, since a last "
            f"hidden layer decodes it linearly by construction): **{by_output[0]['feature_set']}** "
            f"(output rank {by_output[0]['output_rank']:.2f}).",
        ]
    champions = label_champions(aggregated)
    categorical = [label for label, _, _ in champions if label in CATEGORICAL]
    lines += ["", "## Which layer encodes which label", ""]
    lines += [
        "The value is the cross-validated balanced accuracy for the categorical labels "
        f"({', '.join(categorical) or 'none here'}; chance is one over the "
        "number of classes) and R² for the others (0: nothing of the label is linear in the "
        "layer): a label whose best value stays low is one that no set exposes linearly, "
        "not one that its best set encodes.",
        "",
    ]
    lines += ["| label | best at equal dimension | value | best at full width | value |"]
    lines += ["|---|---|---:|---|---:|"]
    for label, top, full in champions:
        lines.append(
            f"| {label} | {top['feature_set']} | {top[f'decode_{label}@pc']:.3f} | "
            f"{full['feature_set']} | {full[f'decode_{label}']:.3f} |"
        )
    lines += scorecard_table(aggregated)
    lines += families_section(config, aggregated, summaries)
    lines += uncertainty_section(list(uncertainty))
    lines += _models_section(folder, summaries, gfre, equivariant, chemiscope, timings)
    path = folder / "report.md"
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def scorecard_table(aggregated: List[dict]) -> List[str]:
    """The scorecard in a table that fits a page: the ranks and the GFRE
    from the descriptor; every label's score is in ``scorecard.csv``."""
    lines = [
        "", "## Scorecard (mean over seeds, best first)", "",
        "Mean rank over the physical labels (± its spread over seeds), how often the set "
        "ranks first, its rank at decoding its model's own output, and the GFRE from the "
        "SOAP descriptor to it (0: a linear function of SOAP; fitted within each species when "
        "the decoding is per species). The score of every label, at "
        "full width and on the leading components, is in `scorecard.csv` (per seed: "
        "`scorecard_seeds.csv`) and drawn in `scorecard.png`.",
        "",
        "| feature set | decoding | mean rank | first | output rank | GFRE from SOAP |",
        "|---|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    for row in aggregated:
        first = row.get("top1_fraction", np.nan)
        lines.append(
            f"| {row['feature_set']} | {row.get('decoding', '')} | "
            f"{_cell(row.get('mean_rank', np.nan))} ± {_cell(row.get('mean_rank_std', np.nan))} | "
            f"{100 * first:.0f}% | {_cell(row.get('output_rank', np.nan))} | "
            f"{_cell(row.get('gfre_from_descriptor', np.nan))} |"
        )
    return lines


def equivariant_section(equivariant) -> List[str]:
    """The equivariant GFRE between the covariant blocks of the equivariant
    layers, one table per lambda (mean over center types, weighted by atoms)."""
    if not equivariant:
        return []
    lines = [
        "",
        "## Covariant blocks compared (equivariant GFRE, first seed)",
        "",
        "The scorecard reads equivariant layers through invariant summaries (the norms of "
        "their covariant channels). Here their lambda > 0 blocks themselves are compared: the "
        "error of the best linear map, shared by the 2 lambda + 1 components, from the row "
        "layer to the column layer (0: the column is a linear function of the row; about 1: "
        "nothing of it is), averaged over center types weighted by atoms.",
    ]
    for lam, comparison in equivariant.items():
        counts = ", ".join(f"{z}: {n}" for z, n in comparison.atoms.items())
        lines += ["", f"lambda = {lam} (atoms per center type {counts}; "
                  f"`equivariant_gfre/lambda_{lam}/`)", ""]  # fmt: skip
        lines.append("| source → target | " + " | ".join(comparison.names) + " |")
        lines.append("|---|" + "---:|" * len(comparison.names))
        for name, row in zip(comparison.names, comparison.mean):
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    return lines


def _cell(value) -> str:
    if isinstance(value, str):
        return value
    return "-" if not np.isfinite(value) else f"{value:.3f}"


def _models_section(folder, summaries, gfre, equivariant, chemiscope, timings) -> List[str]:
    lines = [
        "",
        "## Models",
        "",
        "Validation errors of every model and of its composition-only baseline (per-species "
        "energies, zero forces). A model whose force error is not well below the "
        f"baseline's (ratio above {LEARNED:.1f}) learned little: its layers are not read as "
        "interpretable.",
        "",
        "| model | energy RMSE (meV/atom) | force RMSE (eV/Å) | baseline force RMSE | "
        "force / baseline | learned |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for key, summary in summaries.items():
        v = summary["metrics"].get("validation", {})
        ratio = force_ratio(summary)
        base = summary.get("baselines", {}).get("composition", {}).get("validation", {})
        lines.append(
            f"| {key} | {v.get('energy_rmse_meV_per_atom', float('nan')):.2f} | "
            f"{v.get('force_rmse_eV_per_A', float('nan')):.3f} | "
            f"{base.get('force_rmse_eV_per_A', float('nan')):.3f} | {ratio:.2f} | "
            f"{'yes' if ratio < LEARNED else 'no'} |"
        )
    lines += ["", "## GFRE between layers (first seed, per species or all atoms)", ""]
    for z in gfre:
        where = "all atoms (shared coordinates)" if z == "all" else f"center type {z}"
        lines.append(f"- {where}: `gfre/center_type_{z}/heatmap_gfre.png`")
    lines += equivariant_section(equivariant)
    lines += [
        "",
        "## Files: what to look at",
        "",
        f"- [`{chemiscope}`]({os.path.relpath(chemiscope, folder)}): load it in "
        "chemiscope.org; it opens on the most "
        "interpretable layer's map coloured by height: switch the colour to the labels "
        "and the axes to other layers, and click a point to see its atom in the structure.",
        "- [`layer_maps.png`](layer_maps.png): the best layers' PCA maps, species by species "
        "for per-species layers, coloured by the labels that vary on those atoms: a readable "
        "layer orders the atoms by them along its leading axes.",
        "- [`scorecard.png`](scorecard.png): every set's score for every label (rows best "
        "first): look for the labels that only some layers encode.",
        "- `gfre/center_type_*/heatmap_gfre.png`: how much of the column layer is a linear "
        "function of the row layer; an asymmetric pair means one layer holds information "
        "the other lost.",
        "- `models/<entry>/seed<seed>/parity_*.png` and `learning_curve.png`: check that "
        "each model fits before reading its layers.",
        "- `scorecard.csv`, `scorecard_seeds.csv`, `metrics.json`, `config.json`: the "
        "numbers behind this report.",
        "",
        "Stage timings (s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in timings.items() if isinstance(v, float)),
    ]
    return lines
