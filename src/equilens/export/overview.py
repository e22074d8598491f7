"""An overview of a multi-element dataset: what is in it, as figures and a map.

:func:`dataset_overview` writes into one folder:

- ``elements.png``: a periodic table coloured by the number of frames that
  contain each element (and the atom count in each cell);
- ``sizes.png``: the distributions of the number of atoms and, when the frames
  have energies, of the energy per atom;
- ``maps.png``: 2D maps (UMAP with umap-learn, else PCA) of the composition
  vectors (element fractions) and of structure-pooled, geometry-only SOAP
  (every atom counted as one species, so its size does not grow with the
  number of elements; mean over the atoms of each structure);
- ``exemplars.extxyz`` and ``exemplars.png``: structures chosen by
  farthest-point sampling in the SOAP map's feature space;
- ``overview.json.gz``: one chemiscope file with every structure, both maps
  and the per-structure properties (atoms, elements, energy per atom);
- ``overview.json``: the numbers behind the figures.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import ase
import ase.io
import numpy as np
from ase.data import chemical_symbols

from ..figures import pyplot, save_figure

PathLike = Union[str, "os.PathLike[str]"]
PERIOD_ENDS = (2, 10, 18, 36, 54, 86, 118)
#: the files :func:`dataset_overview` writes
OUTPUTS = ("elements.png", "sizes.png", "maps.png", "exemplars.extxyz", "exemplars.png",
           "overview.json.gz", "overview.json")  # fmt: skip


def table_position(z: int) -> Tuple[int, int]:
    """``(row, column)`` of element ``z`` in the usual periodic-table layout
    (rows 0-6 the periods, 8 and 9 the lanthanides and actinides; columns 0-17)."""
    period = next(i for i, end in enumerate(PERIOD_ENDS) if z <= end)
    start = (0,) + PERIOD_ENDS
    offset = z - start[period] - 1  # 0-based position in its period
    if period == 0:
        return 0, 0 if z == 1 else 17
    if period in (1, 2):
        return period, offset if offset < 2 else offset + 10
    if period in (3, 4):
        return period, offset
    if 2 <= offset <= 16:  # La-Lu, Ac-Lr
        return period + 3, offset + 1
    return period, offset if offset < 2 else offset - 14


def element_counts(frames: Sequence[ase.Atoms]) -> Tuple[Counter, Counter]:
    """Frames containing each element, and atoms of each element."""
    in_frames: Counter = Counter()
    atoms: Counter = Counter()
    for frame in frames:
        numbers = [int(z) for z in frame.numbers]
        in_frames.update(set(numbers))
        atoms.update(numbers)
    return in_frames, atoms


def composition_vectors(frames: Sequence[ase.Atoms], species: Sequence[int]) -> np.ndarray:
    """Element fractions of each frame over ``species``."""
    index = {z: i for i, z in enumerate(species)}
    out = np.zeros((len(frames), len(species)))
    for row, frame in enumerate(frames):
        for z in frame.numbers:
            out[row, index[int(z)]] += 1
        out[row] /= max(len(frame), 1)
    return out


def geometry_soap(frames: Sequence[ase.Atoms], hypers: dict) -> np.ndarray:
    """Structure-pooled SOAP with every atom as one species (mean over atoms)."""
    from ..descriptors import compute_soap

    blind = []
    for frame in frames:
        copy = frame.copy()
        copy.calc = None
        copy.numbers = np.ones(len(copy), dtype=int)
        blind.append(copy)
    soap = compute_soap(blind, [1], hypers)
    block = soap.block(0)
    system = np.asarray(block.samples.column("system"))
    values = np.asarray(block.values)
    pooled = np.zeros((len(frames), values.shape[1]))
    np.add.at(pooled, system, values)
    return pooled / np.bincount(system, minlength=len(frames))[:, None]


def embed(values: np.ndarray, seed: int = 0) -> Tuple[np.ndarray, str]:
    """A 2D map of ``values``: UMAP when umap-learn is installed and there are
    enough rows, else PCA; returns the map and the method's name."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    scaled = StandardScaler().fit_transform(values)
    if len(values) >= 10:
        try:
            import umap

            neighbors = min(15, len(values) - 1)
            reducer = umap.UMAP(n_components=2, n_neighbors=neighbors, random_state=seed)
            return reducer.fit_transform(scaled), "UMAP"
        except ImportError:
            pass
    return PCA(n_components=2, random_state=seed).fit_transform(scaled), "PCA"


def farthest_points(values: np.ndarray, k: int) -> List[int]:
    """``k`` rows chosen by farthest-point sampling, starting from the first."""
    chosen = [0]
    distance = np.linalg.norm(values - values[0], axis=1)
    while len(chosen) < min(k, len(values)):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(values - values[chosen[-1]], axis=1))
    return chosen


def energies_per_atom(frames: Sequence[ase.Atoms]) -> np.ndarray:
    """Energy per atom of each frame (eV), NaN where a frame has none."""
    out = np.full(len(frames), np.nan)
    for i, frame in enumerate(frames):
        results = getattr(frame.calc, "results", {}) if frame.calc is not None else {}
        if "energy" in results:
            out[i] = float(results["energy"]) / len(frame)
    return out


def plot_elements(in_frames: Counter, atoms: Counter, n_frames: int, path: PathLike) -> Path:
    """The periodic table coloured by the fraction of frames with each element."""
    from matplotlib import colors

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(12, 6.4), dpi=120)
    cmap = plt.get_cmap("viridis")
    norm = colors.LogNorm(vmin=1, vmax=max(max(in_frames.values(), default=1), 2))
    for z in range(1, 119):
        row, column = table_position(z)
        count = in_frames.get(z, 0)
        face = cmap(norm(count)) if count else (0.93, 0.93, 0.93)
        ax.add_patch(plt.Rectangle((column, -row), 0.95, 0.95, color=face))
        dark = count and norm(count) < 0.6
        ax.text(column + 0.47, -row + 0.6, chemical_symbols[z], ha="center", va="center",
                fontsize=8, color="white" if dark else "black")  # fmt: skip
        if count:
            ax.text(column + 0.47, -row + 0.22, str(atoms[z]), ha="center", va="center",
                    fontsize=5, color="white" if dark else "black")  # fmt: skip
    ax.set_xlim(-0.2, 18.2)
    ax.set_ylim(-9.2, 1.1)
    ax.set_axis_off()
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(mappable, ax=ax, shrink=0.6, label="frames containing the element")
    ax.set_title(f"{len(in_frames)} elements in {n_frames} frames (small numbers: atoms)")
    return save_figure(fig, path)


def plot_sizes(n_atoms: np.ndarray, energies: np.ndarray, path: PathLike) -> Path:
    """Histograms of the number of atoms and of the energy per atom."""
    plt = pyplot()
    has_energy = bool(np.isfinite(energies).any())
    fig, axes = plt.subplots(1, 2 if has_energy else 1, figsize=(9 if has_energy else 4.5, 3.4))
    axes = np.atleast_1d(axes)
    axes[0].hist(n_atoms, bins=min(30, max(5, len(set(n_atoms.tolist())))), color="tab:blue")
    axes[0].set(xlabel="atoms per frame", ylabel="frames")
    if has_energy:
        axes[1].hist(energies[np.isfinite(energies)], bins=30, color="tab:orange")
        axes[1].set(xlabel="energy per atom (eV)", ylabel="frames")
    return save_figure(fig, path)


def plot_maps(maps: Dict[str, Tuple[np.ndarray, str]], colour: np.ndarray, label: str, path):
    """The 2D maps side by side, coloured by ``colour``."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(maps), figsize=(4.8 * len(maps), 4))
    low, high = float(np.min(colour)), float(np.max(colour))
    low, high = (low - 0.5, high + 0.5) if low == high else (low, high)
    for axis, (name, (points, method)) in zip(np.atleast_1d(axes), maps.items()):
        scatter = axis.scatter(
            points[:, 0], points[:, 1], c=colour, s=10, cmap="viridis", vmin=low, vmax=high
        )
        axis.set(title=f"{name} ({method})", xticks=[], yticks=[])
    fig.colorbar(scatter, ax=np.atleast_1d(axes)[-1], label=label)
    return save_figure(fig, path)


def plot_exemplars(frames: Sequence[ase.Atoms], path: PathLike) -> Path:
    """The exemplary structures, drawn side by side."""
    from ase.visualize.plot import plot_atoms

    plt = pyplot()
    fig, axes = plt.subplots(1, len(frames), figsize=(3 * len(frames), 3))
    for axis, atoms in zip(np.atleast_1d(axes), frames):
        plot_atoms(atoms, axis, rotation="10x,20y,0z", radii=0.5)
        axis.set(title=atoms.get_chemical_formula(), xticks=[], yticks=[])
    return save_figure(fig, path)


def dataset_overview(
    frames: Sequence[ase.Atoms],
    output: PathLike,
    name: str = "dataset",
    n_exemplars: int = 6,
    seed: int = 0,
) -> Dict[str, object]:
    """Write the overview of ``frames`` into ``output`` (see the module
    docstring); returns the summary also written to ``overview.json``."""
    from ..descriptors import PRESETS
    from ..errors import ConfigError
    from ..storage import check_writable

    if n_exemplars < 1:
        raise ConfigError(f"n_exemplars: expected >= 1 (--exemplars), got {n_exemplars}")
    output = Path(output)
    check_writable(output)
    output.mkdir(parents=True, exist_ok=True)
    frames = list(frames)
    in_frames, atoms = element_counts(frames)
    species = sorted(atoms)
    n_atoms = np.array([len(f) for f in frames])
    energies = energies_per_atom(frames)
    composition = composition_vectors(frames, species)
    soap = geometry_soap(frames, PRESETS["small"].to_featomic())
    maps = {"composition": embed(composition, seed), "SOAP (geometry)": embed(soap, seed)}
    chosen = farthest_points(soap, n_exemplars)
    plot_elements(in_frames, atoms, len(frames), output / "elements.png")
    plot_sizes(n_atoms, energies, output / "sizes.png")
    n_elements = np.array([len(set(f.numbers)) for f in frames])
    plot_maps(maps, n_elements, "elements per frame", output / "maps.png")
    exemplars = [frames[i] for i in chosen]
    ase.io.write(output / "exemplars.extxyz", exemplars)
    plot_exemplars(exemplars, output / "exemplars.png")
    _chemiscope(frames, maps, n_atoms, n_elements, energies, output / "overview.json.gz", name)
    summary: Dict[str, object] = {
        "frames": len(frames),
        "atoms": int(n_atoms.sum()),
        "elements": {
            chemical_symbols[z]: {"frames": in_frames[z], "atoms": atoms[z]} for z in species
        },
        "atoms_per_frame": {"min": int(n_atoms.min()), "max": int(n_atoms.max())},
        "energy_per_atom_eV": None
        if not np.isfinite(energies).any()
        else {"min": float(np.nanmin(energies)), "max": float(np.nanmax(energies))},
        "maps": {k: method for k, (_, method) in maps.items()},
        "exemplars": chosen,
    }
    (output / "overview.json").write_text(json.dumps(summary, indent=2))
    return summary


def _chemiscope(frames, maps, n_atoms, n_elements, energies, path: Path, name: str) -> Path:
    import chemiscope

    properties: Dict[str, dict] = {
        "atoms": {"target": "structure", "values": n_atoms.tolist()},
        "elements": {"target": "structure", "values": n_elements.tolist()},
    }
    if np.isfinite(energies).all():
        properties["energy per atom"] = {
            "target": "structure", "values": energies.tolist(), "units": "eV"
        }  # fmt: skip
    for label, (points, method) in maps.items():
        for axis in (0, 1):
            properties[f"{label} {method} {axis + 1}"] = {
                "target": "structure", "values": points[:, axis].tolist()
            }  # fmt: skip
    first = next(iter(maps))
    method = maps[first][1]
    settings = {
        "map": {
            "x": {"property": f"{first} {method} 1"},
            "y": {"property": f"{first} {method} 2"},
            "color": {"property": "elements"},
        }
    }
    meta = {"name": f"{name}: overview", "description": "equilens data overview"}
    chemiscope.write_input(
        str(path), structures=list(frames), properties=properties, metadata=meta, settings=settings
    )
    return path
