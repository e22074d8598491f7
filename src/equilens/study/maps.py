"""The study's maps: a figure of the best layers and the chemiscope file.

Per-species layers (each species its own coordinates) are mapped species by
species: one PCA per center type, shown side by side in the figure and
fitted within each species in the chemiscope file. Categorical labels get
discrete colours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np
from ase.data import chemical_symbols

from ..analysis.labels import CATEGORICAL, O_STATES
from ..config import to_mapping
from ..figures import pyplot, save_figure
from ..tensormaps import frame_atoms
from .layers import FeatureSets

SHOWN = ("height", "o_state", "cn_o_h", "hbonds")


def plot_layer_maps(
    folder: Path, sets: FeatureSets, best: Sequence[str], labels, numbers: np.ndarray
) -> Path:
    """``layer_maps.png``: PCA maps of the ``best`` sets, one row per set and
    species (per-species sets) and one column per label."""
    from sklearn.decomposition import PCA

    plt = pyplot()
    rows: list = []
    for name in best:
        if name in sets.per_species:
            rows.extend((name, z) for z in np.unique(numbers))
        else:
            rows.append((name, None))
    masks = [np.ones(len(numbers), bool) if z is None else numbers == z for _, z in rows]
    # a label constant on the atoms of a row (O-H coordination of Fe) says nothing there
    varying = [set(varying_labels(labels, mask)) for mask in masks]
    shown = [n for n in SHOWN if n in labels and any(n in v for v in varying)]
    fig, axes = plt.subplots(
        len(rows), len(shown), figsize=(3.2 * len(shown), 3.0 * len(rows)), squeeze=False
    )
    for row, (name, z) in enumerate(rows):
        mask = masks[row]
        values = sets.values[name][mask]
        width = min(2, values.shape[1], len(values))
        coordinates = np.zeros((len(values), 2))
        if width > 0:
            pca = PCA(n_components=width, random_state=0)
            coordinates[:, :width] = pca.fit_transform(values)
        title = name if z is None else f"{name} [{chemical_symbols[int(z)]}]"
        for column, label in enumerate(shown):
            ax = axes[row, column]
            if label not in varying[row]:
                ax.axis("off")
                ax.text(0.5, 0.5, f"{label}: constant here", ha="center", fontsize=8,
                        transform=ax.transAxes, color="grey")  # fmt: skip
                continue
            everywhere = np.asarray(labels[label])
            _scatter(fig, ax, coordinates, everywhere[mask], label, np.unique(everywhere))
            ax.set_title(f"{title}: {label}", fontsize=8)
    return save_figure(fig, folder / "layer_maps.png", dpi=90)


def varying_labels(labels, mask: np.ndarray) -> list:
    """The labels of ``SHOWN`` that take more than one value on the
    atoms of ``mask``."""
    return [
        name for name in SHOWN
        if name in labels and len(np.unique(np.asarray(labels[name])[mask])) > 1
    ]  # fmt: skip


def _scatter(fig, ax, coordinates, values, label: str, categories: np.ndarray) -> None:
    """One map coloured by ``label``; a categorical label's colours follow
    its ``categories`` (all of its values), so that a category has one
    colour in every panel whichever categories the panel's atoms have."""
    if label in CATEGORICAL:
        names = O_STATES if label == "o_state" else {}
        for value in np.unique(values):
            mask = values == value
            index = int(np.searchsorted(categories, value))
            colour = pyplot().get_cmap("tab10")(index % 10)
            ax.scatter(*coordinates[mask].T, s=2, color=colour, label=names.get(value, value))
        ax.legend(fontsize=6, markerscale=3)
    else:
        points = ax.scatter(*coordinates.T, c=values, s=2, cmap="viridis")
        fig.colorbar(points, ax=ax, shrink=0.7)
    ax.set_xticks([])
    ax.set_yticks([])


def export_study(config, frames, sets: FeatureSets, labels, atomic_energy, initial: str) -> Path:
    """The study's chemiscope file: every compared layer's map (per-species
    layers fitted species by species), all labels; it opens on ``initial``."""
    from ..export.chemiscope import export_chemiscope

    _, _, numbers = frame_atoms(frames)
    tensors: Dict[str, object] = dict(sets.tensors)
    properties = {k: v for k, v in labels.items() if k != "species"}
    properties["atomic energy"] = atomic_energy
    return export_chemiscope(
        Path(config.chemiscope_dir) / f"{config.name}.json.gz",
        frames,
        layers=tensors,
        atom_properties=properties,
        units={"height": "Å", "force": "eV/Å", "atomic energy": "eV"},
        name=f"equilens study {config.name}",
        description="Every layer of the study's models (first seed), the external models and "
        f"the references, as PCA maps over the same atoms, with physical labels; it opens on "
        f"the most interpretable layer, {initial}. Per-species layers are mapped species by "
        "species. Switch the map axes to compare layers.",
        hypers={
            "descriptor": config.descriptor.descriptor_hypers(len(set(numbers.tolist()))),
            "sweep": [to_mapping(a) for a in config.sweep],
            "models": list(config.models),
        },
        color="height",
        initial_map=initial,
        species_maps=sorted(sets.per_species),
    )
