"""Figures of descriptors and comparisons: PCA maps, annotated heatmaps, latent drift."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
from metatensor import TensorMap

from ..figures import pyplot, save_figure

PathLike = Union[str, "os.PathLike[str]"]


def plot_invariant_pca(tensor: TensorMap, path: PathLike, title: str = "") -> Path:
    """Scatter the first two principal components of every atom, by species.

    Uses the invariant blocks of ``tensor`` (``o3_lambda = 0``, ``o3_sigma = 1``
    for lambda-SOAP; every block for SOAP). Neighbor types still in the keys
    are moved to properties first, so that all blocks share properties.
    """
    neighbor_keys = [n for n in tensor.keys.names if n.startswith("neighbor_")]
    if neighbor_keys:
        tensor = tensor.keys_to_properties(neighbor_keys)
    values, types = [], []
    for key, block in tensor.items():
        names = key.names
        if "o3_lambda" in names and (key["o3_lambda"] != 0 or key["o3_sigma"] != 1):
            continue
        if block.values.shape[0] == 0:
            continue
        values.append(block.values.reshape(block.values.shape[0], -1))
        types.append(np.full(block.values.shape[0], int(key["center_type"])))
    from ase.data import chemical_symbols
    from sklearn.decomposition import PCA

    features = np.concatenate(values)
    species = np.concatenate(types)
    n_components = min(2, *features.shape)
    pca = PCA(n_components=n_components, random_state=0).fit(features)
    projected = pca.transform(features)
    if projected.shape[1] == 1:
        projected = np.column_stack([projected, np.zeros(len(projected))])

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    for z in np.unique(species):
        mask = species == z
        ax.scatter(*projected[mask].T, s=6, alpha=0.7, label=chemical_symbols[z])
    ratio = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.1f}% variance)")
    if len(ratio) > 1:
        ax.set_ylabel(f"PC2 ({100 * ratio[1]:.1f}% variance)")
    ax.set_title(title or "PCA of the invariant descriptor")
    ax.legend(title="center", markerscale=3)
    return save_figure(fig, path)


def plot_matrix(
    matrix: np.ndarray,
    names,
    path: PathLike,
    title: str = "",
    columns=None,
    axis_labels=("source", "target"),
    shade: Optional[np.ndarray] = None,
) -> Path:
    """A heatmap with the value written in each cell.

    :param names: row names (and column names when ``columns`` is None:
        an asymmetric source -> target matrix)
    :param columns: column names of a rectangular matrix
    :param axis_labels: ``(rows, columns)`` axis titles
    :param shade: what the colours show, when not the written values (the
        same shape: e.g. ``1 - error`` for columns where lower is better, so
        that one colour means one thing across columns)
    """
    shade = matrix if shade is None else shade
    columns = list(names if columns is None else columns)
    n_rows, n_columns = len(names), len(columns)
    plt = pyplot()
    fig, ax = plt.subplots(
        figsize=(1.6 + 0.8 * n_columns, 0.8 + 0.5 * n_rows + 0.2 * max(map(len, columns)) / 4),
        dpi=120,
    )
    finite = shade[np.isfinite(shade)]
    top = max(1.0, float(finite.max())) if finite.size else 1.0
    image = ax.imshow(shade, cmap="viridis_r", vmin=0, vmax=top, aspect="auto")
    for i in range(n_rows):
        for j in range(n_columns):
            value, tone = matrix[i, j], shade[i, j]
            ax.text(
                j,
                i,
                "-" if not np.isfinite(value) else f"{value:.2f}",
                ha="center",
                va="center",
                color="white" if np.isfinite(tone) and tone > 0.5 * top else "black",
                fontsize=8,
            )
    ax.set_xticks(range(n_columns), columns, rotation=45, ha="right")
    ax.set_yticks(range(n_rows), names)
    if columns == list(names):
        ax.set_xlabel(axis_labels[1])
        ax.set_ylabel(axis_labels[0])
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return save_figure(fig, path)


def plot_drift(rows, pairs, path: PathLike, title: str = "") -> Path:
    """GFRE both ways (left) and CKA (right) per layer, for each pair of
    models, from the rows of :func:`~equilens.analysis.drift.latent_drift`
    (skipped layers are left out)."""
    rows = [r for r in rows if not r.get("skipped")]
    names = [r["layer"] for r in rows]
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (a, b), colour in zip(pairs, colours):
        for source, target, style in ((a, b, "o-"), (b, a, "o--")):
            values = [r[f"gfre_{source}_to_{target}"] for r in rows]
            axes[0].plot(names, values, style, color=colour, label=f"{source} → {target}")
        values = [r[f"cka_{a}_{b}"] for r in rows]
        axes[1].plot(names, values, "o-", color=colour, label=f"{a} vs {b}")
    axes[0].set(ylabel="GFRE (test atoms, per species)", title="reconstruction error")
    axes[1].set(ylabel="linear CKA (debiased)", title="similarity", ylim=(None, 1.02))
    for axis in axes:
        axis.legend(fontsize=7)
        axis.tick_params(axis="x", rotation=45)
    fig.suptitle(title)
    return save_figure(fig, path)
