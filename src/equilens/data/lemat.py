"""LeMat-Bulk (LeMaterial, on Hugging Face) as ASE frames.

LeMat-Bulk unifies Materials Project, Alexandria and OQMD bulk calculations
in one OPTIMADE-like schema: per row ``lattice_vectors`` (3 x 3, Å),
``cartesian_site_positions`` (n x 3, Å), ``species_at_sites`` (n symbols),
``dimension_types`` (periodicity), ``energy`` (eV), ``forces`` (n x 3,
eV/Å), ``stress_tensor``, ``functional``, ``immutable_id``, and the
composition columns. :func:`read_lemat` streams it with Hugging Face
``datasets`` (``pip install 'equilens[lemat]'``), from the hub (``source``
the repository, ``config`` one of :data:`CONFIGS`) or from a local parquet or
JSON-lines file in the same schema, and returns ASE frames with the energy
and forces as calculator results and the identifiers in ``info``, ready for
``equilens data filter``.

The schema does not state the unit of ``stress_tensor``; it is attached only
when ``stress_unit`` is given (``"kbar"`` or ``"eV/A^3"``).
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any, List, Mapping, Optional

import ase
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import GPa

from ..errors import ConfigError, DataError

REPOSITORY = "LeMaterial/LeMat-Bulk"
CONFIGS = ("compatible_pbe", "compatible_pbesol", "compatible_scan", "non_compatible")
REQUIRED = ("lattice_vectors", "cartesian_site_positions", "species_at_sites")
STRESS_UNITS = {"kbar": 0.1 * GPa, "eV/A^3": 1.0}
LOCAL_FORMATS = {".parquet": "parquet", ".json": "json", ".jsonl": "json"}


def _datasets():
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "reading LeMat-Bulk needs Hugging Face datasets: pip install 'equilens[lemat]'"
        ) from None
    return datasets


def read_lemat(
    source: str = REPOSITORY,
    config: str = "compatible_pbe",
    split: str = "train",
    limit: Optional[int] = None,
    stress_unit: Optional[str] = None,
) -> List[ase.Atoms]:
    """The first ``limit`` rows of LeMat-Bulk (or of a local file in its schema).

    :param source: the hub repository, or a local ``.parquet`` / ``.json`` /
        ``.jsonl`` file
    :param config: the hub configuration (functional family), see :data:`CONFIGS`
    :param limit: at most this many rows (the hub dataset is streamed)
    :param stress_unit: attach ``stress_tensor`` converted from this unit
    """
    if stress_unit is not None and stress_unit not in STRESS_UNITS:
        raise ConfigError(f"stress_unit: expected one of {list(STRESS_UNITS)}, got {stress_unit}")
    datasets = _datasets()
    path = Path(source)
    if path.suffix in LOCAL_FORMATS:
        if not path.is_file():
            raise DataError("no such file", path=path)
        rows: Any = datasets.load_dataset(
            LOCAL_FORMATS[path.suffix], data_files=str(path), split="train"
        )
    else:
        if config not in CONFIGS:
            raise ConfigError(f"config: expected one of {list(CONFIGS)}, got {config!r}")
        rows = datasets.load_dataset(source, config, split=split, streaming=True)
    frames = []
    for index, row in enumerate(islice(rows, limit)):
        frames.append(row_to_atoms(row, source, index, stress_unit))
    return frames


def row_to_atoms(
    row: Mapping[str, Any], source: str, index: int, stress_unit: Optional[str] = None
) -> ase.Atoms:
    """One LeMat-Bulk row as ASE atoms; a row that does not fit the schema is
    a :class:`~equilens.errors.DataError` naming the source and row."""

    def fail(problem: str):
        return DataError(problem, path=source, frame=index)

    missing = [name for name in REQUIRED if row.get(name) is None]
    if missing:
        raise fail(f"missing {', '.join(missing)}")
    cell = np.asarray(row["lattice_vectors"], dtype=float)
    positions = np.asarray(row["cartesian_site_positions"], dtype=float)
    symbols = list(row["species_at_sites"])
    if cell.shape != (3, 3) or positions.shape != (len(symbols), 3):
        raise fail(f"cell {cell.shape} / positions {positions.shape} for {len(symbols)} sites")
    periodic = row.get("dimension_types") or [1, 1, 1]
    try:
        atoms = ase.Atoms(symbols, positions, cell=cell, pbc=[bool(p) for p in periodic])
    except (KeyError, ValueError) as error:
        raise fail(f"unusable species or cell ({error})") from None
    results: dict = {}
    if row.get("energy") is not None:
        results["energy"] = float(row["energy"])
    forces = row.get("forces")
    if forces is not None and len(forces):
        forces = np.asarray(forces, dtype=float)
        if forces.shape != positions.shape:
            raise fail(f"forces {forces.shape} for {len(symbols)} sites")
        results["forces"] = forces
    if stress_unit is not None and row.get("stress_tensor") is not None:
        stress = np.asarray(row["stress_tensor"], dtype=float) * STRESS_UNITS[stress_unit]
        results["stress"] = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    for key in ("immutable_id", "functional", "energy_corrected", "chemical_formula_reduced"):
        if row.get(key) is not None:
            atoms.info[key] = row[key]
    return atoms
