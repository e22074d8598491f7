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
    from ..errors import ConfigError

    if text is None:
        return None
    try:
        species = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(
            f"{option} expects comma-separated atomic numbers, got {text!r}"
        ) from None
    from ase.data import chemical_symbols

    bad = [z for z in species if not 0 < z < len(chemical_symbols)]
    if bad or not species:
        raise ConfigError(f"{option}: {bad or 'no'} valid atomic numbers in {text!r}")
    return species


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
