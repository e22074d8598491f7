"""``equilens uncertainty MODEL FILE``: calibrated uncertainties of a model's predictions."""

from __future__ import annotations

import argparse

from .common import add_overwrite_argument, add_read_arguments

OUTPUTS = (
    "structures.csv",
    "atoms.csv",
    "summary.json",
    "calibration.png",
    "uncertainty.chemiscope.json.gz",
)


def register(commands) -> None:
    parser = commands.add_parser(
        "uncertainty",
        help="calibrated uncertainties of a potential's predictions",
        description=(
            "Fit an uncertainty estimator of MODEL on its training frames, calibrate its "
            "scale on held-out frames (one factor, by likelihood) and write, for the frames "
            "of FILE: structures.csv (energy, uncertainty, error when FILE has energies), "
            "atoms.csv (per-atom uncertainty), summary.json (calibration and, with reference "
            "energies, miscalibration area, NLL, rank correlation), calibration.png and a "
            "chemiscope file of the layer coloured by uncertainty. The training and "
            "calibration frames default to the model's own training and validation splits."
        ),
    )
    parser.add_argument("model", help="model file (model.pt from `equilens train`, or an adapter)")
    parser.add_argument("file", help="frames to estimate (any ASE-readable file)")
    add_read_arguments(parser)
    parser.add_argument(
        "--method",
        choices=["llpr", "distance", "ensemble"],
        default="llpr",
        help="last-layer prediction rigidity, latent distance to the training atoms, or "
        "the spread of an ensemble (default: %(default)s)",
    )
    parser.add_argument("--layer", help="layer of llpr / distance (default: the last hidden one)")
    parser.add_argument(
        "--member",
        action="append",
        default=[],
        help="another model of the ensemble (repeat; --method ensemble)",
    )
    parser.add_argument(
        "--neighbours", type=int, default=5, help="k of the latent distance (default: 5)"
    )
    parser.add_argument("--train", help="training frames (default: the model's training split)")
    parser.add_argument(
        "--calibration", help="calibration frames with energies (default: the model's validation)"
    )
    parser.add_argument(
        "--output", default="results/uncertainty", help="output folder (default: %(default)s)"
    )
    add_overwrite_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..models import load
    from ..storage import check_outputs
    from ..uncertainty.methods import make_estimator
    from .common import fingerprint_of_inputs, read_frames

    model = load(args.model)
    members = [load(path) for path in args.member]
    estimator = make_estimator(args.method, model, members, args.layer, args.neighbours)
    dataset = read_frames(args, species=model.species)
    train, calibration = fitting_sets(model, args)
    output = Path(args.output)
    options = ("index", "method", "layer", "neighbours", "member", "train", "calibration")
    inputs = [args.model, args.file, *args.member, *(p for p in (args.train,) if p)]
    fingerprint = fingerprint_of_inputs(args, options, inputs)
    record = check_outputs(
        output / "run.json", fingerprint, [output / name for name in OUTPUTS], args.overwrite
    )
    estimator.fit(train.frames).calibrate(calibration.frames, calibration.energies)
    record()
    write_outputs(output, estimator, model, dataset, calibration, Path(args.file).name)
    return 0


def fitting_sets(model, args: argparse.Namespace):
    """``(training, calibration)`` datasets: the files given, else the model's record."""
    from ..data.io import ReadOptions, read_dataset
    from ..data.splits import resolve_path
    from ..errors import ConfigError
    from ..uncertainty.sets import recorded_splits

    options = ReadOptions(species=tuple(model.species), require_energy=True)
    given = {
        name: read_dataset(resolve_path(path), options)
        for name, path in (("train", args.train), ("validation", args.calibration))
        if path
    }
    if len(given) < 2:
        recorded = recorded_splits(model)
        given = {**{k: v for k, v in recorded.items() if k in ("train", "validation")}, **given}
    if "validation" not in given:
        raise ConfigError(
            "no calibration frames: the model was trained without a validation split; "
            "give --calibration FILE"
        )
    return given["train"], given["validation"]


def write_outputs(output, estimator, model, dataset, calibration, label: str) -> None:
    """The files of :data:`OUTPUTS` for ``dataset``."""
    import numpy as np

    from ..storage import save_json
    from ..uncertainty.calibration import calibration_metrics, calibration_plot
    from ..uncertainty.features import last_hidden_layer, layer_tensors
    from .uncertainty_files import write_chemiscope, write_tables

    # the layer is read once: for the estimator and for the chemiscope map
    layer = getattr(estimator, "layer", None) or last_hidden_layer(model)
    layers = layer_tensors(model, dataset.frames, [layer])
    computed = {"layers": layers} if hasattr(estimator, "layer") else {}
    result = estimator.predict(dataset.frames, **computed)
    reference = dataset.energies
    errors = None if reference is None else result.energy - reference
    write_tables(output, dataset.frames, result, errors)
    summary = {
        "method": estimator.method,
        "layer": getattr(estimator, "layer", None),
        "scale": estimator.scale,
        "regularizer": getattr(estimator, "regularizer", None),
        "calibration": {"n_frames": len(calibration), **estimator.calibration},
        "frames": {"n_frames": len(dataset)},
    }
    calib = estimator.predict(calibration.frames)
    sets = {
        f"calibration ({len(calibration)} frames)": (
            calib.energy - calibration.energies,
            calib.energy_uncertainty,
        )
    }
    if errors is not None and np.all(result.energy_uncertainty > 0):
        summary["frames"].update(calibration_metrics(errors, result.energy_uncertainty))
        sets[label] = (errors, result.energy_uncertainty)
    save_json(output / "summary.json", summary)
    calibration_plot(sets, output / "calibration.png", f"{estimator.method}: {model.kind}")
    write_chemiscope(output, estimator, model, dataset.frames, result, errors, layers)
    print(f"{estimator.method}: scale {estimator.scale:.4g}, calibration " + _line(summary))
    print(f"{len(dataset)} frames -> {output}")


def _line(summary) -> str:
    parts = []
    for name in ("calibration", "frames"):
        metrics = summary[name]
        if "nll" in metrics:
            parts.append(
                f"{name}: NLL {metrics['nll']:.3f}, miscalibration area "
                f"{metrics['miscalibration_area']:.3f}, Spearman {metrics['spearman']:.2f}"
            )
    return "; ".join(parts)
