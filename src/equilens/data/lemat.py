"""LeMat-Bulk (LeMaterial, on Hugging Face) as ASE frames.

LeMat-Bulk unifies Materials Project, Alexandria and OQMD bulk calculations
in one OPTIMADE-like schema: per row ``lattice_vectors`` (3 x 3, Å),
``cartesian_site_positions`` (n x 3, Å), ``species_at_sites`` (n symbols),
``dimension_types`` (periodicity), ``energy`` (eV), ``forces`` (n x 3,
eV/Å), ``stress_tensor``, ``functional``, ``immutable_id``, and the
composition columns. :func:`read_lemat` streams it with Hugging Face
``datasets`` (``pip install 'equilens[lemat]'``), from the hub (``source``
the repository, ``config`` one of ``CONFIGS``) or from a local parquet or
JSON-lines file in the same schema, and returns ASE frames with the energy
and forces as calculator results and the identifiers in ``info``, ready for
``equilens data filter``.

The schema does not state the unit of ``stress_tensor``; it is attached only
when ``stress_unit`` is given (``"kbar"`` or ``"eV/A^3"``).
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Mapping, Optional

import ase
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import GPa

from ..errors import ConfigError, DataError
from .validation import check_frames

REPOSITORY = "LeMaterial/LeMat-Bulk"
CONFIGS = ("compatible_pbe", "compatible_pbesol", "compatible_scan", "non_compatible")
REQUIRED = ("lattice_vectors", "cartesian_site_positions", "species_at_sites")
STRESS_UNITS = {"kbar": 0.1 * GPa, "eV/A^3": 1.0}
LOCAL_FORMATS = (".parquet", ".json", ".jsonl")


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
    :param config: the hub configuration (functional family), see ``CONFIGS``
    :param limit: at most this many rows (the hub dataset is streamed)
    :param stress_unit: attach ``stress_tensor`` converted from this unit
    """
    if stress_unit is not None and stress_unit not in STRESS_UNITS:
        raise ConfigError(f"stress_unit: expected one of {list(STRESS_UNITS)}, got {stress_unit}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit: expected >= 1 rows (--limit), got {limit}")
    path = Path(source)
    rows: Iterable[Mapping[str, Any]]
    if path.suffix in LOCAL_FORMATS:
        rows = _local_rows(path)
    else:
        if config not in CONFIGS:
            raise ConfigError(f"config: expected one of {list(CONFIGS)}, got {config!r}")
        rows = _datasets().load_dataset(source, config, split=split, streaming=True)
    frames = [
        row_to_atoms(row, source, i, stress_unit) for i, row in enumerate(islice(rows, limit))
    ]
    if not frames:
        raise DataError("no rows", path=source)
    check_frames(frames, path=source)
    return frames


def _local_rows(path: Path) -> Iterator[Mapping[str, Any]]:
    """The rows of a local parquet or JSON-lines (or JSON array) file; a
    file that is not one is a :class:`DataError` naming it (and the line)."""
    if not path.is_file():
        raise DataError("no such file", path=path)
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet

            table = pyarrow.parquet.read_table(path)
        except ImportError:
            raise ConfigError(
                "reading parquet needs pyarrow: pip install 'equilens[lemat]'"
            ) from None
        except Exception as error:  # pyarrow raises several types for a damaged file
            problem = f"not a readable parquet file ({_first_line(error)})"
            raise DataError(problem, path=path) from None
        yield from table.to_pylist()
        return
    text = path.read_text(errors="replace")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except ValueError as error:
            raise DataError(f"not a JSON array ({_first_line(error)})", path=path) from None
        yield from (_row(row, path, i + 1) for i, row in enumerate(rows))
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError as error:
                raise DataError(
                    f"line {number}: not JSON ({_first_line(error)})", path=path
                ) from None
            yield _row(row, path, number)


def _row(row: Any, path: Path, number: int) -> Mapping[str, Any]:
    if not isinstance(row, dict):
        raise DataError(
            f"line {number}: a row is a JSON object, got {type(row).__name__}", path=path
        )
    return row


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160] if text else ''}"


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
    try:
        cell = np.asarray(row["lattice_vectors"], dtype=float)
        positions = np.asarray(row["cartesian_site_positions"], dtype=float)
        symbols = [str(symbol) for symbol in row["species_at_sites"]]
        energy = None if row.get("energy") is None else float(row["energy"])
        forces = row.get("forces")
        forces = None if forces is None or not len(forces) else np.asarray(forces, dtype=float)
        stress = row.get("stress_tensor") if stress_unit is not None else None
        stress = None if stress is None else np.asarray(stress, dtype=float).reshape(3, 3)
    except (TypeError, ValueError) as error:
        raise fail(f"a value is not numeric or of the wrong shape ({error})") from None
    if cell.shape != (3, 3) or positions.shape != (len(symbols), 3):
        raise fail(f"cell {cell.shape} / positions {positions.shape} for {len(symbols)} sites")
    periodic = row.get("dimension_types") or [1, 1, 1]
    try:
        atoms = ase.Atoms(symbols, positions, cell=cell, pbc=[bool(p) for p in periodic])
    except (KeyError, ValueError) as error:
        raise fail(f"unusable species or cell ({error})") from None
    results: dict = {}
    if energy is not None:
        results["energy"] = energy
    if forces is not None:
        if forces.shape != positions.shape:
            raise fail(f"forces {forces.shape} for {len(symbols)} sites")
        results["forces"] = forces
    if stress is not None and stress_unit is not None:
        stress = stress * STRESS_UNITS[stress_unit]
        results["stress"] = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    for key in ("immutable_id", "functional", "energy_corrected", "chemical_formula_reduced"):
        if row.get(key) is not None:
            atoms.info[key] = row[key]
    return atoms
