"""Figures of issue 29: calibration of uncertainty estimators, and selection by them.

``calibration``: the built-in ``iron_water`` BPNN (reference DFT data) is
trained with ``--seeds`` seeds for ``--epochs`` epochs. Each estimator
(LLPR and the latent distance in every layer, the ensemble of the seeds) is
fitted on the training split and calibrated on the validation split (one
scale factor), then evaluated on the 41-frame test file and on frames the
model never saw the like of: liquid-water frames (``water/validation``, no
iron) and the GFN1-xTB iron/water set (another level of theory). Prints,
per method and set, the miscalibration area, the NLL, the Spearman
correlation between uncertainty and |energy error| (and, on the test set,
between each atom's uncertainty and its force error), and the mean
uncertainty and RMSE per atom; writes ``calibration_test.png`` and
``out_of_distribution.png``.

``forces``: LLPR force uncertainties (autograd through the model's torch
module) of the ``calibration`` run's seed-0 model on the first test frames,
against the force errors.

``heo``: a BPNN trained on the GFN1-xTB high-entropy oxide frames (rattled
minima and their MD, ``data/heo_xtb.extxyz``) of all but two starts, as in
``benchmarks/relax.py``; uncertainties of the held-out starts' frames and of
their parent crystals (unrelaxed substituted rock salt, GFN1-xTB single
points computed here).

``selection``: a learning curve. From ``--start`` random frames of the
iron/water training split (its validation frames held apart; with
``--initial cold``, drawn at random from the quarter of the pool with the
lowest RMS force instead: a start that has seen only near-equilibrium
configurations, as a campaign that begins from relaxed or cool structures
does), ``--rounds``
rounds each add ``--add`` frames of the remaining pool chosen at random, by
greedy LLPR, or by farthest-point sampling in the last hidden layer, a
model being retrained after each round (a lighter BPNN: 128 PCA components,
two layers of 64); prints the test errors after each round for each
strategy and seed and writes ``learning_curve.png``.

    python benchmarks/uncertainty.py calibration [--seeds 3] [--epochs 40]
    python benchmarks/uncertainty.py forces --epochs 60 [--frames 10]   # after calibration
    python benchmarks/uncertainty.py selection [--seeds 2] [--start 20] [--add 20] [--rounds 3]
                                                [--initial random|cold]
    python benchmarks/uncertainty.py heo [--seeds 2] [--epochs 200]   # from the checkout
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from pathlib import Path

import numpy as np


def _config(name: str, folder: Path, seed: int, epochs: int, **data):
    from equilens.models.registry import load_run_config

    config = load_run_config("iron_water")
    changes = dict(
        output_dir=str(folder / name),
        cache_dir=str(folder.parent / "cache"),
        training=dataclasses.replace(config.training, epochs=epochs, seed=seed),
    )
    if data:
        changes["data"] = dataclasses.replace(config.data, **data)
    return dataclasses.replace(config, **changes)


def _train(config):
    from equilens.models.bpnn.task import train_potential

    model, summary = train_potential(config, progress=False, overwrite=True)
    return model, summary["metrics"]


# ---------------------------------------------------------------------------
# calibration


def _sets(config):
    from equilens.data.io import ReadOptions, read_dataset
    from equilens.data.splits import load_splits, resolve_path

    splits = load_splits(config.data)
    water = read_dataset(resolve_path("reference:water/validation"), ReadOptions(index="::4"))
    xtb = read_dataset(resolve_path("embedded:iron_water_xtb.extxyz"), ReadOptions())
    return splits, {"test": splits["test"], "water (OOD)": water, "GFN1-xTB (OOD)": xtb}


def calibration(seeds: int, epochs: int, folder: Path) -> None:
    from equilens.uncertainty import LLPR, Ensemble, LatentDistance, calibration_plot
    from equilens.uncertainty.estimators import evaluated, score

    started = time.perf_counter()
    models = [_train(_config(f"seed{s}", folder, s, epochs))[0] for s in range(seeds)]
    print(f"trained {seeds} models in {time.perf_counter() - started:.0f} s")
    splits, sets = _sets(_config("seed0", folder, 0, epochs))
    model = models[0]
    estimators = {f"LLPR {layer}": LLPR(model, layer) for layer in model.layer_names[1:-1]}
    for layer in model.layer_names[:-1]:
        estimators[f"distance {layer}"] = LatentDistance(model, layer)
    if seeds > 1:
        estimators[f"ensemble of {seeds}"] = Ensemble(models)
    begin = time.perf_counter()
    names = model.layer_names[:-1]
    computed = {
        name: evaluated(model, data.frames, names, forces=name not in splits)
        for name, data in {**splits, **sets}.items()
    }
    print(f"layers and predictions of every set: {time.perf_counter() - begin:.0f} s")
    rows, test_sets, spread = [], {}, {}
    for label, estimator in estimators.items():
        begin = time.perf_counter()
        estimator.fit(splits["train"].frames, **computed["train"])
        validation = splits["validation"]
        estimator.calibrate(validation.frames, validation.energies, **computed["validation"])
        for name, data in sets.items():
            result = estimator.predict(data.frames, True, **computed[name])
            metrics = score(result, data.energies, data.forces)
            errors = result.energy - data.energies
            counts = np.array([len(a) for a in data.frames])
            # another code or level of theory has another energy zero: also
            # score the errors with the set's mean error per atom removed
            aligned = errors - counts * np.mean(errors / counts)
            for key, value in score(result, result.energy - aligned).items():
                metrics[f"aligned_{key}"] = value
            metrics["sigma_meV_per_atom"] = float(np.mean(result.energy_uncertainty / counts)) * 1e3
            metrics["rmse_meV_per_atom"] = float(np.sqrt(np.mean((errors / counts) ** 2))) * 1e3
            rows.append({"method": label, "set": name, **metrics})
            spread.setdefault(label, {})[name] = result.energy_uncertainty / counts * 1e3
            if name == "test":
                test_sets[label] = (errors, result.energy_uncertainty)
        print(f"  {label}: {time.perf_counter() - begin:.1f} s")
    _print_table(rows)
    calibration_plot(
        test_sets, folder / "calibration_test.png", f"iron/water test set, {len(models)} seeds"
    )
    _ood_plot(spread, folder / "out_of_distribution.png")
    (folder / "calibration.json").write_text(json.dumps(rows, indent=2))
    print(f"figures and calibration.json in {folder}")


def _print_table(rows) -> None:
    print(
        f"{'method':20s} {'set':16s} {'area':>6s} {'NLL':>9s} {'Spearman':>9s} {'atoms':>6s} "
        f"{'sigma/at':>9s} {'RMSE/at':>9s} | aligned: {'area':>6s} {'NLL':>9s} {'Spearman':>9s}"
    )
    for row in rows:
        atoms = row.get("atom_spearman", float("nan"))
        print(
            f"{row['method']:20s} {row['set']:16s} {row['miscalibration_area']:6.3f} "
            f"{row['nll']:9.3g} {row['spearman']:9.2f} {atoms:6.2f} "
            f"{row['sigma_meV_per_atom']:9.2f} {row['rmse_meV_per_atom']:9.1f} |          "
            f"{row['aligned_miscalibration_area']:6.3f} {row['aligned_nll']:9.3g} "
            f"{row['aligned_spearman']:9.2f}"
        )
    print("(sigma/at, RMSE/at in meV/atom; atoms: Spearman of atoms' uncertainty and force error)")


def _ood_plot(spread, path: Path) -> None:
    from equilens.figures import pyplot, save_figure

    plt = pyplot()
    methods = list(spread)
    sets = list(next(iter(spread.values())))
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(methods)), 4.5))
    width = 0.8 / len(sets)
    for j, name in enumerate(sets):
        positions = np.arange(len(methods)) + (j - (len(sets) - 1) / 2) * width
        data = [spread[m][name] for m in methods]
        parts = ax.boxplot(
            data,
            positions=positions,
            widths=width * 0.9,
            patch_artist=True,
            showfliers=False,
            medianprops={"color": "black"},
        )
        for box in parts["boxes"]:
            box.set_facecolor(f"C{j}")
        ax.plot([], [], "s", color=f"C{j}", label=name)
    ax.set_xticks(np.arange(len(methods)), methods, rotation=25, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("calibrated energy uncertainty per atom (meV/atom)")
    ax.set_title("do frames unlike the training set get larger uncertainties?", fontsize=10)
    ax.legend(fontsize=8)
    save_figure(fig, path)


# ---------------------------------------------------------------------------
# LLPR force uncertainties


def forces(frames_count: int, epochs: int, folder: Path, projections=()) -> None:
    """LLPR force uncertainties of the ``calibration`` run's seed-0 model
    (trained again or reused) on the first test frames: their rank
    correlation with the force errors, per component and per atom, and
    z = RMS(error / sigma) with the scale calibrated on energies; then, for
    each number of random projections, the time per frame and how far the
    estimate is from the exact one."""
    from equilens.data.splits import load_splits
    from equilens.uncertainty import LLPR
    from equilens.uncertainty.calibration import rank_correlation
    from equilens.uncertainty.forces import llpr_force_uncertainty

    config = _config("seed0", folder.parent / "calibration", 0, epochs)
    model = _train(config)[0]
    splits = load_splits(config.data)
    llpr = LLPR(model).fit(splits["train"].frames)
    llpr.calibrate(splits["validation"].frames, splits["validation"].energies)
    test = splits["test"]
    chosen = test.frames[:frames_count]
    for count in (None, *projections):
        begin = time.perf_counter()
        sigma, errors, atoms_sigma, atoms_error = [], [], [], []
        for atoms, reference in zip(chosen, test.forces):
            component = llpr_force_uncertainty(llpr, atoms, projections=count)
            predicted = model.predict([atoms], ["forces"])["forces"].block().values[:, :, 0]
            error = np.asarray(predicted) - reference
            sigma.append(component.ravel())
            errors.append(error.ravel())
            atoms_sigma.append(np.sqrt(np.mean(component**2, axis=1)))
            atoms_error.append(np.linalg.norm(error, axis=1))
        seconds = (time.perf_counter() - begin) / frames_count
        sigma, errors = np.concatenate(sigma), np.concatenate(errors)
        passes = llpr.layout.n_columns if count is None else count
        line = (
            f"LLPR {llpr.layer} forces on {frames_count} test frames ({seconds:.1f} s per frame, "
            f"{passes} backward passes): Spearman per component "
            f"{rank_correlation(errors, sigma):.2f}, per atom "
            f"{rank_correlation(np.concatenate(atoms_error), np.concatenate(atoms_sigma)):.2f}; "
            f"z = RMS(error / sigma) {np.sqrt(np.mean((errors / sigma) ** 2)):.2f}; RMS sigma "
            f"{np.sqrt(np.mean(sigma**2)):.3f} eV/A, RMSE {np.sqrt(np.mean(errors**2)):.3f} eV/A"
        )
        if count is None:
            exact = sigma
        else:
            ratio = sigma / exact
            line += (
                f"; against the exact sigma: median |ratio - 1| "
                f"{np.median(np.abs(ratio - 1)):.3f}, Spearman {rank_correlation(exact, sigma):.3f}"
            )
        print(line, flush=True)


# ---------------------------------------------------------------------------
# high-entropy oxides: parent crystals


def heo(seeds: int, epochs: int, folder: Path) -> None:
    """A BPNN on the GFN1-xTB high-entropy oxide frames (rattled minima and
    their MD) of all but two starts; uncertainties on the held-out starts'
    frames and on their parent crystals (the unrelaxed substituted rock
    salt, far from any training frame), with GFN1-xTB single points."""
    import ase.io
    from relax import split  # benchmarks/relax.py: the same held-out starts

    from equilens.config import from_mapping
    from equilens.data.generate.common import xtb_calculator
    from equilens.data.io import ReadOptions, read_dataset
    from equilens.data.splits import load_splits
    from equilens.models.bpnn.config import PotentialConfig
    from equilens.uncertainty import LLPR, Ensemble, LatentDistance
    from equilens.uncertainty.estimators import evaluated, score

    paths = split(Path("data/heo_xtb.extxyz"), folder, 2)
    parents = ase.io.read(paths["parents"], ":")
    temperature = ase.io.read(paths["train"], 0).info.get("electronic_temperature_K", 1000.0)
    for atoms in parents:
        atoms.calc = xtb_calculator(electronic_temperature=temperature)
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
    ase.io.write(folder / "parents_xtb.extxyz", parents)
    data = {"train": str(paths["train"]), "validation_fraction": 0.15, "test": str(paths["test"])}
    models = []
    for seed in range(seeds):
        config = from_mapping(PotentialConfig, {
            "task": "potential", "name": "heo", "data": {**data, "seed": 0},
            "descriptor": {"preset": "small"}, "compression": {"n_components": 32},
            "model": {"hidden": [32, 32]},
            "training": {"epochs": epochs, "batch_size": 8, "learning_rate": 0.002, "seed": seed},
            "output_dir": str(folder / f"seed{seed}"), "cache_dir": str(folder / "cache"),
        })  # fmt: skip
        models.append(_train(config)[0])
    splits = load_splits(config.data)
    sets = {
        "held-out starts": splits["test"],
        "parent crystals (OOD)": read_dataset(folder / "parents_xtb.extxyz", ReadOptions()),
    }
    model = models[0]
    names = model.layer_names[:-1]
    estimators = {f"LLPR {names[-1]}": LLPR(model)}
    for layer in names:
        estimators[f"distance {layer}"] = LatentDistance(model, layer)
    if seeds > 1:
        estimators[f"ensemble of {seeds}"] = Ensemble(models)
    computed = {
        name: evaluated(model, data.frames, names, forces=True)
        for name, data in {**splits, **sets}.items()
    }
    print(f"{'method':22s} {'set':22s} {'sigma/at':>9s} {'|err|/at':>9s} {'z':>7s}  (meV/atom)")
    rows = []
    for label, estimator in estimators.items():
        estimator.fit(splits["train"].frames, **computed["train"])
        validation = splits["validation"]
        estimator.calibrate(validation.frames, validation.energies, **computed["validation"])
        for name, data in sets.items():
            result = estimator.predict(data.frames, True, **computed[name])
            counts = np.array([len(a) for a in data.frames])
            errors = (result.energy - data.energies) / counts * 1e3
            sigma = result.energy_uncertainty / counts * 1e3
            metrics = score(result, data.energies, data.forces) if len(data) > 2 else {}
            rows.append({"method": label, "set": name, "sigma_meV_per_atom": sigma.tolist(),
                         "error_meV_per_atom": errors.tolist(), **metrics})  # fmt: skip
            print(
                f"{label:22s} {name:22s} {np.mean(sigma):9.2f} {np.mean(np.abs(errors)):9.2f} "
                f"{np.sqrt(np.mean((errors / sigma) ** 2)):7.2f}"
                + (
                    f"  area {metrics['miscalibration_area']:.3f}, Spearman "
                    f"{metrics['spearman']:.2f}"
                    if metrics
                    else ""
                )  # fmt: skip
            )
    (folder / "heo.json").write_text(json.dumps(rows, indent=2))
    print("(z: RMS of error / uncertainty, 1 when calibrated; larger: overconfident)")


# ---------------------------------------------------------------------------
# selection


STRATEGIES = ("random", "LLPR (greedy)", "LLPR variance reduction", "FPS hidden_2")


def _initial(pool_frames, start: int, initial: str, rng) -> list[int]:
    """The first training frames: random, or random among the coolest quarter."""
    if initial == "random":
        return list(rng.choice(len(pool_frames), start, replace=False))
    rms = np.array([np.sqrt(np.mean(frame.get_forces() ** 2)) for frame in pool_frames])
    coolest = np.argsort(rms)[: max(start, len(pool_frames) // 4)]
    return [int(i) for i in rng.choice(coolest, start, replace=False)]


def selection(
    seeds: int,
    start: int,
    add: int,
    rounds: int,
    epochs: int,
    folder: Path,
    strategies,
    initial: str = "random",
) -> None:
    import ase.io

    from equilens.data.splits import load_splits
    from equilens.uncertainty import (
        LLPR,
        select_by_uncertainty,
        select_by_variance_reduction,
        select_farthest,
    )

    base = _config("base", folder, 0, epochs)
    splits = load_splits(base.data)
    pool_frames = splits["train"].frames
    validation = folder / "validation.extxyz"
    ase.io.write(validation, splits["validation"].frames)
    light = dict(compression=dataclasses.replace(base.compression, n_components=128))

    def train_on(indices, name, seed):
        path = folder / f"{name}.extxyz"
        ase.io.write(path, [pool_frames[i] for i in indices])
        config = _config(
            name,
            folder,
            seed,
            epochs,
            train=str(path),
            validation=str(validation),
            validation_fraction=0.0,
        )
        config = dataclasses.replace(
            config, model=dataclasses.replace(config.model, hidden=(64, 64)), **light
        )
        return _train(config)

    curves: dict = {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        first = _initial(pool_frames, start, initial, rng)
        model, metrics = train_on(first, f"s{seed}_start", seed)
        for strategy in strategies:
            chosen, current = list(first), model
            curve = [(len(chosen), metrics["test"])]
            for round_ in range(1, rounds + 1):
                rest = [i for i in range(len(pool_frames)) if i not in set(chosen)]
                pool = [pool_frames[i] for i in rest]
                known = [pool_frames[i] for i in chosen]
                if strategy == "random":
                    picks = rng.choice(len(rest), add, replace=False)
                elif strategy == "LLPR variance reduction":
                    llpr = LLPR(current).fit(known)
                    picks, _ = select_by_variance_reduction(llpr, pool, add)
                elif strategy.startswith("LLPR"):
                    picks, _ = select_by_uncertainty(LLPR(current).fit(known), pool, add)
                else:
                    picks, _ = select_farthest(current, pool, add, known, "hidden_2")
                added = [rest[i] for i in picks]
                hot = np.median([np.sqrt(np.mean(pool_frames[i].get_forces() ** 2)) for i in added])
                chosen += added
                name = re.sub(r"\W+", "_", strategy.lower()).strip("_")
                tag = f"s{seed}_{name}_{round_}"
                current, round_metrics = train_on(chosen, tag, seed)
                curve.append((len(chosen), round_metrics["test"]))
                print(
                    f"seed {seed} {strategy:14s} {len(chosen):4d} frames: test "
                    f"{round_metrics['test']['energy_rmse_meV_per_atom']:7.2f} meV/atom "
                    f"{round_metrics['test']['force_rmse_eV_per_A']:6.3f} eV/A "
                    f"(added frames: median RMS force {hot:.2f} eV/A)",
                    flush=True,
                )
            curves.setdefault(strategy, []).append(curve)
    (folder / "selection.json").write_text(json.dumps(curves, indent=2))
    start_words = "random" if initial == "random" else "coolest-quarter"
    _curve_plot(curves, folder / "learning_curve.png", seeds, f"{start} {start_words} frames")
    print(f"learning_curve.png and selection.json in {folder}")


def _curve_plot(curves, path: Path, seeds: int, start: str) -> None:
    from equilens.figures import pyplot, save_figure

    plt = pyplot()
    from matplotlib.ticker import FormatStrFormatter

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    keys = (
        ("energy_rmse_meV_per_atom", "test energy RMSE (meV/atom)"),
        ("force_rmse_eV_per_A", "test force RMSE (eV/Å)"),
    )
    for ax, (key, label) in zip(axes, keys):
        for strategy, runs in curves.items():
            sizes = [n for n, _ in runs[0]]
            values = np.array([[m[key] for _, m in run] for run in runs])
            mean = values.mean(axis=0)
            ax.plot(sizes, mean, "o-", label=strategy)
            if len(runs) > 1:
                ax.fill_between(sizes, values.min(axis=0), values.max(axis=0), alpha=0.2)
        ax.set_xlabel("training frames")
        ax.set_ylabel(label)
        values = [m[key] for runs in curves.values() for run in runs for _, m in run]
        if max(values) > 3 * min(values):  # the first round would flatten the later ones
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"iron/water: from {start}, frames added by each strategy "
        f"(mean and range over {seeds} seeds)",
        fontsize=10,
    )
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["calibration", "forces", "selection", "heo"])
    parser.add_argument("--frames", type=int, default=10, help="test frames of `forces`")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--start", type=int, default=20)
    parser.add_argument("--add", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--initial",
        choices=["random", "cold"],
        default="random",
        help="of `selection`: the first frames at random, or among the coolest quarter",
    )
    parser.add_argument(
        "--projections", type=int, nargs="*", default=[], help="of `forces`: random projections"
    )
    parser.add_argument(
        "--strategies", nargs="+", choices=STRATEGIES, default=STRATEGIES, help="of `selection`"
    )
    parser.add_argument("--output", default="/tmp/equilens-bench/uncertainty")
    args = parser.parse_args()
    folder = Path(args.output) / args.what
    if args.what == "selection" and args.initial != "random":
        folder = folder.with_name(f"selection_{args.initial}")
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.what == "calibration":
        calibration(args.seeds or 3, args.epochs, folder)
    elif args.what == "forces":
        forces(args.frames, args.epochs, folder, args.projections)
    elif args.what == "heo":
        heo(args.seeds or 2, args.epochs, folder)
    else:
        selection(
            args.seeds or 2,
            args.start,
            args.add,
            args.rounds,
            args.epochs,
            folder,
            args.strategies,
            args.initial,
        )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
