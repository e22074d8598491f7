"""chemiscope file of a tensor model: arrows, ellipsoids and latent maps.

``export_tensor_model(path, model, frames, reference)`` writes, through
:func:`equilens.export.export_chemiscope`:

- a map per layer of the network from its invariant summary (the invariant
  features and the per-channel norms of the covariant ones,
  :func:`~equilens.tensormaps.invariant_summary`);
- for a per-structure ``lambda = 1`` target (dipole): predicted and reference
  vectors as arrows on each structure, their norms and the error norm;
- for per-structure ``lambda = 0 + 2`` targets (polarizability): predicted
  and reference symmetric tensors as ellipsoids, their isotropic parts and
  the Frobenius norm of the error;
- for per-atom targets (density coefficients): the norm of each atom's
  predicted and reference coefficients and of the error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import ase
import numpy as np
from metatensor import TensorMap

from ..errors import EquilensError
from ..models import Model
from ..so3 import spherical_to_symmetric_tensor, spherical_to_vector
from ..tensormaps import invariant_summary
from .chemiscope import export_chemiscope

PathLike = Union[str, "os.PathLike[str]"]


def _blocks(tensor: TensorMap) -> Dict[tuple, np.ndarray]:
    return {tuple(int(v) for v in k.values): np.asarray(b.values) for k, b in tensor.items()}


def export_tensor_model(
    path: Union[str, Path],
    model: Model,
    frames: Sequence[ase.Atoms],
    reference: Optional[TensorMap] = None,
    name: str = "equilens tensor model",
    projections: Sequence[str] = ("pca",),
    **options,
) -> Path:
    """Write the chemiscope file (see the module docstring); ``reference`` is
    the target TensorMap of ``frames`` (optional); ``options`` go to
    :func:`~equilens.export.export_chemiscope`."""
    frames = list(frames)
    layers = {}
    for layer, tensor in model.layers(frames).items():
        summary = invariant_summary(tensor)
        widths = {len(b.properties) for b in summary.blocks()}
        # a map needs one width for all species and at least two features
        if len(widths) == 1 and widths.pop() >= 2:
            layers[layer] = summary
    target = model.outputs[0]
    prediction = model.predict(frames, outputs=[target])[target]
    per_atom = "atom" in prediction.block(0).samples.names
    predicted = _blocks(prediction)
    references = _blocks(reference) if reference is not None else None
    arrows, ellipsoids, structure, atom = {}, {}, {}, {}
    keys = set(predicted)
    if not per_atom and keys == {(1, 1)}:
        for label, values in (("predicted", predicted), ("reference", references)):
            if values is None:
                continue
            vectors = spherical_to_vector(values[(1, 1)][:, :, 0])
            arrows[f"{label} vector"] = vectors
            structure[f"{label} |vector|"] = np.linalg.norm(vectors, axis=1)
        if references is not None:
            structure["vector error"] = np.linalg.norm(
                arrows["predicted vector"] - arrows["reference vector"], axis=1
            )
    elif not per_atom and keys == {(0, 1), (2, 1)}:
        for label, values in (("predicted", predicted), ("reference", references)):
            if values is None:
                continue
            tensors = spherical_to_symmetric_tensor(
                values[(0, 1)][:, :, 0], values[(2, 1)][:, :, 0]
            )
            ellipsoids[f"{label} tensor"] = tensors
            structure[f"{label} isotropic"] = np.trace(tensors, axis1=1, axis2=2) / 3
        if references is not None:
            structure["tensor error (Frobenius)"] = np.linalg.norm(
                ellipsoids["predicted tensor"] - ellipsoids["reference tensor"], axis=(1, 2)
            )
    elif per_atom:
        atom.update(_atom_norms(frames, prediction, predicted, "predicted"))
        if references is not None:
            for key, block in prediction.items():
                if block.samples != reference.block(key).samples:
                    raise EquilensError(f"reference block {key.values.tolist()} has other atoms")
            atom.update(_atom_norms(frames, prediction, references, "reference"))
            errors = {k: predicted[k] - references[k] for k in predicted}
            atom.update(_atom_norms(frames, prediction, errors, "error"))
    return export_chemiscope(
        path,
        frames,
        layers=layers,
        projections=projections,
        structure_properties=structure or None,
        structure_arrows=arrows or None,
        structure_ellipsoids=ellipsoids or None,
        atom_properties=atom or None,
        name=name,
        hypers={"kind": model.kind, **model.describe().hypers},
        **options,
    )


def _atom_norms(frames, tensor: TensorMap, blocks, label) -> Dict[str, np.ndarray]:
    """Norm of each atom's values over all ``blocks`` (laid out like the
    blocks of ``tensor``), one array over all atoms in frame order."""
    offsets = np.cumsum([0] + [len(f) for f in frames])
    squares = np.zeros(offsets[-1])
    for key, block in tensor.items():
        values = blocks[tuple(int(v) for v in key.values)]
        samples = np.asarray(block.samples.values)
        np.add.at(squares, offsets[samples[:, 0]] + samples[:, 1], np.sum(values**2, axis=(1, 2)))
    return {f"{label} coefficient norm": np.sqrt(squares)}
