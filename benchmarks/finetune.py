"""Fine-tuning against training from scratch: a learning curve on the DFT iron/water data.

Pretrain a BPNN on the embedded GFN1-xTB iron/water set (a cheap level of
theory), fine-tune it on 10, 30, 100 and all 324 DFT training frames of the
reference iron/water data, and train the same architecture from scratch on
the same frames; report test energy and force RMSE on the 41 DFT test frames
for every size, mode and seed, and plot them log-log (mean and spread over
the seeds). Then the latent drift: per layer, GFRE in both directions and
debiased linear CKA between the fine-tuned model and its base, and between
it and the from-scratch model trained on the same frames (largest size,
first seed), species by species on DFT test frames.

Every run gets about the same number of optimisation steps (``--steps``,
epochs = steps / batches per epoch, between ``--min-epochs`` and
``--max-epochs``), so that small sets are not simply under-trained. The
validation set is a fixed seeded 12-frame hold-out of the DFT training file,
the subsets are nested (the first n frames of one seeded permutation).

    python benchmarks/finetune.py [--sizes 10 30 100 324] [--seeds 0 1]

Needs the reference data (``$EQUILENS_DATA`` or ``../shared/data``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import ase.io
import numpy as np

from equilens.config import from_mapping
from equilens.data import ReadOptions, read_dataset, reference_path
from equilens.models.bpnn.config import PotentialConfig
from equilens.models.bpnn.task import train_potential

ARCHITECTURE = {
    "descriptor": {"preset": "default", "species": [1, 8, 26]},
    "compression": {"n_components": 64, "gradient_storage": "float16"},
    "model": {"hidden": [64, 64], "activation": "silu"},
}


def write_subsets(output: Path, sizes, n_validation: int = 12):
    """Nested training subsets and one validation file of the DFT training data."""
    data = read_dataset(reference_path("iron_water/train"), ReadOptions(require_forces=True))
    order = np.random.default_rng(0).permutation(len(data))
    frames = [data.frames[i] for i in order]
    folder = output / "data"
    folder.mkdir(parents=True, exist_ok=True)
    ase.io.write(folder / "validation.extxyz", frames[:n_validation])
    pool = frames[n_validation:]
    paths = {}
    for size in sizes:
        size = min(size, len(pool))
        paths[size] = folder / f"train_{size}.extxyz"
        if not paths[size].exists():
            ase.io.write(paths[size], pool[:size])
    return paths, folder / "validation.extxyz", len(pool)


def config(name, train, validation, output, seed, epochs, finetune=None, cache=None):
    mapping = {
        "task": "potential",
        "name": name,
        "data": {
            "train": str(train),
            "validation": str(validation),
            "test": str(reference_path("iron_water/test")),
        },
        **ARCHITECTURE,
        "training": {
            "epochs": epochs,
            "batch_size": 8,
            "learning_rate": 0.001 if finetune is None else 0.0005,
            "scheduler": "cosine",
            "seed": seed,
        },
        "output_dir": str(output),
        "cache_dir": str(cache),
    }
    if finetune is not None:
        mapping["finetune"] = finetune
        mapping.pop("model")
    return from_mapping(PotentialConfig, mapping)


def pretrain(output: Path, epochs: int, cache: Path) -> Path:
    """The base model: the same architecture on the embedded xTB set."""
    mapping = {
        "task": "potential",
        "name": "xtb_base",
        "data": {"train": "embedded:iron_water_xtb.extxyz", "validation_fraction": 0.1},
        **ARCHITECTURE,
        "training": {"epochs": epochs, "batch_size": 8, "learning_rate": 0.002, "seed": 0},
        "output_dir": str(output / "base"),
        "cache_dir": str(cache),
    }
    train_potential(from_mapping(PotentialConfig, mapping), progress=False)
    return output / "base" / "model.pt"


def plot(results, path: Path) -> None:
    from equilens.figures import pyplot

    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for mode, colour in (("scratch", "tab:grey"), ("finetune", "tab:blue")):
        rows = [r for r in results if r["mode"] == mode]
        sizes = sorted({r["frames"] for r in rows})
        for axis, key in zip(axes, ("energy_rmse_meV_per_atom", "force_rmse_eV_per_A")):
            values = [[r[key] for r in rows if r["frames"] == n] for n in sizes]
            mean = [np.mean(v) for v in values]
            axis.plot(sizes, mean, "o-", color=colour, label=mode)
            axis.fill_between(
                sizes, [min(v) for v in values], [max(v) for v in values], color=colour, alpha=0.25
            )
    for axis, label in zip(axes, ("test energy RMSE (meV/atom)", "test force RMSE (eV/Å)")):
        axis.set(xscale="log", yscale="log", xlabel="DFT training frames", ylabel=label)
    axes[0].legend()
    figure.suptitle("iron/water: fine-tuned from GFN1-xTB vs from scratch (band: seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)


PAIRS = [("finetune", "base"), ("finetune", "scratch")]


def drift(base_path, finetuned, scratch, output: Path, figure: str, n_frames: int = 20):
    """Per layer, on DFT test frames: GFRE both ways and CKA between the
    fine-tuned model and its base, and between it and the from-scratch model
    (species by species, atom-weighted mean over species)."""
    from equilens.analysis.drift import latent_drift
    from equilens.export.plots import plot_drift
    from equilens.models import load

    frames = read_dataset(reference_path("iron_water/test")).frames[:n_frames]
    models = {"base": load(base_path), "finetune": load(finetuned), "scratch": load(scratch)}
    rows = latent_drift(models, frames, PAIRS)
    for row in rows:
        print(
            "  "
            + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{v}" for k, v in row.items())
        )
    title = "latent drift: fine-tuned BPNN vs its xTB base and vs from scratch"
    plot_drift(rows, PAIRS, output / figure, title)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 100, 324])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--mode", default="full", choices=["full", "frozen", "last_layer"])
    parser.add_argument("--compression", default="keep", choices=["keep", "refit"])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--min-epochs", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=150)
    parser.add_argument("--base-epochs", type=int, default=60)
    parser.add_argument("--output", default="results/finetune")
    parser.add_argument("--cache", help="descriptor cache (default: <output>/cache)")
    args = parser.parse_args()
    output = Path(args.output)
    cache = Path(args.cache) if args.cache else output / "cache"
    paths, validation, available = write_subsets(output, args.sizes)
    start = time.perf_counter()
    base = pretrain(output, args.base_epochs, cache)
    print(f"base model on GFN1-xTB: {time.perf_counter() - start:.0f} s -> {base}")
    results = []
    tag = (
        ""
        if (args.mode, args.compression) == ("full", "keep")
        else f"-{args.mode}-{args.compression}"
    )
    for size, train in paths.items():
        batches = math.ceil(size / 8)
        epochs = int(np.clip(math.ceil(args.steps / batches), args.min_epochs, args.max_epochs))
        for seed in args.seeds:
            for mode in ("scratch", "finetune"):
                finetune = (
                    None
                    if mode == "scratch"
                    else {
                        "base_model": str(base),
                        "mode": args.mode,
                        "compression": args.compression,
                    }
                )
                folder = output / f"{mode}{tag if mode == 'finetune' else ''}_{size}_seed{seed}"
                run = config(
                    f"{mode}-{size}",
                    train,
                    validation,
                    folder,
                    seed,
                    epochs,
                    finetune,
                    cache,
                )
                start = time.perf_counter()
                _, summary = train_potential(run, progress=False)
                test = summary["metrics"]["test"]
                results.append(
                    {
                        "mode": mode,
                        "frames": size,
                        "seed": seed,
                        "epochs": epochs,
                        "seconds": time.perf_counter() - start,
                        "energy_rmse_meV_per_atom": test["energy_rmse_meV_per_atom"],
                        "force_rmse_eV_per_A": test["force_rmse_eV_per_A"],
                    }
                )
                row = results[-1]
                print(
                    f"{mode:8s} {size:4d} frames seed {seed} ({epochs} epochs, "
                    f"{row['seconds']:.0f} s): {row['energy_rmse_meV_per_atom']:.2f} meV/atom, "
                    f"{row['force_rmse_eV_per_A']:.3f} eV/A"
                )
    summary = {
        "sizes_available": available,
        "mode": args.mode,
        "compression": args.compression,
        "steps": args.steps,
        "results": results,
    }
    (output / f"learning_curve{tag}.json").write_text(json.dumps(summary, indent=2))
    plot(results, output / f"learning_curve{tag}.png")
    print(f"-> {output / f'learning_curve{tag}.png'}")
    largest, seed = max(paths), args.seeds[0]
    print(f"latent drift ({largest} frames, seed {seed}):")
    rows = drift(
        base,
        output / f"finetune{tag}_{largest}_seed{seed}" / "model.pt",
        output / f"scratch_{largest}_seed{seed}" / "model.pt",
        output,
        f"latent_drift{tag}.png",
    )
    (output / f"latent_drift{tag}.json").write_text(json.dumps(rows, indent=2))
    print(f"-> {output / f'latent_drift{tag}.png'}")


if __name__ == "__main__":
    main()
