"""Arguments and helpers shared by several verbs (no heavy imports here)."""

from __future__ import annotations

import argparse
from typing import Optional, Tuple


def add_read_arguments(parser: argparse.ArgumentParser) -> None:
    """``--index``, ``--energy-key`` and ``--forces-key`` of dataset readers."""
    parser.add_argument("--index", default=":", help="frames to read, ASE slice syntax")
    parser.add_argument(
        "--energy-key", help="atoms.info key of the energy (default: calculator results)"
    )
    parser.add_argument(
        "--forces-key", help="atoms.arrays key of the forces (default: calculator results)"
    )


def parse_species(text: Optional[str], option: str = "--species") -> Optional[Tuple[int, ...]]:
    """Comma-separated atomic numbers (``"1,8,26"``), or ``None``."""
    from ..config import validate_species
    from ..errors import ConfigError

    if text is None:
        return None
    try:
        species = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"{option} expects comma-separated atomic numbers, got {text!r}"
        ) from None
    return validate_species(species, option)


def read_frames(args: argparse.Namespace, species=None, require_forces: bool = False):
    """The validated dataset of ``args.file`` (``--index``, keys, species)."""
    from ..data.io import ReadOptions, read_dataset
    from ..data.splits import resolve_path

    options = ReadOptions(
        index=args.index,
        energy_key=getattr(args, "energy_key", None),
        forces_key=getattr(args, "forces_key", None),
        require_energy=False,
        require_forces=require_forces,
        species=None if species is None else tuple(species),
    )
    return read_dataset(resolve_path(args.file), options)


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: replace outputs written by another run."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace outputs written by a run with other settings, model or data "
        "(refused otherwise)",
    )


def add_device_argument(
    parser: argparse.ArgumentParser, what: str, key: Optional[str] = None, more: str = ""
) -> None:
    """``--device``: where ``what`` runs (overriding the configuration's ``key``)."""
    default = f"overrides {key}" if key else "default: auto"
    parser.add_argument(
        "--device",
        help=f"where {what} run: auto (a CUDA GPU when torch sees one), cpu, cuda or "
        f"cuda:N ({default}){more}",
    )


def add_scheduler_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--scheduler``: run ``what`` as Dask tasks (:mod:`equilens.study.cluster`)."""
    parser.add_argument(
        "--scheduler",
        help=f"run {what} as Dask tasks: local:N (a LocalCluster of N worker processes on "
        "this machine) or tcp://HOST:PORT (a running Dask scheduler, e.g. dask-jobqueue's "
        "SLURMCluster); default: this process",
    )


def fingerprint_of_inputs(args: argparse.Namespace, names, files=()) -> dict:
    """What identifies a run of a verb: the given options ``names`` and the
    contents (SHA-256) of the input ``files``."""
    from pathlib import Path

    from ..storage import file_sha256

    options = {name: getattr(args, name, None) for name in names}
    contents: dict = {}
    for item in files:
        path = Path(str(item))
        if path.is_file():
            contents[str(item)] = file_sha256(path)
        elif path.is_dir():
            contents[str(item)] = {
                p.name: file_sha256(p) for p in sorted(path.glob("*")) if p.is_file()
            }
        else:
            contents[str(item)] = str(item)
    return {"options": options, "inputs": contents}


def library_defaults(args: argparse.Namespace, function, names) -> argparse.Namespace:
    """Fill the options ``names`` that were not given (``None``) with the
    defaults of ``function``'s parameters of the same names (the library is
    the one source of its defaults; the command line only overrides them)."""
    import inspect

    parameters = inspect.signature(function).parameters
    for name in names:
        if getattr(args, name, None) is None:
            default = parameters[name].default
            setattr(args, name, list(default) if isinstance(default, tuple) else default)
    return args
