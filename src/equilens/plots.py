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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
