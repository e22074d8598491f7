"""Figures saved as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase.data import chemical_symbols  # noqa: E402
from metatensor import TensorMap  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

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
    features = np.concatenate(values)
    species = np.concatenate(types)
    n_components = min(2, *features.shape)
    pca = PCA(n_components=n_components).fit(features)
    projected = pca.transform(features)
    if projected.shape[1] == 1:
        projected = np.column_stack([projected, np.zeros(len(projected))])

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
    return _save(fig, path)


def plot_parity(
    energy_pred: np.ndarray,
    energy_ref: np.ndarray,
    forces_pred: np.ndarray,
    forces_ref: np.ndarray,
    numbers: np.ndarray,
    path: PathLike,
    title: str = "",
) -> Path:
    """Predicted vs reference energies per atom (meV/atom from the mean) and
    force components (eV/Å, by species), with RMSEs in the legends."""
    fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=120)
    shift = np.mean(energy_ref)
    e_ref = 1000 * (np.asarray(energy_ref) - shift)
    e_pred = 1000 * (np.asarray(energy_pred) - shift)
    rmse = np.sqrt(np.mean((e_pred - e_ref) ** 2))
    ax_e.scatter(e_ref, e_pred, s=8, alpha=0.7, label=f"RMSE {rmse:.2f} meV/atom")
    _diagonal(ax_e, e_ref, e_pred)
    ax_e.set_xlabel("reference energy - mean (meV/atom)")
    ax_e.set_ylabel("predicted energy - mean (meV/atom)")
    ax_e.legend()
    for z in np.unique(numbers):
        mask = numbers == z
        ref, pred = forces_ref[mask].ravel(), forces_pred[mask].ravel()
        error = np.sqrt(np.mean((pred - ref) ** 2))
        ax_f.scatter(
            ref, pred, s=2, alpha=0.4, label=f"{chemical_symbols[z]}: RMSE {error:.3f} eV/Å"
        )
    _diagonal(ax_f, forces_ref.ravel(), forces_pred.ravel())
    ax_f.set_xlabel("reference force component (eV/Å)")
    ax_f.set_ylabel("predicted force component (eV/Å)")
    ax_f.legend(markerscale=4)
    fig.suptitle(title)
    return _save(fig, path)


def plot_learning_curve(history, path: PathLike) -> Path:
    """Training and validation loss, and the learning rate, per epoch."""
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    ax.semilogy(epochs, [row["train_loss"] for row in history], label="training loss")
    ax.semilogy(epochs, [row["validation_loss"] for row in history], label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (normalised MSE)")
    twin = ax.twinx()
    twin.semilogy(
        epochs,
        [row["learning_rate"] for row in history],
        color="grey",
        ls=":",
        label="learning rate",
    )
    twin.set_ylabel("learning rate")
    lines = ax.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    ax.legend(lines[0] + extra[0], lines[1] + extra[1])
    return _save(fig, path)


def _diagonal(ax, *arrays) -> None:
    values = np.concatenate([np.ravel(a) for a in arrays])
    low, high = values.min(), values.max()
    ax.plot([low, high], [low, high], color="black", lw=0.8)


def _save(fig, path: PathLike) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_matrix(
    matrix: np.ndarray,
    names,
    path: PathLike,
    title: str = "",
    columns=None,
    axis_labels=("source", "target"),
) -> Path:
    """A heatmap with the value written in each cell.

    :param names: row names (and column names when ``columns`` is None:
        an asymmetric source -> target matrix)
    :param columns: column names of a rectangular matrix
    :param axis_labels: ``(rows, columns)`` axis titles
    """
    columns = list(names if columns is None else columns)
    n_rows, n_columns = len(names), len(columns)
    fig, ax = plt.subplots(
        figsize=(1.6 + 0.8 * n_columns, 0.8 + 0.5 * n_rows + 0.2 * max(map(len, columns)) / 4),
        dpi=120,
    )
    finite = matrix[np.isfinite(matrix)]
    top = max(1.0, float(finite.max())) if finite.size else 1.0
    image = ax.imshow(matrix, cmap="viridis_r", vmin=0, vmax=top, aspect="auto")
    for i in range(n_rows):
        for j in range(n_columns):
            value = matrix[i, j]
            ax.text(
                j,
                i,
                "-" if not np.isfinite(value) else f"{value:.2f}",
                ha="center",
                va="center",
                color="white" if np.isfinite(value) and value > 0.5 * top else "black",
                fontsize=8,
            )
    ax.set_xticks(range(n_columns), columns, rotation=45, ha="right")
    ax.set_yticks(range(n_rows), names)
    if columns == list(names):
        ax.set_xlabel(axis_labels[1])
        ax.set_ylabel(axis_labels[0])
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)
