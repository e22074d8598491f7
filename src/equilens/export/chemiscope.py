"""chemiscope export: structures, latent maps, labels, errors, arrows and ellipsoids.

:func:`export_chemiscope` writes one ``.json.gz`` file for chemiscope.org (or
the chemiscope Jupyter widget) through the ``chemiscope`` Python package, which
validates the input while building it. :func:`validate_chemiscope` reads a file
back and runs it through the same validation.

What goes in:

- the structures, and one environment (atom-centred, ``cutoff`` in Å) per
  selected atom (all atoms, or the atoms of some species);
- atom properties: the species, a 2D (or 3D) map of each layer by PCA and,
  when asked, PCovR and UMAP, any physical labels and per-atom values passed
  in (atomic energies, force errors, ...);
- structure properties passed in (reference and predicted energies, errors);
- shapes: per-atom arrows (reference and predicted forces) and
  per-structure arrows (dipoles) and ellipsoids (polarizabilities);
- metadata (name, description with the model and descriptor hypers,
  references) and settings that open on the first layer's map coloured by
  species, with the structure viewer showing environments.

Size: values are rounded (``digits`` significant digits for properties,
1e-4 Å for positions, 1e-3 for shape vectors) before gzip. Past 50,000
points chemiscope draws a level-of-detail subsample of the map while it is
zoomed out and every point once zoomed in (its ``useLOD`` map setting); the
export keeps that default (``lod=True``), since a 59,000-atom map drawn in
full is slow to pan, and every point stays in the file and selectable.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional, Union

import ase
import chemiscope
import numpy as np
from metatensor import TensorMap

from ..analysis.projection import Projector
from ..errors import EquilensError
from ..storage import atomic_write
from ..tensormaps import stack_blocks

PathLike = Union[str, Path]
PerAtom = Union[np.ndarray, Sequence[np.ndarray]]


def export_chemiscope(
    path: PathLike,
    frames: Sequence[ase.Atoms],
    *,
    layers: Optional[Mapping[str, TensorMap]] = None,
    projections: Sequence[str] = ("pca",),
    n_components: int = 2,
    projection_target: Optional[PerAtom] = None,
    atom_properties: Optional[Mapping[str, PerAtom]] = None,
    structure_properties: Optional[Mapping[str, np.ndarray]] = None,
    atom_arrows: Optional[Mapping[str, Sequence[np.ndarray]]] = None,
    structure_arrows: Optional[Mapping[str, np.ndarray]] = None,
    structure_ellipsoids: Optional[Mapping[str, np.ndarray]] = None,
    units: Optional[Mapping[str, str]] = None,
    species: Optional[Sequence[int]] = None,
    cutoff: float = 3.5,
    name: str = "equilens",
    description: str = "",
    hypers: Optional[Mapping[str, object]] = None,
    references: Sequence[str] = (),
    color: Optional[str] = None,
    digits: int = 4,
    lod: bool = True,
    seed: int = 0,
    initial_map: Optional[str] = None,
    species_maps: Sequence[str] = (),
) -> Path:
    """Write a chemiscope ``.json.gz`` (or ``.json``) file and return its path.

    :param path: output file, ending in ``.json.gz`` or ``.json``
    :param frames: the structures
    :param layers: ``{name: TensorMap}`` of per-atom features (latents of
        :func:`equilens.analysis.latents.latents`, descriptors) with samples
        ``(system, atom)`` covering every atom of ``frames``; each gets a map
        per method in ``projections``
    :param projections: any of ``"pca"``, ``"pcovr"``, ``"umap"``
    :param n_components: dimension of each map
    :param projection_target: per-atom target for PCovR (e.g. atomic energies)
    :param atom_properties: ``{name: values}`` per atom, as one array over all
        atoms in frame order or one array per frame (numbers or strings)
    :param structure_properties: ``{name: values}`` with one value per frame
    :param atom_arrows: ``{name: [(n_atoms, 3) per frame]}``, e.g. forces
    :param structure_arrows: ``{name: (n_frames, 3)}``, e.g. dipoles
    :param structure_ellipsoids: ``{name: (n_frames, 3, 3)}`` symmetric
        tensors, e.g. polarizabilities
    :param units: units of properties by name
    :param species: only atoms of these atomic numbers get environments and
        points on the map (default: every atom)
    :param cutoff: radius of the environments shown around each atom (Å)
    :param name: dataset name
    :param description: free text; ``hypers`` are appended as JSON
    :param hypers: model and descriptor hyper-parameters to record
    :param references: citations shown with the dataset
    :param color: atom property to colour the map by (default: species)
    :param digits: significant digits kept in property values
    :param lod: let chemiscope subsample maps past 50,000 points while zoomed out
    :param seed: seeds the projections
    :param initial_map: the layer whose map the file opens on (default: the
        first layer)
    :param species_maps: layers whose coordinates differ per species
        (per-species networks): their maps are fitted species by species
    """
    path = Path(path)
    if not (path.name.endswith(".json.gz") or path.name.endswith(".json")):
        raise EquilensError(f"{path}: the chemiscope file must end in .json.gz or .json")
    frames = list(frames)
    if not frames:
        raise EquilensError("nothing to export: no frames")
    if cutoff <= 0:
        raise EquilensError(f"environment cutoff must be positive, got {cutoff}")
    units = dict(units or {})
    n_atoms = np.array([len(f) for f in frames])
    numbers = np.concatenate([f.numbers for f in frames])
    mask = np.ones(len(numbers), dtype=bool)
    if species is not None:
        unknown = set(species) - set(numbers.tolist())
        if unknown:
            raise EquilensError(f"species {sorted(unknown)} are not in the frames")
        mask = np.isin(numbers, list(species))
    system = np.repeat(np.arange(len(frames)), n_atoms)
    atom = np.concatenate([np.arange(n) for n in n_atoms])
    environments = [(int(s), int(a), cutoff) for s, a in zip(system[mask], atom[mask])]

    properties: dict = {
        "species": {
            "target": "atom",
            "values": [ase.data.chemical_symbols[z] for z in numbers[mask]],
            "description": "chemical species of the central atom",
        }
    }
    target = None
    if projection_target is not None:
        target = _per_atom(projection_target, n_atoms, "projection_target")[mask]
    groups = numbers[mask]
    for layer, tensor in (layers or {}).items():
        values = _layer_values(tensor, layer, system, atom)[mask]
        split = groups if layer in species_maps else None
        maps = _layer_maps(layer, values, projections, n_components, target, seed, split)
        properties.update(maps)
    for key, values in (atom_properties or {}).items():
        _check_new(properties, key)
        values = _per_atom(values, n_atoms, key)[mask]
        properties[key] = _property("atom", values, key, units)
    for key, given in (structure_properties or {}).items():
        _check_new(properties, key)
        values = np.asarray(given)
        if len(values) != len(frames):
            raise EquilensError(
                f"structure property '{key}' has {len(values)} values for {len(frames)} frames"
            )
        properties[key] = _property("structure", values, key, units)

    shapes = {}
    for key, vectors in (atom_arrows or {}).items():
        shapes[key] = _atom_arrows(frames, vectors, key)
    for key, arrows in (structure_arrows or {}).items():
        shapes[key] = _structure_arrows(frames, arrows, key)
    for key, tensors in (structure_ellipsoids or {}).items():
        shapes[key] = _structure_ellipsoids(frames, tensors, key)

    if initial_map is not None and initial_map not in (layers or {}):
        raise EquilensError(f"initial_map '{initial_map}' is not one of the layers")
    settings = _settings(properties, projections, color, frames, lod, cutoff, initial_map)
    if shapes:
        settings["structure"][0]["shape"] = [next(iter(shapes))]

    text = description.strip()
    if hypers:
        text += ("\n\n" if text else "") + "Hyper-parameters: " + json.dumps(hypers, default=str)
    metadata = {"name": name, "description": text or name, "references": list(references)}

    data = chemiscope.create_input(
        structures=frames,
        metadata=metadata,
        properties=properties,
        environments=environments,
        shapes=shapes or None,
        settings=settings,
    )
    _round_dataset(data, digits)
    return _write(path, data)


def _check_new(properties: dict, key: str) -> None:
    if key in properties:  # it would replace the other one
        raise EquilensError(f"property '{key}' is given twice; give each a distinct name")


def _layer_maps(layer, values, projections, n_components, target, seed, groups=None) -> dict:
    """One map property per projection method of a layer's per-atom values
    (fitted within each group of ``groups`` when given)."""
    maps = {}
    parts = [np.arange(len(values))]
    if groups is not None:
        parts = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    for method in projections:
        coordinates = np.zeros((len(values), n_components))
        for rows in parts:
            if len(rows) <= n_components:  # too few atoms of this species to fit a map
                continue
            projector = Projector(method=method, n_components=n_components, seed=seed)
            y = None if method != "pcovr" or target is None else target[rows]
            coordinates[rows] = projector.fit_transform(values[rows], y)
        where = " (fitted species by species)" if groups is not None else ""
        maps[f"{layer} {method.upper()}"] = {
            "target": "atom",
            "values": coordinates,
            "description": f"{method.upper()} map of layer '{layer}' "
            f"({values.shape[1]} features){where}",
        }
    return maps


def _settings(properties, projections, color, frames, lod, cutoff, initial_map=None) -> dict:
    """Open on ``initial_map``'s (default: the first layer's) map, coloured by
    ``color`` (default: species)."""
    suffixes = tuple(f" {m.upper()}" for m in projections)
    layer_maps = [k for k in properties if k.endswith(suffixes)]
    if initial_map is not None:
        layer_maps = [f"{initial_map} {projections[0].upper()}"]
    x_axis = f"{layer_maps[0]}[1]" if layer_maps else "species"
    y_axis = f"{layer_maps[0]}[2]" if layer_maps else "species"
    colour = color or "species"
    known = colour in properties or any(k.startswith(f"{colour}[") for k in properties)
    if not known and colour != "species":
        raise EquilensError(f"cannot colour by '{colour}': no such atom property")
    return chemiscope.quick_settings(
        x=x_axis,
        y=y_axis,
        map_color=colour,
        target="atom",
        periodic=bool(np.any(frames[0].pbc)),
        map_settings={"useLOD": bool(lod)},
        structure_settings={
            "environments": {"activated": True, "cutoff": cutoff},
            "supercell": [1, 1, 1],
        },
    )


def _write(path: Path, data: dict) -> Path:
    """Strict JSON (no NaN), gzipped when the name ends in ``.gz``, atomically."""
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).encode("utf8")
    with atomic_write(path, "wb") as handle:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=9, mtime=0) as stream:
                stream.write(payload)
        else:
            handle.write(payload)
    return path


def read_chemiscope(path: PathLike) -> dict:
    """The JSON content of a chemiscope file (gzipped or not)."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf8") as handle:
        return json.load(handle)


def validate_chemiscope(path: PathLike) -> dict:
    """Read a chemiscope file back and run it through ``chemiscope.create_input``.

    :returns: the file's content
    :raises EquilensError: naming the file when chemiscope rejects it
    """
    data = read_chemiscope(path)
    environments = data.get("environments")
    try:
        chemiscope.create_input(
            structures=data["structures"],
            metadata=data["meta"],
            properties=data["properties"],
            environments=None
            if environments is None
            else [(e["structure"], e["center"], e["cutoff"]) for e in environments],
            shapes=data.get("shapes"),
            settings=data.get("settings"),
        )
    except Exception as error:  # chemiscope raises plain ValueError/Exception
        raise EquilensError(f"{path}: chemiscope rejects this file: {error}") from error
    return data


def _layer_values(tensor: TensorMap, layer: str, system: np.ndarray, atom: np.ndarray):
    values, samples = stack_blocks(tensor, layer)
    names = samples.names
    if "system" not in names or "atom" not in names:
        raise EquilensError(f"layer '{layer}' needs samples (system, atom), has {names}")
    rows = np.stack([samples.column("system"), samples.column("atom")], axis=1)
    rows = np.asarray(rows)
    expected = np.stack([system, atom], axis=1)
    if rows.shape != expected.shape or not np.array_equal(rows, expected):
        raise EquilensError(
            f"layer '{layer}' has {len(rows)} atoms that are not the {len(expected)} atoms of "
            "the frames in order"
        )
    return np.asarray(values, dtype=np.float64)


def _per_atom(values: PerAtom, n_atoms: np.ndarray, key: str) -> np.ndarray:
    per_frame = isinstance(values, (list, tuple)) and values and np.ndim(values[0]) > 0
    if per_frame:
        if len(values) != len(n_atoms):
            raise EquilensError(
                f"atom property '{key}' has {len(values)} arrays for {len(n_atoms)} frames"
            )
        lengths = [len(np.asarray(v)) for v in values]
        if lengths != n_atoms.tolist():
            bad = next(i for i, (a, b) in enumerate(zip(lengths, n_atoms)) if a != b)
            raise EquilensError(
                f"atom property '{key}': frame {bad} has {lengths[bad]} values for "
                f"{n_atoms[bad]} atoms"
            )
        return np.concatenate([np.asarray(v) for v in values])
    array = np.asarray(values)
    if len(array) != n_atoms.sum():
        raise EquilensError(
            f"atom property '{key}' has {len(array)} values for {n_atoms.sum()} atoms"
        )
    return array


def _property(target: str, values: np.ndarray, key: str, units: Mapping[str, str]) -> dict:
    values = np.asarray(values)
    if values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
        raise EquilensError(f"{target} property '{key}' contains NaN or inf")
    if values.dtype.kind in "US":
        values = values.tolist()
    entry = {"target": target, "values": values}
    if key in units:
        entry["units"] = units[key]
    return entry


def _atom_arrows(frames, vectors, key: str) -> dict:
    vectors = list(vectors)
    if len(vectors) != len(frames):
        raise EquilensError(f"arrows '{key}': {len(vectors)} arrays for {len(frames)} frames")
    copies = []
    for index, (frame, vector) in enumerate(zip(frames, vectors)):
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape != (len(frame), 3) or not np.all(np.isfinite(vector)):
            raise EquilensError(
                f"arrows '{key}': frame {index} needs finite ({len(frame)}, 3) vectors, "
                f"got shape {vector.shape}"
            )
        copy = frame.copy()
        copy.arrays["_arrow"] = vector
        copies.append(copy)
    return chemiscope.ase_vectors_to_arrows(copies, key="_arrow", target="atom", radius=0.08)


def _structure_arrows(frames, vectors, key: str) -> dict:
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.shape != (len(frames), 3) or not np.all(np.isfinite(vectors)):
        raise EquilensError(
            f"structure arrows '{key}' need finite ({len(frames)}, 3) vectors, got {vectors.shape}"
        )
    copies = []
    for frame, vector in zip(frames, vectors):
        copy = frame.copy()
        copy.info["_arrow"] = vector
        copies.append(copy)
    shape = chemiscope.ase_vectors_to_arrows(copies, key="_arrow", target="structure", radius=0.1)
    for frame, parameters in zip(frames, shape["parameters"]["structure"]):
        parameters["position"] = frame.get_center_of_mass().tolist()
    return shape


def _structure_ellipsoids(frames, tensors, key: str) -> dict:
    tensors = np.asarray(tensors, dtype=np.float64)
    if tensors.shape != (len(frames), 3, 3) or not np.all(np.isfinite(tensors)):
        raise EquilensError(
            f"ellipsoids '{key}' need finite ({len(frames)}, 3, 3) tensors, got {tensors.shape}"
        )
    if not np.allclose(tensors, tensors.transpose(0, 2, 1), atol=1e-8 * np.abs(tensors).max()):
        raise EquilensError(f"ellipsoids '{key}': the tensors are not symmetric")
    scale = 1.0 / math.sqrt(max(np.abs(tensors).max(), 1e-12))  # ~1 Å semi-axes
    structure = []
    for frame, tensor in zip(frames, tensors):
        parameters = chemiscope.ellipsoid_from_tensor(tensor, scale=scale, force_positive=True)
        parameters["position"] = frame.get_center_of_mass().tolist()
        structure.append(parameters)
    return {"kind": "ellipsoid", "parameters": {"global": {}, "structure": structure}}


def _round_dataset(data: dict, digits: int) -> None:
    """Round property values, positions and shape parameters in place."""
    for entry in data["properties"].values():
        values = entry["values"]
        if values and isinstance(values[0], float):
            array = np.asarray(values, dtype=np.float64)
            scale = np.max(np.abs(array))
            decimals = digits - 1 - (int(math.floor(math.log10(scale))) if scale > 0 else 0)
            entry["values"] = np.round(array, max(decimals, 0)).tolist()
    for structure in data["structures"]:
        for axis in ("x", "y", "z"):
            structure[axis] = np.round(np.asarray(structure[axis]), 4).tolist()
    for shape in data.get("shapes", {}).values():
        parameters = shape.get("parameters", {})
        for level in ("atom", "structure"):
            for item in parameters.get(level, None) or []:
                for name, value in item.items():
                    if isinstance(value, list):
                        item[name] = np.round(np.asarray(value, dtype=np.float64), 3).tolist()
