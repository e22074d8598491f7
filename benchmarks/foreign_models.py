"""SevenNet-0 next to an equilens BPNN and SOAP on the iron/water reference data.

- extraction speed of all layers (atoms/s, 2 threads) per model;
- energy and force RMSE on the 41 test frames (SevenNet-0 zero-shot, its
  energies shifted by one per-atom offset fitted on training frames: every
  frame has the same composition, so per-species offsets are not separable);
- cross-model GFRE in both directions and debiased linear CKA between the
  layers of both models and SOAP, at atom level (per species, because the
  BPNN has per-species coordinates) and structure level (cumulants pooled
  over the atoms of each frame);
- the scorecard of every layer on the physical labels (per species where the
  coordinates are per species), and the question: do SevenNet-0's middle
  layers encode the physical labels better than the BPNN's?

    python benchmarks/foreign_models.py [--bpnn results/train/iron_water/model.pt]

Needs ``pip install 'equilens[sevenn]'`` and the reference data.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from equilens.analysis.compare import compare, compare_by_species
from equilens.analysis.labels import CATEGORICAL, LabelConfig, atom_labels
from equilens.analysis.latents import arrange_layers
from equilens.analysis.measures import constant_within_species, is_constant
from equilens.analysis.scorecard import Scorecard
from equilens.data import ReadOptions, read_dataset, reference_path
from equilens.descriptors import PRESETS, compute_soap
from equilens.models import energies_and_forces, load
from equilens.tensormaps import atom_tensormap, frame_atoms, stack_blocks


def trained_bpnn(args) -> Path:
    if args.bpnn:
        return Path(args.bpnn)
    from equilens.models import load_run_config, train
    from equilens.training import with_overrides

    config = with_overrides(load_run_config("iron_water"), f"{args.output}/bpnn", args.epochs)
    train(config, progress=True)
    return Path(config.output) / "model.pt"


def timed_layers(model, frames, repeats: int = 2):
    best, layers = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        layers = model.layers(frames)
        best = min(best, time.perf_counter() - start)
    return layers, sum(len(f) for f in frames) / best


def rmse(model, dataset, offset: float = 0.0):
    energies, forces = energies_and_forces(model.predict(dataset.frames))
    n_atoms = np.array([len(f) for f in dataset.frames])
    energy = 1000 * np.sqrt(np.mean(((energies - dataset.energies) / n_atoms - offset) ** 2))
    force = np.sqrt(np.mean((np.concatenate(forces) - np.concatenate(dataset.forces)) ** 2))
    return float(energy), float(force), energies


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bpnn", help="a trained equilens potential on iron/water")
    parser.add_argument("--epochs", type=int, default=120, help="training when no --bpnn")
    parser.add_argument("--frames", type=int, default=40, help="analysis frames (train set)")
    parser.add_argument("--offset-frames", type=int, default=20)
    parser.add_argument("--output", default="results/foreign_models")
    args = parser.parse_args()
    torch.set_num_threads(2)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    options = ReadOptions(require_forces=True)
    train = read_dataset(reference_path("iron_water/train"), options)
    test = read_dataset(reference_path("iron_water/test"), options)
    frames = train.frames[: args.frames]

    bpnn = load(trained_bpnn(args))
    sevennet = load("sevenn:7net-0")
    report: dict = {"models": {}}
    layer_values, outputs, speeds = {}, {}, {}
    for name, model in (("bpnn", bpnn), ("7net-0", sevennet)):
        tensors, speeds[name] = timed_layers(model, frames)
        merged = arrange_layers(tensors, per_species=False)  # invariant summaries
        values = {n: stack_blocks(t, n)[0] for n, t in merged.items()}
        outputs[name] = values.pop(model.layer_names[-1])[:, 0]
        layer_values[name] = values
    # energies: the BPNN as trained; SevenNet-0 after one per-atom offset
    offset_set = train.subset(range(args.offset_frames))
    predicted, _ = energies_and_forces(sevennet.predict(offset_set.frames))
    n_atoms = np.array([len(f) for f in offset_set.frames])
    offset = float(np.mean((predicted - offset_set.energies) / n_atoms))
    for name, model, shift in (("bpnn", bpnn, 0.0), ("7net-0", sevennet, offset)):
        energy, force, _ = rmse(model, test, shift)
        report["models"][name] = {
            "layers_atoms_per_s": speeds[name],
            "test_energy_rmse_meV_per_atom": energy,
            "test_force_rmse_eV_per_A": force,
        }
        print(
            f"{name}: {speeds[name]:.0f} atoms/s (layers), "
            f"test {energy:.2f} meV/atom, {force:.3f} eV/A"
        )
    report["sevennet_offset_eV_per_atom"] = offset

    soap_tensor = compute_soap(frames, (1, 8, 26), PRESETS["default"].to_featomic())
    soap, _ = stack_blocks(soap_tensor.keys_to_samples("center_type"), "soap")
    sets = {"soap": soap}
    for model_name, values in layer_values.items():
        for layer, array in values.items():
            if not (model_name == "bpnn" and layer == "input"):
                sets[f"{model_name}/{layer}"] = array
    system, atom, numbers = frame_atoms(frames)
    tensors = {
        n: atom_tensormap(v, system, atom, numbers, per_species=False) for n, v in sets.items()
    }
    # a species embedding is one vector per species: nothing to compare within a species
    constant = [n for n, v in sets.items() if constant_within_species(v, numbers)]
    print(f"  atom level, per species, without the sets constant within a species: {constant}")
    report["constant_within_species"] = constant
    atom_level = compare_by_species(
        {n: t for n, t in tensors.items() if n not in constant},
        measures=("gfre", "cka"),
        n_samples=4000,
        rank_samples=1500,
    )
    report["atom_level"] = {
        int(z): {"names": r.names, **{m: v.tolist() for m, v in r.matrices.items()}}
        for z, r in atom_level.items()
    }
    pooled = arrange_layers(tensors, per_species=False, pooling="cumulants")
    # every frame has the same composition: pooled species embeddings are all equal
    pooled = {n: t for n, t in pooled.items() if not is_constant(stack_blocks(t, n)[0])}
    report["structure_level_sets"] = list(pooled)
    structure = compare(pooled, measures=("gfre", "cka"), n_samples=len(frames), train_fraction=0.5)
    report["structure_level"] = {
        "names": structure.names,
        **{m: v.tolist() for m, v in structure.matrices.items()},
    }

    labels = atom_labels(frames, LabelConfig())
    labels["force"] = np.concatenate(
        [np.linalg.norm(f, axis=1) for f in train.forces[: args.frames]]
    )
    per_species = {n for n in sets if n.startswith("bpnn/")}
    card_outputs = {n: outputs[n.split("/")[0]] for n in sets if n != "soap"}
    card = Scorecard(categorical=[c for c in CATEGORICAL if c in labels], max_samples=4000)
    card.fit(
        sets,
        labels,
        descriptor=soap,
        outputs=card_outputs,
        species=numbers,
        per_species=per_species,
    )
    report["scorecard"] = card.table()
    for row in report["scorecard"]:
        print(
            f"  {row['place']:2d} {row['feature_set']:28s} mean rank "
            f"{row['mean_rank']:.2f} ({row['decoding']})"
        )
    (output / "report.json").write_text(json.dumps(report, indent=2, default=float))
    print(f"-> {output / 'report.json'}")


if __name__ == "__main__":
    main()
