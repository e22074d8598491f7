"""Many elements: memory, speed and accuracy of the potential on a set with
dozens of elements, and the study on it.

On the GFN1-xTB multi-element set (``equilens generate elements``, committed
as ``data/elements_xtb.extxyz``) split by composition (70 / 10 / 20 %: the
test compositions are never seen in training):

1. the size plain SOAP would need (the memory guard's estimate) against the
   alchemical SOAP the potential switches to;
2. ``equilens train`` with the defaults for this many elements (alchemical
   SOAP, one shared network with an element embedding): descriptor and
   training time, test energy and force RMSE against the per-element linear
   baseline (composition least squares, zero forces);
3. ``--per-species``: the same with one network per element, the design the
   shared network replaces;
4. one training epoch with forces on 20,000 atoms (the training features
   repeated), after a warm-up epoch;
5. ``--study``: the latent-space study (one architecture, one seed, GFRE
   between layers, scorecard, chemiscope file, validated);
6. the peak resident memory of the process (everything above).

    python benchmarks/many_elements.py [--epochs 100] [--per-species] [--study]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import ase.io
import numpy as np
import torch

from equilens.config import from_mapping
from equilens.data.io import read_frames
from equilens.descriptors import DescriptorConfig
from equilens.descriptors.budget import soap_size
from equilens.descriptors.projected import FeatureSet
from equilens.models.bpnn.config import PotentialConfig
from equilens.models.bpnn.task import _objective, train_potential
from equilens.models.energy.config import LossConfig
from equilens.training.loop import TrainConfig, _batches

ROOT = Path(__file__).resolve().parents[1]


def split_by_composition(frames, seed: int):
    """Train / validation / test frames, whole compositions at a time; a
    composition is held out only if each of its elements stays in some
    training composition (an element never seen in training has no
    per-element energy, for the model or for the baseline)."""
    elements: dict = {}
    for i, atoms in enumerate(frames):
        group = int(atoms.info.get("composition", i))
        elements.setdefault(group, set()).update(int(z) for z in atoms.numbers)
    order = np.random.default_rng(seed).permutation(sorted(elements))
    wanted = {"test": round(0.2 * len(order)), "validation": round(0.1 * len(order))}
    held: dict = {"test": set(), "validation": set()}
    training = set(int(g) for g in order)
    for group in (int(g) for g in order):
        name = next((k for k in ("test", "validation") if len(held[k]) < wanted[k]), None)
        if name is None:
            break
        others = set().union(*(elements[g] for g in training - {group}))
        if elements[group] <= others:
            held[name].add(group)
            training.discard(group)
    parts: dict = {"train": [], "validation": [], "test": []}
    for i, atoms in enumerate(frames):
        group = int(atoms.info.get("composition", i))
        name = next((k for k in ("test", "validation") if group in held[k]), "train")
        parts[name].append(atoms)
    return parts


def sizes(frames, preset: str, n_species: int) -> dict:
    """Plain and alchemical SOAP sizes (GB) of the frames, with gradients."""
    config = DescriptorConfig(preset=preset)
    hypers = config.featomic_dict()
    plain = soap_size(frames, n_species, hypers, gradients=True)
    pseudo = config.compression_for(n_species)
    mixed = soap_size(frames, pseudo.pseudo_species if pseudo else n_species, hypers, True)
    return {
        "plain_features_per_atom": plain.per_atom,
        "plain_gb": plain.total_bytes / 1024**3,
        "alchemical_features_per_atom": mixed.per_atom,
        "alchemical_gb": mixed.total_bytes / 1024**3,
    }


def train(paths, output: Path, args, network: str, alchemical=None, name=None):
    descriptor = {"preset": args.preset}
    if alchemical is not None:
        descriptor["alchemical"] = alchemical
    name = name or network
    config = from_mapping(
        PotentialConfig,
        {
            "name": f"elements-{name}",
            "data": {k: str(v) for k, v in paths.items()},
            "descriptor": descriptor,
            "compression": {"n_components": args.components},
            "model": {"hidden": [128, 128], "network": network},
            "training": {
                "epochs": args.epochs,
                "batch_size": 8,
                "learning_rate": 1e-3,
                "scheduler": "cosine",
                "seed": args.seed,
            },
            "output_dir": str(output / name),
            "cache_dir": str(output / "cache"),
        },
    )
    start = time.perf_counter()
    potential, summary = train_potential(config, progress=True)
    summary["wall_s"] = time.perf_counter() - start
    return potential, summary


def epoch_on(potential, frames, target_atoms: int, batch_size: int = 8) -> dict:
    """Seconds of one training epoch with forces over ``target_atoms`` atoms
    (``frames``' features repeated), after a warm-up epoch."""
    energies = np.array([a.get_potential_energy() for a in frames])
    forces = [a.get_forces() for a in frames]
    one = potential.featurize(frames, gradients=True)
    one.energy = torch.as_tensor(energies, dtype=one.x.dtype)
    one.forces = torch.as_tensor(np.concatenate(forces), dtype=one.x.dtype)
    copies = int(np.ceil(target_atoms / int(one.atom_offsets[-1])))
    features = FeatureSet.concatenate([one] * copies)
    model = potential.model.train()
    loss_fn, _ = _objective({"train": features, "validation": one}, LossConfig(), 1.0, 1.0, 16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    config = TrainConfig(batch_size=batch_size)
    times = []
    for epoch in range(3):
        start = time.perf_counter()
        for batch in _batches(features.n_frames, config, epoch):
            optimizer.zero_grad()
            loss_fn(model, batch).backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return {
        "atoms": int(features.atom_offsets[-1]),
        "frames": features.n_frames,
        "gradient_pairs": int(len(features.grad_values)),
        "epoch_s": float(np.mean(times[1:])),
        "epoch_s_min": float(np.min(times[1:])),
    }


def run_study(paths, output: Path, args) -> dict:
    from equilens.export.chemiscope import validate_chemiscope
    from equilens.study.config import StudyConfig
    from equilens.study.run import run_study as study

    config = from_mapping(
        StudyConfig,
        {
            "name": "elements",
            "data": {k: str(v) for k, v in paths.items()},
            "descriptor": {"preset": args.preset},
            "compression": {"n_components": args.components},
            "training": {"epochs": min(args.epochs, 40), "learning_rate": 1e-3},
            "sweep": [{"name": "silu-2x64", "model": {"hidden": [64, 64]}}],
            "seeds": [0],
            "analysis_frames": 40,
            "output_dir": str(output / "study"),
            "chemiscope_dir": str(output / "study" / "chemiscope"),
            "cache_dir": str(output / "cache"),
        },
    )
    start = time.perf_counter()
    folder = study(config, progress=True, overwrite=True)
    seconds = time.perf_counter() - start
    chemiscope = Path(config.chemiscope_dir) / "elements.json.gz"
    validate_chemiscope(chemiscope)
    rows = (folder / "scorecard.csv").read_text().splitlines()
    return {"seconds": seconds, "folder": str(folder), "scorecard_top": rows[:4]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "elements_xtb.extxyz"))
    parser.add_argument("--output", default="results/many_elements")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch-atoms", type=int, default=20000)
    parser.add_argument("--per-species", action="store_true", help="also one network per element")
    parser.add_argument("--study", action="store_true", help="also run the study")
    parser.add_argument(
        "--pseudo-species",
        nargs="*",
        default=[],
        help="also train shared models with these mixings, e.g. periodic:2 periodic:8 random:4",
    )
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    frames = read_frames(args.data)
    elements = sorted({int(z) for a in frames for z in a.numbers})
    parts = split_by_composition(frames, args.seed)
    paths = {}
    for name, part in parts.items():
        paths[name] = output / f"{name}.extxyz"
        ase.io.write(paths[name], part)
    result: dict = {
        "data": args.data,
        "frames": {k: len(v) for k, v in parts.items()},
        "atoms": int(sum(len(a) for a in frames)),
        "elements": len(elements),
        "sizes": sizes(frames, args.preset, len(elements)),
    }
    print(json.dumps(result, indent=1))

    runs = [("shared", "shared", None)] + (
        [("per_species", "per_species", None)] if args.per_species else []
    )
    for spec in args.pseudo_species:
        embedding, count = spec.split(":")
        mixing = {"pseudo_species": int(count), "embedding": embedding}
        runs.append((f"shared-{embedding}{count}", "shared", mixing))
    networks = [name for name, _, _ in runs]
    for network, kind, mixing in runs:
        potential, summary = train(paths, output, args, kind, mixing, network)
        result[network] = {
            "architecture": summary["architecture"]["summary"],
            "wall_s": summary["wall_s"],
            "timings": summary["timings"],
            "seconds_per_epoch": summary["seconds_per_epoch"],
            "best_epoch": summary["best_epoch"],
            "test": summary["metrics"]["test"],
            "baseline_test": summary["baselines"]["composition"]["test"],
        }
        if network == "shared":
            result["epoch"] = epoch_on(potential, parts["train"], args.epoch_atoms)
        result["peak_rss_gb_after_" + network] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        )
        print(json.dumps(result[network], indent=1, default=str))
    if args.study:
        result["study"] = run_study(paths, output, args)
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    (output / "summary.json").write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps({k: v for k, v in result.items() if k not in networks}, indent=1))
    for network in networks:
        test, base = result[network]["test"], result[network]["baseline_test"]
        print(
            f"{network}: test energy {test['energy_rmse_meV_per_atom']:.1f} meV/atom "
            f"(per-element baseline {base['energy_rmse_meV_per_atom']:.1f}), forces "
            f"{test['force_rmse_eV_per_A']:.3f} eV/A (baseline {base['force_rmse_eV_per_A']:.3f})"
        )


if __name__ == "__main__":
    main()
