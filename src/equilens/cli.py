"""The ``equilens`` command.

Subcommands:

``equilens descriptors [FILE]``
    SOAP and lambda-SOAP TensorMaps (``.mts``) of a dataset file, or of the
    built-in example when no file is given, with PCA plots and a JSON summary.
``equilens data list | info FILE | fetch NAME | verify``
    The reference datasets (where they are, their checksums) and validation
    of any dataset file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from . import __version__
from .config import from_mapping, load_yaml
from .data.examples import iron_water_example
from .data.io import ReadOptions, read_dataset
from .data.reference import (
    data_root,
    fetch_reference,
    manifest,
    reference_path,
)
from .descriptors import PRESETS, DescriptorConfig
from .errors import EquilensError
from .jobs import descriptor_job


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``equilens`` command."""
    parser = argparse.ArgumentParser(
        prog="equilens",
        description=(
            "equilens: look inside equivariant atomistic models. Computes SOAP and "
            "lambda-SOAP descriptors as metatensor TensorMaps from ASE datasets."
        ),
    )
    parser.add_argument("--version", action="version", version=f"equilens {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    desc = commands.add_parser(
        "descriptors",
        help="compute SOAP / lambda-SOAP TensorMaps for a dataset file",
        description=(
            "Compute SOAP and/or lambda-SOAP for the frames of FILE (any ASE-readable "
            "file), or for the built-in Fe(110)/water example when FILE is omitted. "
            "Writes NAME-KIND.mts, a PCA plot per descriptor and NAME.json into "
            "--output; results are cached by a hash of hypers and structures."
        ),
    )
    desc.add_argument("file", nargs="?", help="dataset file; omit for the built-in example")
    desc.add_argument(
        "--kind",
        nargs="+",
        choices=["soap", "lambda_soap"],
        default=["soap", "lambda_soap"],
        help="which descriptors to compute (default: both)",
    )
    desc.add_argument(
        "--config",
        help="YAML file with DescriptorConfig fields (preset, hypers, species, ...)",
    )
    desc.add_argument("--preset", choices=sorted(PRESETS), help="hyper-parameter preset")
    desc.add_argument(
        "--species",
        help="comma-separated atomic numbers covered by the descriptor, e.g. 1,8,26 "
        "(default: the species of the file)",
    )
    desc.add_argument("--lambda-max", type=int, help="largest o3_lambda of lambda-SOAP")
    desc.add_argument(
        "--gradients", action="store_true", help="also compute position gradients (SOAP)"
    )
    desc.add_argument(
        "--neighbors",
        choices=["auto", "properties", "keys"],
        help="SOAP layout: neighbor types in properties or in keys (default: auto, "
        "keys with gradients)",
    )
    desc.add_argument("--index", default=":", help="frames to read, ASE slice syntax")
    _add_read_arguments(desc)
    desc.add_argument("--name", help="prefix of the output files (default: file stem)")
    desc.add_argument(
        "--output", default="results/descriptors", help="output folder (default: %(default)s)"
    )
    desc.add_argument(
        "--cache-dir",
        default=".equilens_cache/descriptors",
        help="descriptor cache folder; 'none' disables the cache (default: %(default)s)",
    )
    desc.add_argument("--no-progress", action="store_true", help="hide progress bars")
    desc.set_defaults(handler=_run_descriptors)

    train = commands.add_parser(
        "train",
        help="train a BPNN potential, or an equivariant model of a tensor",
        description=(
            "Train a per-species BPNN on compressed SOAP with energies and forces, or, "
            "when CONFIG.yaml has a 'target' section, an equivariant network on "
            "lambda-SOAP for a tensorial target (dipole, polarizability, density "
            "coefficients) next to a per-block ridge baseline (see workflows/configs/). "
            "Writes model.pt, metrics.json, log.csv, checkpoint.pt and plots to the "
            "output folder; running it again resumes from the checkpoint."
        ),
    )
    train.add_argument("config", help="YAML training configuration")
    train.add_argument("--output", help="output folder (overrides output_dir)")
    train.add_argument("--epochs", type=int, help="override training.epochs")
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")
    train.set_defaults(handler=_run_train)

    lat = commands.add_parser(
        "latents",
        help="every layer of a trained model as TensorMaps",
        description=(
            "Evaluate every layer of a trained model (model.pt from `equilens train`) on "
            "the frames of FILE and write one .mts per layer plus layers.json to --output."
        ),
    )
    lat.add_argument("model", help="model file written by `equilens train`")
    lat.add_argument("file", help="dataset file (any ASE-readable format)")
    lat.add_argument("--index", default=":", help="frames to read, ASE slice syntax")
    lat.add_argument(
        "--single-block",
        action="store_true",
        help="one block over all atoms (center_type in the samples) instead of one per species",
    )
    lat.add_argument("--pooling", choices=["mean", "sum"], help="one row per structure")
    lat.add_argument("--batch-size", type=int, default=50, help="frames per forward pass")
    lat.add_argument(
        "--output", default="results/latents", help="output folder (default: %(default)s)"
    )
    lat.set_defaults(handler=_run_latents)

    cmp = commands.add_parser(
        "compare",
        help="GFRE / GFRD / LFRE between feature sets (layers, models, descriptors)",
        description=(
            "Reconstruction measures for every ordered pair of feature sets on the same "
            "samples. Each INPUT is a .mts file (name: file stem, or NAME=FILE) or a latents "
            "folder from `equilens latents` (all its layers, named FOLDER/LAYER). Writes "
            "table.csv, matrices.json and one heatmap per measure to --output."
        ),
    )
    cmp.add_argument("inputs", nargs="+", help=".mts files, NAME=FILE, or latents folders")
    cmp.add_argument(
        "--measures", nargs="+", default=["gfre", "gfrd", "lfre"], choices=["gfre", "gfrd", "lfre"]
    )
    cmp.add_argument("--n-samples", type=int, default=10000, help="GFRE/GFRD sample budget")
    cmp.add_argument("--lfre-samples", type=int, default=1000, help="LFRE sample budget")
    cmp.add_argument("--lfre-neighbors", type=int, default=100)
    cmp.add_argument("--selection", choices=["random", "fps"], default="random")
    cmp.add_argument("--seed", type=int, default=0)
    cmp.add_argument("--jobs", type=int, help="LFRE worker processes (default: one per core)")
    cmp.add_argument(
        "--per-species",
        action="store_true",
        help="compare each center species separately (for per-species networks); "
        "writes one subfolder center_type_Z per species",
    )
    cmp.add_argument(
        "--equivariant",
        action="store_true",
        help="equivariant reconstruction error per (o3_lambda, o3_sigma, center_type) block "
        "(inputs: the equivariant/ latents of a tensor model); writes block_*.png",
    )
    cmp.add_argument(
        "--output", default="results/compare", help="output folder (default: %(default)s)"
    )
    cmp.set_defaults(handler=_run_compare)

    exp = commands.add_parser(
        "export",
        help="chemiscope file of a trained model on a dataset (layer maps, errors, forces)",
        description=(
            "Write a chemiscope .json.gz (chemiscope.org) with the structures of FILE, a map "
            "of each layer of MODEL, atomic energies, energy and force errors and force "
            "arrows; --html also writes an offline page showing it. For a tensor model: "
            "maps of the invariant summaries of its layers and the predicted (and, with "
            "--reference, reference) dipoles as arrows or polarizabilities as ellipsoids."
        ),
    )
    exp.add_argument("model", help="model file written by `equilens train`")
    exp.add_argument("file", help="dataset file (any ASE-readable format)")
    exp.add_argument("--index", default=":", help="frames to read, ASE slice syntax")
    exp.add_argument("--layers", nargs="+", help="layers to map (default: all but atomic_energy)")
    exp.add_argument("--projections", nargs="+", default=["pca"], choices=["pca", "pcovr", "umap"])
    exp.add_argument("--species", help="only atoms of these species, e.g. 8,26")
    exp.add_argument("--cutoff", type=float, default=3.5, help="environment radius in Å")
    exp.add_argument("--no-forces", action="store_true", help="skip force predictions")
    exp.add_argument("--color", help="atom property to colour the map by (default: species)")
    exp.add_argument("--no-lod", action="store_true", help="draw every point of big maps")
    exp.add_argument("--html", action="store_true", help="also write an offline viewer page")
    exp.add_argument(
        "--reference", help="tensor models: the target .mts of FILE's frames (rows in file order)"
    )
    exp.add_argument("--output", help="output file (default: chemiscope_out/<FILE stem>.json.gz)")
    exp.set_defaults(handler=_run_export)

    study = commands.add_parser(
        "study",
        help="the latent-space study: architectures x layers, scorecard, GFRE, chemiscope",
        description=(
            "Train a sweep of BPNN architectures over several seeds, read every layer, score "
            "how well each exposes physical labels, compare layers with GFRE and write "
            "results/<name>/ (scorecard.csv, report.md, plots) and chemiscope_out/<name>.json.gz. "
            "Without CONFIG it runs on the embedded GFN1-xTB iron/water set in data/."
        ),
    )
    study.add_argument("config", nargs="?", help="study YAML (default: the built-in study)")
    study.add_argument("--quiet", action="store_true", help="no progress bars")
    study.set_defaults(handler=_run_study)

    gen = commands.add_parser(
        "generate",
        help="labelled reference data from quantum-chemistry codes (tblite, PySCF)",
        description="Generate labelled data offline with real quantum-chemistry codes.",
    )
    generators = gen.add_subparsers(dest="generator", metavar="GENERATOR", required=True)
    iw = generators.add_parser(
        "iron-water",
        help="Fe(110)/water frames from GFN1-xTB Langevin dynamics (tblite)",
        description=(
            "Short GFN1-xTB Langevin trajectories from randomised Fe(110)/water starts; every "
            "stride-th frame is appended to OUTPUT (extended XYZ, energy and forces, "
            "provenance in info). Interrupted runs resume from OUTPUT.state."
        ),
    )
    iw.add_argument("--config", help="YAML with IronWaterConfig fields (size, n_water, ...)")
    iw.add_argument("--output", default="data/iron_water_xtb.extxyz")
    iw.add_argument("--starts", type=int, help="number of trajectories (overrides the config)")
    iw.add_argument("--seed", type=int, help="seed (overrides the config)")
    iw.add_argument("--quiet", action="store_true", help="no progress bar")
    iw.set_defaults(handler=_run_generate_iron_water)
    wt = generators.add_parser(
        "water-tensors",
        help="dipoles, polarizabilities, density coefficients of water clusters (PySCF)",
        description=(
            "Kohn-Sham calculations (default B3LYP/cc-pVDZ, RI-JK with cc-pVDZ-JKFIT) on water "
            "monomers and on dimers/trimers cut from liquid water: dipole (lambda 1), "
            "finite-field polarizability (lambda 0 + 2), Coulomb-fitted density coefficients; "
            "TensorMaps in featomic's convention. Resumes from OUTPUT/partial."
        ),
    )
    wt.add_argument("--config", help="YAML with WaterTensorsConfig fields")
    wt.add_argument("--output", default="data/water_tensors")
    for name in ("monomers", "dimers", "trimers"):
        wt.add_argument(f"--{name}", type=int, help=f"number of {name} (overrides the config)")
    wt.add_argument("--basis", help="orbital basis (overrides the config), e.g. aug-cc-pvdz")
    wt.add_argument("--quiet", action="store_true", help="no progress bar")
    wt.set_defaults(handler=_run_generate_water_tensors)

    data = commands.add_parser(
        "data",
        help="reference datasets and dataset validation",
        description=(
            "List, locate, fetch and verify the public reference datasets "
            "($EQUILENS_DATA, else ../shared/data), and validate any dataset file."
        ),
    )
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION")
    data_commands.required = True
    listing = data_commands.add_parser("list", help="reference datasets and where they are")
    listing.set_defaults(handler=_run_data_list)
    info = data_commands.add_parser("info", help="read and validate a dataset file")
    info.add_argument("file")
    info.add_argument("--index", default=":", help="frames to read, ASE slice syntax")
    info.add_argument("--require-forces", action="store_true", help="fail on frames without forces")
    info.add_argument("--species", help="comma-separated allowed atomic numbers (default: any)")
    info.add_argument("--skip-bad", action="store_true", help="skip invalid frames and report them")
    _add_read_arguments(info)
    info.set_defaults(handler=_run_data_info)
    fetch = data_commands.add_parser("fetch", help="download a reference dataset")
    fetch.add_argument("name", nargs="+", help="dataset name(s), e.g. water/train")
    fetch.add_argument("--dest", help="data folder (default: $EQUILENS_DATA or ../shared/data)")
    fetch.set_defaults(handler=_run_data_fetch)
    verify = data_commands.add_parser("verify", help="check SHA-256 of local copies")
    verify.set_defaults(handler=_run_data_verify)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``equilens`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except EquilensError as error:
        print(f"equilens {args.command}: error: {error}", file=sys.stderr)
        return 2


def _add_read_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--energy-key", help="atoms.info key of the energy (default: calculator results)"
    )
    parser.add_argument(
        "--forces-key", help="atoms.arrays key of the forces (default: calculator results)"
    )


def _species(text: Optional[str]) -> Optional[tuple]:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise EquilensError(f"--species expects comma-separated integers, got {text!r}")


def _run_descriptors(args: argparse.Namespace) -> int:
    if args.file is None:
        frames = iron_water_example()
        name = args.name or "example"
        source = "built-in Fe(110)/water example (equilens.data.examples)"
    else:
        options = ReadOptions(
            index=args.index,
            energy_key=args.energy_key,
            forces_key=args.forces_key,
            require_energy=False,
        )
        frames = read_dataset(args.file, options).frames
        name = args.name or Path(args.file).stem
        source = str(args.file)

    base = load_yaml(args.config) if args.config else {}
    overrides = {
        "preset": args.preset,
        "species": _species(args.species),
        "lambda_max": args.lambda_max,
        "gradients": True if args.gradients else None,
        "neighbors": args.neighbors,
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    base.pop("kind", None)
    configs: List[DescriptorConfig] = []
    for kind in args.kind:
        mapping = dict(base)
        if kind == "lambda_soap":
            mapping.pop("gradients", None)
            mapping.pop("neighbors", None)
        configs.append(
            from_mapping(DescriptorConfig, {**mapping, "kind": kind}, args.config or "cli")
        )

    cache = None if args.cache_dir.lower() == "none" else args.cache_dir
    summary = descriptor_job(
        frames,
        name,
        configs,
        args.output,
        cache_dir=cache,
        progress=not args.no_progress,
        source=source,
    )
    print(f"{name}: {summary['n_frames']} frames, {summary['n_atoms']} atoms ({source})")
    for kind, entry in summary["descriptors"].items():
        print(
            f"  {kind}: {entry['n_blocks']} blocks -> {entry['file']} "
            f"({entry['seconds']:.2f} s), plot {entry['plot']}"
        )
    print(f"  summary: {Path(args.output) / (name + '.json')}")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from .config import load_yaml
    from .train_potential import load_config, train_potential

    if "target" in load_yaml(args.config):
        return _run_train_tensor(args)
    config = load_config(args.config)
    if args.output:
        config = dataclasses.replace(config, output_dir=args.output)
    if args.epochs:
        config = dataclasses.replace(
            config, training=dataclasses.replace(config.training, epochs=args.epochs)
        )
    _, summary = train_potential(config, progress=not args.no_progress)
    print(
        f"{config.name}: best epoch {summary['best_epoch']} of {summary['epochs_run']} "
        f"({summary['seconds_per_epoch']:.2f} s/epoch) -> {config.output}"
    )
    for split, metrics in summary["metrics"].items():
        print(
            f"  {split:10s} energy RMSE {metrics['energy_rmse_meV_per_atom']:7.2f} meV/atom   "
            f"force RMSE {metrics['force_rmse_eV_per_A']:.3f} eV/A"
        )
    return 0


def _run_train_tensor(args: argparse.Namespace) -> int:
    from .train_tensor import load_tensor_config, train_tensor_model, with_overrides

    config = with_overrides(load_tensor_config(args.config), args.output, args.epochs)
    _, summary = train_tensor_model(config, progress=not args.no_progress)
    print(
        f"{config.name}: best epoch {summary['best_epoch']} of {summary['epochs_run']} "
        f"({summary['seconds']:.0f} s) -> {config.output_dir}"
    )
    for model, splits in summary["metrics"].items():
        if not isinstance(splits, dict) or "test" not in splits:
            continue
        test = splits["test"]
        line = f"  {model:8s} test RMSE / std {test['relative_rmse']:.4f}"
        if "cartesian_relative_rmse" in test:
            line += f"   Cartesian {test['cartesian_relative_rmse']:.4f}"
        if "overlap_percent_rmse" in test:
            line += f"   overlap %RMSE {test['overlap_percent_rmse']:.2f}"
        print(line)
    return 0


def _run_latents(args: argparse.Namespace) -> int:
    from .latents import latents, save_latents
    from .potential import Potential
    from .tensor_model import TensorModel, is_tensor_model

    if is_tensor_model(args.model):
        return _run_tensor_latents(args, TensorModel.load(args.model))
    potential = Potential.load(args.model)
    dataset = read_dataset(
        args.file,
        ReadOptions(index=args.index, require_energy=False, species=tuple(potential.species)),
    )
    layers = latents(
        potential,
        dataset.frames,
        per_species=not args.single_block,
        pooling=args.pooling,
        batch_size=args.batch_size,
    )
    folder = save_latents(args.output, layers)
    for name, tensor in layers.items():
        block = tensor.block(0)
        print(f"  {name:16s} {len(tensor.keys)} block(s), {block.values.shape[1]} features")
    print(f"{len(layers)} layers of {len(dataset)} frames -> {folder}")
    return 0


def _run_tensor_latents(args: argparse.Namespace, model) -> int:
    """Equivariant layers (per lambda) and their invariant summaries."""
    import ase.io

    from .latents import latents, save_latents
    from .tensor_model import to_numpy

    frames = ase.io.read(args.file, args.index)
    frames = frames if isinstance(frames, list) else [frames]
    equivariant = {
        name: to_numpy(tensor) for name, tensor in model.layers(frames, args.batch_size).items()
    }
    folder = save_latents(Path(args.output) / "equivariant", equivariant)
    invariant = latents(
        model,
        frames,
        per_species=not args.single_block,
        pooling=args.pooling,
        batch_size=args.batch_size,
    )
    save_latents(Path(args.output) / "invariant", invariant)
    for name, tensor in equivariant.items():
        lambdas = sorted({int(k.values[0]) for k in tensor.keys})
        print(f"  {name:16s} {len(tensor.keys)} blocks, o3_lambda {lambdas}")
    print(
        f"{len(equivariant)} layers of {len(frames)} frames -> {folder} "
        f"and {folder.parent / 'invariant'}"
    )
    return 0


def _run_study(args: argparse.Namespace) -> int:
    import time

    from .study import load_study_config, run_study

    config = load_study_config(args.config)
    start = time.perf_counter()
    folder = run_study(config, progress=not args.quiet)
    print(f"study '{config.name}' done in {time.perf_counter() - start:.0f} s -> {folder}")
    return 0


def _run_generate_iron_water(args: argparse.Namespace) -> int:
    import time

    from .generate import IronWaterConfig, generate_iron_water

    values = load_yaml(args.config) if args.config else {}
    for name in ("starts", "seed"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    config = from_mapping(IronWaterConfig, values, where=args.config or "command line")
    print(
        f"{config.starts} trajectories x {config.steps} steps of {config.method}, "
        f"{config.n_frames} frames -> {args.output}"
    )
    start = time.perf_counter()
    path = generate_iron_water(args.output, config, progress=not args.quiet)
    print(f"done in {time.perf_counter() - start:.0f} s -> {path}")
    return 0


def _run_generate_water_tensors(args: argparse.Namespace) -> int:
    import time

    from .generate.water_tensors import WaterTensorsConfig, generate_water_tensors

    values = load_yaml(args.config) if args.config else {}
    for name in ("monomers", "dimers", "trimers", "basis"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    config = from_mapping(WaterTensorsConfig, values, where=args.config or "command line")
    print(
        f"{config.monomers} monomers, {config.dimers} dimers, {config.trimers} trimers at "
        f"{config.xc}/{config.basis} -> {args.output}"
    )
    start = time.perf_counter()
    path = generate_water_tensors(args.output, config, progress=not args.quiet)
    print(f"done in {time.perf_counter() - start:.0f} s -> {path}")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from .chemiscope_page import standalone_html
    from .export_potential import export_potential
    from .potential import Potential
    from .tensor_model import is_tensor_model

    if is_tensor_model(args.model):
        return _run_export_tensor(args)
    potential = Potential.load(args.model)
    dataset = read_dataset(
        args.file,
        ReadOptions(
            index=args.index,
            require_energy=False,
            require_forces=False,
            species=tuple(potential.species),
        ),
    )
    output = args.output or f"chemiscope_out/{Path(args.file).stem}.json.gz"
    species = None
    if args.species:
        species = [int(z) for z in args.species.split(",")]
    path = export_potential(
        output,
        potential,
        dataset,
        layers=args.layers,
        projections=args.projections,
        forces=not args.no_forces,
        species=species,
        cutoff=args.cutoff,
        color=args.color,
        lod=not args.no_lod,
    )
    size = path.stat().st_size / 1e6
    print(f"{len(dataset)} frames, {dataset.n_atoms} atoms -> {path} ({size:.2f} MB)")
    if args.html:
        print(f"offline viewer -> {standalone_html(path)}")
    return 0


def _run_export_tensor(args: argparse.Namespace) -> int:
    import ase.io
    import metatensor

    from .chemiscope_page import standalone_html
    from .export_tensor import export_tensor_model
    from .tensor_model import TensorModel

    model = TensorModel.load(args.model)
    frames = ase.io.read(args.file, args.index)
    frames = frames if isinstance(frames, list) else [frames]
    reference = metatensor.load(args.reference) if args.reference else None
    output = args.output or f"chemiscope_out/{Path(args.file).stem}.json.gz"
    species = [int(z) for z in args.species.split(",")] if args.species else None
    path = export_tensor_model(
        output,
        model,
        frames,
        reference,
        projections=args.projections,
        species=species,
        cutoff=args.cutoff,
        color=args.color,
        lod=not args.no_lod,
    )
    print(f"{len(frames)} frames -> {path} ({path.stat().st_size / 1e6:.2f} MB)")
    if args.html:
        print(f"offline viewer -> {standalone_html(path)}")
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from .compare import compare, compare_by_species, save_comparison
    from .latents import load_latents
    from .storage import load_tensormap

    features = {}
    for item in args.inputs:
        name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        path = Path(path)
        if path.is_dir():
            for layer, tensor in load_latents(path).items():
                features[f"{name or path.name}/{layer}"] = tensor
        elif path.is_file():
            features[name or path.stem] = load_tensormap(path)
        else:
            raise EquilensError(f"{path}: no such file or latents folder")
    if args.equivariant:
        return _print_equivariant(features, args)
    options = dict(
        measures=args.measures,
        n_samples=args.n_samples,
        selection=args.selection,
        lfre_samples=args.lfre_samples,
        lfre_neighbors=args.lfre_neighbors,
        seed=args.seed,
        progress=True,
        n_jobs=args.jobs,
    )
    if args.per_species:
        results = {
            f"center_type_{z}": result
            for z, result in compare_by_species(features, **options).items()
        }
    else:
        results = {"": compare(features, **options)}
    for label, result in results.items():
        files = save_comparison(result, Path(args.output) / label)
        width = max(len(n) for n in result.names)
        for measure, matrix in result.matrices.items():
            title = f"{measure.upper()} {label}".strip()
            print(f"{title} (row: source -> column: target), {result.n_samples} samples")
            print(" " * (width + 2) + " ".join(f"{n[-8:]:>8s}" for n in result.names))
            for name, row in zip(result.names, matrix):
                print(f"{name:>{width}s}  " + " ".join(f"{v:8.3f}" for v in row))
        print(f"-> {', '.join(files.values())}")
    return 0


def _print_equivariant(features, args: argparse.Namespace) -> int:
    from .equivariant_compare import equivariant_gfre_matrix, save_equivariant_comparison

    matrices = equivariant_gfre_matrix(features, seed=args.seed)
    files = save_equivariant_comparison(matrices, list(features), args.output)
    width = max(len(n) for n in features)
    for key, matrix in matrices.items():
        print(f"equivariant GFRE, block {key} (row: source -> column: target)")
        for name, row in zip(features, matrix):
            print(f"{name:>{width}s}  " + " ".join(f"{v:8.3f}" for v in row))
    print(f"-> {files['matrices']}")
    return 0


def _run_data_list(args: argparse.Namespace) -> int:
    root = data_root()
    print(f"data folder: {root if root is not None else '(none found)'}")
    for name, entry in manifest().items():
        present = root is not None and (root / entry.path).is_file()
        print(
            f"  {name:28s} {entry.frames:5d} frames  {entry.formula:12s} "
            f"{'present' if present else 'missing'}"
        )
    return 0


def _run_data_info(args: argparse.Namespace) -> int:
    options = ReadOptions(
        index=args.index,
        energy_key=args.energy_key,
        forces_key=args.forces_key,
        require_forces=args.require_forces,
        species=_species(args.species),
        on_error="skip" if args.skip_bad else "raise",
    )
    dataset = read_dataset(args.file, options)
    summary = dataset.summary()
    summary["skipped"] = [dataclasses.asdict(s) for s in dataset.skipped]
    print(json.dumps(summary, indent=2))
    return 0


def _run_data_fetch(args: argparse.Namespace) -> int:
    for name in args.name:
        path = fetch_reference(name, Path(args.dest) if args.dest else None)
        print(f"{name}: {path} (SHA-256 verified)")
    return 0


def _run_data_verify(args: argparse.Namespace) -> int:
    failures = 0
    for name in manifest():
        try:
            reference_path(name, verify=True)
            print(f"  {name:28s} ok")
        except EquilensError as error:
            failures += 1
            print(f"  {name:28s} FAILED: {error}")
    return 1 if failures else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
