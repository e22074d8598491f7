"""The latent-space study: architectures x layers x seeds, scored and mapped.

``equilens study [CONFIG.yaml]`` runs, stage by stage:

1. **data**: read the labelled frames (default: the embedded GFN1-xTB
   iron/water set in ``data/``);
2. **train**: every architecture of the sweep with every seed
   (:func:`equilens.train_potential.train_potential`; a finished run is
   reloaded from its folder, descriptors and features come from the cache);
3. **layers**: every layer of every model on the analysis frames, plus two
   references on the same atoms: an autoencoder of the SOAP descriptor
   (unsupervised) and PCovR of it against the atomic energy (supervised,
   linear);
4. **labels**: physical labels per atom (:mod:`equilens.labels`), the
   model's atomic energy and the reference force magnitude;
5. **scorecard**: decodability of each label, GFRE from SOAP and towards the
   atomic energy, trustworthiness and 2D variance of the map
   (:class:`~equilens.scorecard.Scorecard`), for every (model, layer, seed);
   ranks averaged over seeds, with their spread;
6. **compare**: GFRE between the layers of the first seed's models and SOAP,
   species by species;
7. **outputs**: ``results/<name>/`` (``scorecard.csv``,
   ``scorecard_seeds.csv``, ``gfre/``, ``metrics.json``, plots, ``report.md``)
   and ``chemiscope_out/<name>.json.gz`` with every compared layer's map and
   all labels.

A failure names the stage (``StudyError: stage 'train' (model deep, seed
1): ...``).
"""

from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from .config import from_mapping, load_yaml, to_mapping
from .data.io import ReadOptions
from .data.splits import SplitConfig, load_splits
from .descriptors import DescriptorConfig, compute_soap
from .errors import ConfigError, EquilensError
from .labels import CATEGORICAL, LabelConfig, atom_labels
from .latents import latents
from .models.bpnn import BPNNConfig
from .storage import atomic_write, save_json
from .tensors import stack_blocks
from .train_potential import CompressionConfig, PotentialConfig, train_potential
from .training import TrainConfig

EMBEDDED_DATA = "data/iron_water_xtb.extxyz"
# feature sets that are references, not layers of the trained models
REFERENCES = ("autoencoder/latent", "pcovr/latent", "soap-pca/descriptor")


class StudyError(EquilensError):
    """A stage of the study failed; the message names the stage and input."""


@dataclass(frozen=True)
class ArchitectureConfig:
    """One point of the sweep: a name and a BPNN."""

    name: str
    model: BPNNConfig = field(default_factory=BPNNConfig)


def _default_sweep() -> Tuple[ArchitectureConfig, ...]:
    return (
        ArchitectureConfig("silu-2x32", BPNNConfig(hidden=(32, 32), activation="silu")),
        ArchitectureConfig("silu-2x64", BPNNConfig(hidden=(64, 64), activation="silu")),
        ArchitectureConfig("silu-3x64", BPNNConfig(hidden=(64, 64, 64), activation="silu")),
        ArchitectureConfig(
            "tanh-2x64-bottleneck8",
            BPNNConfig(hidden=(64, 64), activation="tanh", bottleneck=8, layer_norm=True),
        ),
    )


@dataclass(frozen=True)
class StudyConfig:
    """Everything ``equilens study`` reads from its YAML file."""

    name: str = "default"
    data: SplitConfig = field(
        default_factory=lambda: SplitConfig(train=EMBEDDED_DATA, validation_fraction=0.15)
    )
    read: ReadOptions = field(default_factory=lambda: ReadOptions(require_forces=True))
    descriptor: DescriptorConfig = field(
        default_factory=lambda: DescriptorConfig(preset="small", species=(1, 8, 26))
    )
    compression: CompressionConfig = field(default_factory=lambda: CompressionConfig(64))
    training: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=40, learning_rate=1e-3, scheduler="cosine", batch_size=8
        )
    )
    sweep: Tuple[ArchitectureConfig, ...] = field(default_factory=_default_sweep)
    seeds: Tuple[int, ...] = (0, 1, 2)
    labels: LabelConfig = field(default_factory=LabelConfig)
    analysis_frames: int = 200
    autoencoder_width: int = 8
    autoencoder_epochs: int = 200
    max_samples: int = 4000
    output_dir: str = "results"
    chemiscope_dir: str = "chemiscope_out"

    def __post_init__(self):
        if len(self.seeds) < 1:
            raise ConfigError("the study needs at least one seed")
        names = [a.name for a in self.sweep]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"sweep architectures need unique names, got {names}")


def load_study_config(path: Optional[str]) -> StudyConfig:
    """The default configuration, or one read from YAML (unknown keys named)."""
    if path is None:
        return StudyConfig()
    return from_mapping(StudyConfig, load_yaml(path), where=str(path))


def run_study(config: StudyConfig, progress: bool = True) -> Path:
    """Run every stage; returns the results folder."""
    folder = Path(config.output_dir) / config.name
    folder.mkdir(parents=True, exist_ok=True)
    timings: Dict[str, float] = {}

    def stage(name: str):
        print(f"[study {config.name}] {name}", flush=True)
        timings[name] = time.perf_counter()

    def done(name: str):
        timings[name] = time.perf_counter() - timings[name]

    stage("data")
    try:
        splits = load_splits(config.data, config.read)
    except EquilensError as error:
        raise StudyError(f"stage 'data' ({config.data.train}): {error}") from error
    analysis = splits["train"].subset(range(min(config.analysis_frames, len(splits["train"]))))
    frames = analysis.frames
    done("data")

    stage("train")
    potentials, metrics = {}, {}
    for architecture in config.sweep:
        for seed in config.seeds:
            key = f"{architecture.name}/seed{seed}"
            potential_config = PotentialConfig(
                data=config.data,
                name=key,
                read=config.read,
                descriptor=config.descriptor,
                compression=config.compression,
                model=architecture.model,
                training=dataclasses.replace(config.training, seed=seed),
                output_dir=str(folder / "models" / architecture.name / f"seed{seed}"),
            )
            try:
                potentials[key], summary = train_potential(potential_config, progress=progress)
            except EquilensError as error:
                raise StudyError(
                    f"stage 'train' (model {architecture.name}, seed {seed}): {error}"
                ) from error
            metrics[key] = summary["metrics"]
    done("train")

    stage("layers")
    species = tuple(config.descriptor.species or potentials[next(iter(potentials))].species)
    soap_tensor = compute_soap(frames, species, config.descriptor.featomic_dict())
    soap, _ = stack_blocks(soap_tensor.keys_to_samples("center_type"), "soap")
    layers: Dict[str, Dict[str, np.ndarray]] = {}
    atomic_energy: Dict[str, np.ndarray] = {}
    for key, potential in potentials.items():
        model_layers = latents(potential, frames, per_species=False)
        values = {n: stack_blocks(t, n)[0] for n, t in model_layers.items()}
        atomic_energy[key] = values["atomic_energy"][:, 0]
        layers[key] = {n: v for n, v in values.items() if n != "atomic_energy"}
    first = f"{config.sweep[0].name}/seed{config.seeds[0]}"
    references = _references(soap, atomic_energy[first], config)
    done("layers")

    stage("labels")
    labels = atom_labels(frames, config.labels)
    labels["force"] = np.concatenate([np.linalg.norm(f, axis=1) for f in analysis.forces])
    done("labels")

    stage("scorecard")
    from .scorecard import Scorecard

    rows_per_seed = []
    for seed in config.seeds:
        feature_sets = {}
        for index, architecture in enumerate(config.sweep):
            key = f"{architecture.name}/seed{seed}"
            for layer, values in layers[key].items():
                if layer == "descriptor":
                    # the same PCA of SOAP for every architecture of a seed
                    if index == 0:
                        feature_sets["soap-pca/descriptor"] = values
                    continue
                feature_sets[f"{architecture.name}/{layer}"] = values
        feature_sets.update(references)
        seed_labels = {**labels, "atomic_energy": atomic_energy[first]}
        card = Scorecard(
            seed_labels,
            categorical=[c for c in CATEGORICAL if c in seed_labels],
            max_samples=config.max_samples,
            seed=seed,
        ).fit(feature_sets, descriptor=soap, target=atomic_energy[first])
        for row in card.table():
            rows_per_seed.append({"seed": seed, **row})
    aggregated = _aggregate(rows_per_seed)
    done("scorecard")

    stage("compare")

    from .compare import compare_by_species, save_comparison

    centre_types = np.concatenate([f.numbers for f in frames])
    samples = np.array(
        [[s, a, z] for s, f in enumerate(frames) for a, z in enumerate(f.numbers)], dtype=np.int32
    )

    def as_tensor(values):
        return _atom_tensor(values, samples, ["system", "atom", "center_type"])

    compared = {"soap": as_tensor(soap)}
    for architecture in config.sweep:
        for layer, values in layers[f"{architecture.name}/seed{config.seeds[0]}"].items():
            if layer != "descriptor":
                compared[f"{architecture.name}/{layer}"] = as_tensor(values)
    gfre = compare_by_species(
        compared,
        measures=("gfre",),
        n_samples=min(config.max_samples, len(centre_types)),
        seed=config.seeds[0],
    )
    for z, result in gfre.items():
        save_comparison(result, folder / "gfre" / f"center_type_{z}")
    done("compare")

    stage("outputs")
    _plot_maps(folder, layers[first], references, labels)
    chemiscope = _export(config, frames, layers, references, labels, atomic_energy, first)
    done("outputs")
    _write_outputs(folder, config, rows_per_seed, aggregated, metrics, gfre, timings)
    report = _report(folder, config, aggregated, metrics, gfre, chemiscope, timings)
    print(f"[study {config.name}] report -> {report}; chemiscope -> {chemiscope}")
    return folder


def _atom_tensor(values: np.ndarray, samples: np.ndarray, names: List[str]):
    """One-block TensorMap of per-atom ``values`` (properties ``feature``)."""
    from metatensor import Labels, TensorBlock, TensorMap

    block = TensorBlock(
        np.ascontiguousarray(values),
        Labels(names, samples),
        [],
        Labels.range("feature", values.shape[1]),
    )
    return TensorMap(Labels.single(), [block])


def _references(soap: np.ndarray, target: np.ndarray, config: StudyConfig):
    """Unsupervised (autoencoder) and supervised linear (PCovR) references."""
    from skmatter.decomposition import PCovR
    from sklearn.decomposition import PCA

    x = PCA(n_components=min(64, soap.shape[1]), random_state=0).fit_transform(
        (soap - soap.mean(0)) / (soap.std() + 1e-12)
    )
    x = x / (x.std() + 1e-12)
    width = config.autoencoder_width
    with torch.random.fork_rng():
        torch.manual_seed(config.seeds[0])
        encoder = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 64), torch.nn.SiLU(), torch.nn.Linear(64, width)
        ).double()
        decoder = torch.nn.Sequential(
            torch.nn.Linear(width, 64), torch.nn.SiLU(), torch.nn.Linear(64, x.shape[1])
        ).double()
        data = torch.as_tensor(x)
        optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=3e-3)
        generator = torch.Generator().manual_seed(config.seeds[0])
        for _ in range(config.autoencoder_epochs):
            for batch in torch.randperm(len(data), generator=generator).split(512):
                optimizer.zero_grad()
                loss = torch.mean((decoder(encoder(data[batch])) - data[batch]) ** 2)
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            code = encoder(data).numpy()
    y = (target - target.mean()) / (target.std() + 1e-12)
    pcovr = PCovR(mixing=0.5, n_components=width).fit(x, y[:, None]).transform(x)
    return {"autoencoder/latent": code, "pcovr/latent": pcovr}


def _aggregate(rows: List[dict]) -> List[dict]:
    """Mean and spread over seeds of each feature set's scores and rank;
    ``top1_fraction``: how often it is the best model layer (references
    excluded) of a seed."""
    best_of_seed = {}
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
    aggregated.sort(key=lambda e: e["mean_rank"])
    return aggregated


def _write_csv(path: Path, rows: List[dict]) -> None:
    names = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_write(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


def _write_outputs(folder, config, rows_per_seed, aggregated, metrics, gfre, timings) -> None:
    from .plots import plot_matrix

    _write_csv(folder / "scorecard_seeds.csv", rows_per_seed)
    _write_csv(folder / "scorecard.csv", aggregated)
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


def _plot_maps(folder: Path, layers: Dict[str, np.ndarray], references, labels) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

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
    fig.tight_layout()
    fig.savefig(folder / "layer_maps.png", dpi=90)
    plt.close(fig)


def _export(config, frames, layers, references, labels, atomic_energy, first) -> Path:

    from .export import export_chemiscope

    samples = np.array(
        [[s, a] for s, f in enumerate(frames) for a in range(len(f))], dtype=np.int32
    )
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
        tensors[name] = _atom_tensor(values, samples, ["system", "atom"])
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


def _report(folder, config, aggregated, metrics, gfre, chemiscope, timings) -> Path:
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
    for z, result in gfre.items():
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
