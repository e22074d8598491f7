"""Step 2: put the best layer of each architecture side by side and choose one.

    python workflows/latent_study/2_compare.py [--quick] [--output DIR]

For each architecture of the sweep, its best-ranked layer in the study's
scorecard; beside them the SOAP descriptor (the PCA every BPNN reads). On
the oxygen atoms of the analysis frames (water, hydroxyl and oxide: where
the chemistry of the interface is): a PCA map of each layer coloured by
the oxygen's state, the score of every physical label, and the CKA between
the layers. Writes DIR/<name>/choice.png, choice.md (the choice in words)
and choice.json (read by step 3).
"""

from __future__ import annotations

import csv
import json

import numpy as np
from common import arguments, study_config, study_folder
from sklearn.decomposition import PCA

from equilens.analysis.labels import O_STATES, atom_labels
from equilens.analysis.latents import latents
from equilens.analysis.measures import linear_cka
from equilens.data.io import with_species
from equilens.data.splits import load_splits
from equilens.figures import pyplot, save_figure
from equilens.models import load

#: a model learned when its validation force error is below this fraction of
#: its composition baseline's (the study report's criterion)
LEARNED = 0.8


def candidates(folder, config):
    """The best layer of each architecture, and each architecture's fit."""
    with open(folder / "scorecard.csv") as handle:
        rows = list(csv.DictReader(handle))
    chosen = {}
    for entry in config.sweep:
        layers = [r for r in rows if r["feature_set"].startswith(f"{entry.name}/")]
        if not layers:
            continue
        best = min(layers, key=lambda r: float(r["mean_rank"]))
        ratios = []
        for seed in config.seeds:
            summary = json.loads((folder / "models" / entry.name / f"seed{seed}" /
                                  "metrics.json").read_text())  # fmt: skip
            model = summary["metrics"]["validation"]["force_rmse_eV_per_A"]
            base = summary["baselines"]["composition"]["validation"]["force_rmse_eV_per_A"]
            ratios.append((model, model / base))
        chosen[entry.name] = {
            "layer": best["feature_set"],
            "row": best,
            "force": float(np.mean([r[0] for r in ratios])),
            "learned": all(r[1] < LEARNED for r in ratios),
        }
    soap = next(r for r in rows if r["feature_set"] == "soap-pca/descriptor")
    return chosen, soap, rows


def oxygen_layers(folder, config, chosen):
    """The chosen layers (first seed) and SOAP's PCA, on the oxygen atoms."""
    splits = load_splits(config.data, with_species(config.read, config.descriptor.species))
    frames = splits["train"].frames[: config.analysis_frames]
    numbers = np.concatenate([f.numbers for f in frames])
    seed = config.seeds[0]
    sets = {}
    for entry, info in chosen.items():
        model = load(folder / "models" / entry / f"seed{seed}" / "model.pt")
        layers = latents(model, frames, per_species=False)
        layer = info["layer"].split("/", 1)[1]
        sets[info["layer"]] = np.asarray(layers[layer].block().values)[numbers == 8]
        if "soap-pca/descriptor" not in sets and "input" in layers:
            sets["soap-pca/descriptor"] = np.asarray(layers["input"].block().values)[numbers == 8]
    labels = atom_labels(frames)
    return sets, {k: np.asarray(v)[numbers == 8] for k, v in labels.items()}


def figure(folder, sets, labels, rows):
    """choice.png: maps, label scores and CKA of the compared layers."""
    plt = pyplot()
    names = list(sets)
    fig = plt.figure(figsize=(3.4 * len(names), 7.0))
    grid = fig.add_gridspec(2, len(names))
    state = labels["o_state"]
    for column, name in enumerate(names):
        ax = fig.add_subplot(grid[0, column])
        values = sets[name]
        coordinates = PCA(n_components=min(2, values.shape[1])).fit_transform(values)
        if coordinates.shape[1] == 1:
            coordinates = np.hstack([coordinates, np.zeros_like(coordinates)])
        for index, value in enumerate(np.unique(state)):
            mask = state == value
            ax.scatter(*coordinates[mask].T, s=6, color=plt.get_cmap("tab10")(index),
                       label=O_STATES.get(value, value))  # fmt: skip
        ax.set_title(f"{name}\nPCA of the O atoms", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if column == 0:
            ax.legend(fontsize=7, markerscale=2)
    by_name = {r["feature_set"]: r for r in rows}
    columns = [c for c in rows[0] if c.startswith("decode_") and c.endswith("@pc")]
    ax = fig.add_subplot(grid[1, : max(1, len(names) - 1)])
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        scores = [float(by_name[name].get(c) or np.nan) for c in columns]
        ax.bar(np.arange(len(columns)) + index * width, scores, width, label=name)
    ax.set_xticks(np.arange(len(columns)) + 0.4 - width / 2)
    ax.set_xticklabels([c[len("decode_") : -len("@pc")] for c in columns], rotation=30, fontsize=8)
    ax.set_ylabel("decoding score on the leading components")
    ax.set_title("how well each layer exposes each label (higher is better)", fontsize=9)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[1, -1])
    cka = np.array([[linear_cka(sets[a], sets[b]) for b in names] for a in names])
    image = ax.imshow(cka, vmin=0, vmax=1, cmap="magma")
    ax.set_xticks(range(len(names)))
    ax.set_yticks(range(len(names)))
    short = [n.split("/")[0][:12] for n in names]
    ax.set_xticklabels(short, rotation=45, fontsize=7)
    ax.set_yticklabels(short, fontsize=7)
    ax.set_title("CKA between the layers (O atoms)", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return save_figure(fig, folder / "choice.png", dpi=100), cka


def verdict(chosen, soap, cka, names) -> tuple:
    """The choice and its justification in words."""
    learned = {k: v for k, v in chosen.items() if v["learned"]}
    pool = learned or chosen
    entry = min(pool, key=lambda k: float(pool[k]["row"]["mean_rank"]))
    best = pool[entry]
    row = best["row"]
    lines = [
        f"# Choice: {best['layer']}",
        "",
        f"**{best['layer']}** has the best mean rank over the physical labels among the "
        f"{'architectures whose models learned' if learned else 'architectures'} "
        f"({float(row['mean_rank']):.2f} ± "
        f"{float(row['mean_rank_std']):.2f} over seeds, first in "
        f"{100 * float(row['top1_fraction']):.0f}% of the seeds; SOAP's PCA: "
        f"{float(soap['mean_rank']):.2f}).",
        "",
        "| architecture | best layer | mean rank | validation force RMSE (eV/Å) | learned |",
        "|---|---|---:|---:|---|",
    ]
    for name, info in chosen.items():
        lines.append(
            f"| {name} | {info['layer']} | {float(info['row']['mean_rank']):.2f} | "
            f"{info['force']:.3f} | {'yes' if info['learned'] else 'no'} |"
        )
    if not learned:
        lines += ["", "No model learned (force error above 0.8 of the composition baseline's): "
                  "the choice is not worth defending; train longer (drop --quick)."]  # fmt: skip
    index = names.index(best["layer"])
    if "soap-pca/descriptor" in names:
        similarity = cka[index, names.index("soap-pca/descriptor")]
        lines += ["", f"Its CKA with SOAP's PCA on the oxygen atoms is {similarity:.2f}: "
                  + ("it reorganises the descriptor." if similarity < 0.7 else
                     "it stays close to the descriptor.")]  # fmt: skip
    accurate = min(chosen, key=lambda k: chosen[k]["force"])
    force = chosen[accurate]["force"]
    lines += ["", f"The most accurate architecture is {accurate} ({force:.3f} eV/Å); "
              f"step 3 trains {entry} for longer."]  # fmt: skip
    return entry, best["layer"], lines


if __name__ == "__main__":
    args = arguments(__doc__.splitlines()[0])
    config = study_config(args)
    folder = study_folder(config)
    chosen, soap, rows = candidates(folder, config)
    sets, labels = oxygen_layers(folder, config, chosen)
    path, cka = figure(folder, sets, labels, rows)
    entry, layer, lines = verdict(chosen, soap, cka, list(sets))
    (folder / "choice.md").write_text("\n".join(lines) + "\n")
    (folder / "choice.json").write_text(json.dumps({"entry": entry, "layer": layer}))
    print("\n".join(lines))
    print(f"-> {path}, {folder / 'choice.md'}")
