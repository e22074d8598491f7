"""``equilens generate GENERATOR``: labelled reference data, made offline."""

from __future__ import annotations

import argparse
from typing import Callable


def register(commands) -> None:
    parser = commands.add_parser(
        "generate",
        help="labelled reference data from quantum-chemistry codes (tblite, PySCF)",
        description="Generate labelled data offline with real quantum-chemistry codes.",
    )
    generators = parser.add_subparsers(dest="generator", metavar="GENERATOR", required=True)
    iw = _generator(
        generators,
        "iron-water",
        "Fe(110)/water frames from GFN1-xTB Langevin dynamics (tblite)",
        "Short GFN1-xTB Langevin trajectories from randomised Fe(110)/water starts; every "
        "stride-th frame is appended to OUTPUT (extended XYZ, energy and forces, "
        "provenance in info). Interrupted runs resume from OUTPUT.state.",
        "IronWaterConfig fields (size, n_water, ...)",
        "data/iron_water_xtb.extxyz",
        run_iron_water,
    )
    iw.add_argument("--starts", type=int, help="number of trajectories (overrides the config)")
    wt = _generator(
        generators,
        "water-tensors",
        "dipoles, polarizabilities, density coefficients of water clusters (PySCF)",
        "Kohn-Sham calculations (default B3LYP/cc-pVDZ, RI-JK with cc-pVDZ-JKFIT) on water "
        "monomers and on dimers/trimers cut from liquid water: dipole (lambda 1), "
        "finite-field polarizability (lambda 0 + 2), Coulomb-fitted density coefficients; "
        "TensorMaps in featomic's convention. Resumes from OUTPUT/partial.",
        "WaterTensorsConfig fields",
        "data/water_tensors",
        run_water_tensors,
        seed=False,
    )
    for name in ("monomers", "dimers", "trimers"):
        wt.add_argument(f"--{name}", type=int, help=f"number of {name} (overrides the config)")
    wt.add_argument("--basis", help="orbital basis (overrides the config), e.g. aug-cc-pvdz")
    heo = _generator(
        generators,
        "heo",
        "rock-salt high-entropy oxides, relaxed and rattled with GFN1-xTB (tblite)",
        "Random equimolar substitutions of the cation sublattice of a rock-salt supercell "
        "(default (Mg,Co,Ni,Cu,Zn)O, 20 formula units), relaxed (positions and cell) with "
        "GFN1-xTB, then rattled around the minimum: energies, forces and stress in OUTPUT, the "
        "reference minima in OUTPUT's stem + .minima.extxyz. Resumes from OUTPUT.state.",
        "HeoConfig fields (cations, formula_units, ...)",
        "data/heo_xtb.extxyz",
        run_heo,
    )
    heo.add_argument("--starts", type=int, help="number of substitutions (overrides the config)")
    el = _generator(
        generators,
        "elements",
        "random periodic cells of many elements, briefly relaxed with GFN1-xTB (tblite)",
        "Random compositions of 2 to 4 elements of a pool of 60 (H to Bi), packed at random "
        "into periodic cells of 8 to 24 atoms, a few BFGS steps (positions and cell) with "
        "GFN1-xTB and rattled copies: energies, forces and stress in OUTPUT. Compositions "
        "whose xTB calculation fails are skipped. Resumes from OUTPUT.state.",
        "ElementsConfig fields (elements, atoms, ...)",
        "data/elements_xtb.extxyz",
        run_elements,
    )
    el.add_argument("--compositions", type=int, help="how many compositions (overrides the config)")


def _generator(
    generators,
    name: str,
    summary: str,
    description: str,
    fields: str,
    output: str,
    handler: Callable[[argparse.Namespace], int],
    seed: bool = True,
) -> argparse.ArgumentParser:
    """One generator's parser with the options every generator has:
    ``--config`` (a YAML of ``fields``), ``--output``, ``--seed`` (where the
    generator draws at random) and ``--quiet``."""
    parser = generators.add_parser(name, help=summary, description=description)
    parser.add_argument("--config", help=f"YAML with {fields}")
    parser.add_argument("--output", default=output)
    if seed:
        parser.add_argument("--seed", type=int, help="seed (overrides the config)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=handler)
    return parser


def run_iron_water(args: argparse.Namespace) -> int:
    from ..data.generate import IronWaterConfig, generate_iron_water

    config = _config(IronWaterConfig, args, ("starts", "seed"))
    print(
        f"{config.starts} trajectories x {config.steps} steps of {config.method}, "
        f"{config.n_frames} frames -> {args.output}"
    )
    return _generate(generate_iron_water, config, args)


def run_water_tensors(args: argparse.Namespace) -> int:
    from ..data.generate.water_tensors import WaterTensorsConfig, generate_water_tensors

    config = _config(WaterTensorsConfig, args, ("monomers", "dimers", "trimers", "basis"))
    print(
        f"{config.monomers} monomers, {config.dimers} dimers, {config.trimers} trimers at "
        f"{config.xc}/{config.basis} -> {args.output}"
    )
    return _generate(generate_water_tensors, config, args, folder=True)


def run_heo(args: argparse.Namespace) -> int:
    from ..data.generate.heo import HeoConfig, generate_heo

    config = _config(HeoConfig, args, ("starts", "seed"))
    print(
        f"{config.starts} substitutions of {'/'.join(config.cations)} in a "
        f"{config.formula_units}-formula-unit rock-salt supercell, {config.method} -> {args.output}"
    )
    return _generate(generate_heo, config, args)


def run_elements(args: argparse.Namespace) -> int:
    from ..data.generate.elements import ElementsConfig, generate_elements

    config = _config(ElementsConfig, args, ("compositions", "seed"))
    fewest, most = config.elements_per_cell
    print(
        f"{config.compositions} compositions of {fewest} to {most} of {len(config.elements)} "
        f"elements, {config.atoms[0]} to {config.atoms[1]} atoms, at most "
        f"{config.compositions * config.frames_per_composition} frames of {config.method} -> "
        f"{args.output}"
    )
    return _generate(generate_elements, config, args)


def _generate(generate, config, args: argparse.Namespace, folder: bool = False) -> int:
    """Run ``generate(output, config, progress)`` and say how long it took;
    the output (an extxyz file, or a ``folder``) is checked writable first."""
    import time
    from pathlib import Path

    from ..errors import OutputError
    from ..storage import check_writable

    output = Path(args.output)
    if not folder and output.is_dir():
        raise OutputError(f"{output}: is a folder; give the path of the extxyz file to write")
    check_writable(output if folder else output.parent)
    start = time.perf_counter()
    path = generate(args.output, config, progress=not args.quiet)
    print(f"done in {time.perf_counter() - start:.0f} s -> {path}")
    return 0


def _config(cls, args: argparse.Namespace, options):
    """The generator's configuration: ``--config`` (YAML) with the command-line
    ``options`` that were given on top."""
    from ..config import from_mapping, load_yaml

    values = load_yaml(args.config) if args.config else {}
    values.update(
        {name: getattr(args, name) for name in options if getattr(args, name) is not None}
    )
    return from_mapping(cls, values, where=args.config or "command line")
