"""Composition filters (equilens data filter) on rock-salt oxides built here."""

from __future__ import annotations

import csv
import json
import re

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from equilens.cli import main
from equilens.data.filters import FilterConfig, cation_entropy, filter_frames
from equilens.errors import ConfigError

HEO = {"Mg": 4, "Co": 4, "Ni": 4, "Cu": 4, "Zn": 4}


def rocksalt(cations: dict, anion: str = "O", energy: bool = True) -> ase.Atoms:
    """A 40-atom rock-salt cell with the given cation counts (20 sites)."""
    atoms = bulk("MgO", "rocksalt", a=4.2, cubic=True).repeat((5, 1, 1))
    sites = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Mg"]
    symbols = [s for s, n in cations.items() for _ in range(n)]
    assert len(symbols) == len(sites)
    order = np.random.default_rng(0).permutation(len(sites))
    numbers = atoms.get_chemical_symbols()
    for site, symbol in zip(np.array(sites)[order], symbols):
        numbers[site] = symbol
    atoms.set_chemical_symbols([anion if s == "O" else s for s in numbers])
    if energy:
        atoms.calc = SinglePointCalculator(atoms, energy=-5.0 * len(atoms))
    return atoms


FRAMES = [
    rocksalt(HEO),  # kept
    rocksalt({"Mg": 5, "Co": 5, "Ni": 5, "Cu": 5}),  # 4 cations
    rocksalt({"Mg": 10, "Co": 3, "Ni": 3, "Cu": 2, "Zn": 2}),  # uneven: 1.38 R
    rocksalt({"Mg": 4, "Co": 4, "Ni": 4, "Cu": 4, "Pt": 4}),  # noble metal
    rocksalt(HEO, anion="S"),  # a sulfide
    rocksalt({"Mg": 4, "Co": 4, "Ni": 4, "Cu": 4, "Si": 4}),  # a non-metal cation
    rocksalt(HEO, energy=False),  # no energy
]
CONFIG = FilterConfig(
    contains=("O",),
    min_elements=6,
    others_metals=True,
    require_energy=True,
    min_cation_entropy=1.5,
    equimolar_tolerance=0.05,
    exclude=("Pt", "Au", "Ag"),
)


def test_each_filter_keeps_and_drops_what_it_should():
    assert cation_entropy(FRAMES[0], ["O"]) == pytest.approx(np.log(5))
    kept, dropped = filter_frames(FRAMES, CONFIG)
    assert kept == [0]
    reasons = dict(dropped)
    assert reasons[1] == "5 elements < 6"
    assert reasons[2].startswith("cation entropy 1.376 R < 1.5")
    assert reasons[3] == "has excluded Pt"
    assert reasons[4] == "lacks O"
    assert reasons[5] == "non-metal Si besides O"
    assert reasons[6] == "no energy"
    # entropy alone: the 4-cation oxide (ln 4 = 1.39 R) fails 1.5 R, the uneven one too
    _, dropped = filter_frames(FRAMES[:3], FilterConfig(contains=("O",), min_cation_entropy=1.5))
    assert [i for i, _ in dropped] == [1, 2] and "1.386 R" in dropped[0][1]
    # nearly ideal entropy (1.505 R) but not equimolar within 0.05
    uneven = rocksalt({"Mg": 8, "Co": 3, "Ni": 3, "Cu": 3, "Zn": 3})
    assert cation_entropy(uneven, ["O"]) > 1.5
    _, dropped = filter_frames([uneven], FilterConfig(contains=("O",), equimolar_tolerance=0.05))
    assert dropped[0][1].startswith("not equimolar: Mg 0.400 vs 1/5")


def test_cli_writes_kept_frames_and_the_table(tmp_path, capsys):
    source = tmp_path / "oxides.extxyz"
    ase.io.write(source, FRAMES)
    output = tmp_path / "heo.extxyz"
    arguments = ["data", "filter", str(source), str(output), "--contains", "O", "--min-elements",
                 "6", "--others-metals", "--require-energy", "--min-entropy", "1.5",
                 "--equimolar", "0.05", "--exclude", "Pt,Au,Ag"]  # fmt: skip
    assert main(arguments) == 0
    kept = ase.io.read(output, ":")
    assert len(kept) == 1 and kept[0].get_chemical_formula() == FRAMES[0].get_chemical_formula()
    with open(tmp_path / "heo.extxyz.dropped.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["frame"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert "kept 1 of 7 frames" in capsys.readouterr().out
    # other filters into the same output: refused, one line, exit 2
    assert main(["data", "filter", str(source), str(output), "--contains", "O"]) == 2
    assert main(["data", "filter", str(source), str(output), "--contains", "Xx"]) == 2
    assert "unknown element 'Xx'" in capsys.readouterr().err


def test_bad_filters_are_named():
    with pytest.raises(ConfigError, match="both required and excluded"):
        FilterConfig(contains=("O",), exclude=("O",))
    with pytest.raises(ConfigError, match="equimolar_tolerance"):
        FilterConfig(equimolar_tolerance=1.5)


def _lemat_row(atoms: ase.Atoms, index: int) -> dict:
    """A row of the LeMat-Bulk schema (a subset of its columns)."""
    symbols = atoms.get_chemical_symbols()
    return {
        "immutable_id": f"test-{index}",
        "elements": sorted(set(symbols)),
        "nsites": len(atoms),
        "chemical_formula_reduced": atoms.get_chemical_formula(empirical=True),
        "lattice_vectors": atoms.cell.tolist(),
        "cartesian_site_positions": atoms.positions.tolist(),
        "species_at_sites": symbols,
        "dimension_types": [1, 1, 1],
        "energy": -5.0 * len(atoms) - index,
        "energy_corrected": -5.1 * len(atoms),
        "forces": (0.01 * np.arange(3 * len(atoms)).reshape(-1, 3)).tolist(),
        "stress_tensor": np.diag([1.0, 2.0, 3.0]).tolist(),
        "functional": "pbe",
    }


def test_lemat_reader_on_a_local_file_then_filter(tmp_path, capsys):
    """The LeMat reader on a JSON-lines file in LeMat-Bulk's schema (no
    network here; the hub goes through Hugging Face datasets), then the HEO
    filter on what it read."""
    import json

    pytest.importorskip("datasets")
    from equilens.data.lemat import read_lemat

    path = tmp_path / "lemat.jsonl"
    path.write_text("\n".join(json.dumps(_lemat_row(a, i)) for i, a in enumerate(FRAMES[:4])))
    frames = read_lemat(str(path), stress_unit="kbar")
    assert len(frames) == 4 and frames[0].info["immutable_id"] == "test-0"
    np.testing.assert_allclose(frames[1].positions, FRAMES[1].positions)
    assert frames[2].get_potential_energy() == pytest.approx(-5.0 * 40 - 2)
    np.testing.assert_allclose(frames[0].get_forces()[1], [0.03, 0.04, 0.05])
    kbar = 0.1 / 160.21766  # eV/Å^3 (1 eV/Å^3 = 160.21766 GPa)
    np.testing.assert_allclose(frames[0].get_stress()[:3], [kbar, 2 * kbar, 3 * kbar], rtol=1e-5)
    assert filter_frames(frames, CONFIG)[0] == [0]
    output = tmp_path / "lemat.extxyz"
    assert main(["data", "lemat", str(output), "--source", str(path), "--limit", "2"]) == 0
    assert len(ase.io.read(output, ":")) == 2
    bad = _lemat_row(FRAMES[0], 0)
    bad["cartesian_site_positions"] = bad["cartesian_site_positions"][:-1]
    path.write_text(json.dumps(_lemat_row(FRAMES[0], 0)) + "\n" + json.dumps(bad))
    assert main(["data", "lemat", str(output), "--source", str(path)]) == 2
    assert "frame 1" in capsys.readouterr().err


def test_lemat_parquet_gives_the_same_frames(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow
    import pyarrow.parquet

    from equilens.data.lemat import read_lemat

    rows = [_lemat_row(a, i) for i, a in enumerate(FRAMES[:3])]
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), tmp_path / "lemat.parquet")
    (tmp_path / "lemat.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    parquet, lines = (
        read_lemat(str(tmp_path / "lemat.parquet")),
        read_lemat(str(tmp_path / "lemat.jsonl")),
    )
    for a, b in zip(parquet, lines):
        np.testing.assert_allclose(a.positions, b.positions)
        assert a.get_potential_energy() == b.get_potential_energy()


def _text_in_a_number(row):
    row["energy"] = "minus five"
    return json.dumps(row)


def _nan_position(row):
    row["cartesian_site_positions"][3][1] = float("nan")
    return json.dumps(row)


BAD_LEMAT = {
    "broken-json-line": (lambda row: json.dumps(row)[:-5], r"lemat.jsonl: line 2: not JSON"),
    "text-in-a-number": (_text_in_a_number, r"lemat.jsonl: frame 1: a value is not numeric"),
    "nan-position": (_nan_position, r"lemat.jsonl: frame 1: non-finite positions"),
    "not-an-object": (lambda row: "[1, 2, 3]", r"line 2: a row is a JSON object, got list"),
    "empty-file": (None, r"lemat.jsonl: no rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_LEMAT))
def test_malformed_lemat_files_are_named(case, tmp_path, capsys):
    second, message = BAD_LEMAT[case]
    path = tmp_path / "lemat.jsonl"
    first = json.dumps(_lemat_row(FRAMES[0], 0))
    path.write_text("" if second is None else first + "\n" + second(_lemat_row(FRAMES[1], 1)))
    output = tmp_path / "out.extxyz"
    capsys.readouterr()
    assert main(["data", "lemat", str(output), "--source", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not output.exists()


def test_lemat_limits_and_outputs_are_checked(tmp_path, capsys):
    path = tmp_path / "lemat.jsonl"
    path.write_text(json.dumps(_lemat_row(FRAMES[0], 0)))
    assert (
        main(["data", "lemat", str(tmp_path / "o.extxyz"), "--source", str(path), "--limit", "-1"])
        == 2
    )
    assert "limit: expected >= 1" in capsys.readouterr().err
    assert main(["data", "lemat", str(tmp_path), "--source", str(path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    assert (
        main(
            ["data", "lemat", str(tmp_path / "o.extxyz"), "--source", str(tmp_path / "bad.parquet")]
        )
        == 2
    )
    assert "bad.parquet: not a readable parquet file" in capsys.readouterr().err


def test_overview_writes_figures_maps_and_a_chemiscope_file(tmp_path):
    """``equilens data overview`` on oxides of many compositions."""
    import json

    from equilens.export.chemiscope import validate_chemiscope
    from equilens.export.overview import table_position

    assert table_position(1) == (0, 0) and table_position(2) == (0, 17)
    assert table_position(30) == (3, 11) and table_position(57) == (8, 3)
    assert table_position(72) == (5, 3) and table_position(104) == (6, 3)
    rng = np.random.default_rng(1)
    pool = ["Mg", "Co", "Ni", "Cu", "Zn", "Fe", "Mn", "Cr", "Li", "Al", "Ti", "Ca"]
    frames = []
    for _ in range(24):
        chosen = rng.choice(pool, 5, replace=False)
        frames.append(rocksalt({s: 4 for s in chosen}))
        frames[-1].rattle(0.05, seed=len(frames))
    source = tmp_path / "oxides.extxyz"
    ase.io.write(source, frames)
    output = tmp_path / "overview"
    assert main(["data", "overview", str(source), "--output", str(output)]) == 0
    for name in ("elements.png", "sizes.png", "maps.png", "exemplars.png", "exemplars.extxyz"):
        assert (output / name).stat().st_size > 1000, name
    summary = json.loads((output / "overview.json").read_text())
    assert summary["frames"] == 24 and set(summary["elements"]) <= set(pool) | {"O"}
    assert summary["elements"]["O"]["frames"] == 24 and len(summary["exemplars"]) == 6
    data = validate_chemiscope(output / "overview.json.gz")
    assert len(data["structures"]) == 24
    assert any("composition" in name for name in data["properties"])
    # another setting does not silently replace the overview; --overwrite does
    again = ["data", "overview", str(source), "--output", str(output), "--exemplars", "3"]
    assert main(again) == 2 and len(summary["exemplars"]) == 6
    assert main(again + ["--overwrite"]) == 0
    assert len(json.loads((output / "overview.json").read_text())["exemplars"]) == 3
