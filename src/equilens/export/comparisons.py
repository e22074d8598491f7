"""Files of comparisons: tables, matrices as JSON, and heatmaps."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, Mapping, Sequence, Tuple

import numpy as np

from ..analysis.compare import Comparison
from ..storage import atomic_write, save_json
from .plots import plot_matrix

Key = Tuple[int, ...]


def save_comparison(result: Comparison, folder) -> Dict[str, str]:
    """Write ``table.csv``, ``matrices.json`` and one heatmap PNG per measure."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "table.csv", "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=["measure", "source", "target", "value"])
        writer.writeheader()
        writer.writerows(result.table)
    save_json(
        folder / "matrices.json",
        {
            "names": result.names,
            "rows": "source",
            "columns": "target",
            "n_samples": result.n_samples,
            "n_train": result.n_train,
            "n_test": result.n_test,
            "lfre_samples": result.lfre_samples,
            "rank_samples": result.rank_samples,
            "matrices": {m: v.tolist() for m, v in result.matrices.items()},
            "per_set": result.per_set,
        },
    )
    files = {"table": str(folder / "table.csv"), "matrices": str(folder / "matrices.json")}
    titles = {"cka": "debiased linear CKA", "ii": "information imbalance Δ(row → column)"}
    for measure, matrix in result.matrices.items():
        title = titles.get(measure, f"{measure.upper()} (row: source, column: target)")
        path = plot_matrix(matrix, result.names, folder / f"heatmap_{measure}.png", title=title)
        files[measure] = str(path)
    for measure, values in result.per_set.items():
        column = np.array([[values[name]] for name in result.names])
        path = plot_matrix(
            column, result.names, folder / f"{measure}.png", title=measure.upper(),
            columns=[measure], axis_labels=("feature set", ""),
        )  # fmt: skip
        files[measure] = str(path)
    return files


def save_equivariant_comparison(
    matrices: Mapping[Key, np.ndarray], names: Sequence[str], folder
) -> Dict[str, str]:
    """Write ``matrices.json`` and one heatmap ``block_<key>.png`` per key."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    blocks = {}
    for key, matrix in matrices.items():
        tag = "_".join(str(v) for v in key)
        blocks[tag] = matrix.tolist()
        path = folder / f"block_{tag}.png"
        plot_matrix(matrix, list(names), path, title=f"equivariant GFRE, block {key}")
        files[tag] = str(path)
    save_json(folder / "matrices.json", {"names": list(names), "blocks": blocks})
    files["matrices"] = str(folder / "matrices.json")
    return files
