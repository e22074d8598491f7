"""e3nn features in featomic's conventions: shared by the SevenNet and MACE adapters.

e3nn stores the ``2l+1`` components of each irrep in a basis whose polar axis
is y (l = 1 is (x, y, z)); featomic's real harmonics have l = 1 as (y, z, x).
The two are related by the real Wigner matrix of the fixed rotation
``Q r = (y, z, x)``: ``x_featomic = D_l(Q) @ x_e3nn``. That is a permutation
for l = 1 and a real mixing of the m components for l >= 2 (not a signed
permutation). Measured and proven by rotating real structures through both
models, to 1e-6 (SevenNet, e3nn 0.6) and 2e-5 (MACE, e3nn 0.4.4) relative in
float32.

An irrep ``(l, p)`` has ``o3_sigma = p (-1)^l``: 0e, 1o, 2e are proper
(+1) and 0o, 1e, 2o improper (-1). Models built without parity label every
irrep ``e`` without meaning it, so their blocks get ``o3_sigma = 1``.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
from metatensor import Labels, TensorBlock, TensorMap

from ..tensormaps import atom_tensormap, frame_atoms

#: e3nn's (x, y, z) -> featomic's (y, z, x)
Q_E3NN_TO_FEATOMIC = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
_MATRICES: Dict[int, np.ndarray] = {}

Blocks = Dict[Tuple[int, int], np.ndarray]


def e3nn_to_featomic(ell: int) -> np.ndarray:
    """``C_l`` with ``x_featomic = C_l @ x_e3nn`` (orthogonal, ``(2l+1, 2l+1)``)."""
    if ell not in _MATRICES:
        from ..so3 import wigner_d_real

        matrix = wigner_d_real(ell, Q_E3NN_TO_FEATOMIC)
        matrix[np.abs(matrix) < 1e-12] = 0.0
        _MATRICES[ell] = matrix
    return _MATRICES[ell]


def irreps_blocks(values: np.ndarray, irreps, parity: bool = True) -> Blocks:
    """``{(l, o3_sigma): (atoms, 2l+1, channels)}`` in featomic's convention.

    :param values: ``(atoms, dim)`` in e3nn's flat layout (each irrep
        multiplicity-major), or ``(atoms, channels, sum of 2l+1)`` (MACE's
        reshaped messages: the same channels for every irrep)
    :param irreps: the e3nn ``Irreps`` of ``values``
    :param parity: whether the model has parity (otherwise ``o3_sigma = 1``)
    """
    values = np.asarray(values, dtype=np.float64)
    parts: Dict[Tuple[int, int], List[np.ndarray]] = {}
    start = 0
    for mul, ir in irreps:
        ell = int(ir.l)
        if values.ndim == 3:
            block = values[:, :, start : start + ir.dim]  # (atoms, channels, 2l+1)
            start += ir.dim
        else:
            block = values[:, start : start + mul * ir.dim].reshape(len(values), mul, ir.dim)
            start += mul * ir.dim
        block = np.einsum("mk,nck->nmc", e3nn_to_featomic(ell), block)
        sigma = int(ir.p * (-1) ** ell) if parity else 1
        parts.setdefault((ell, sigma), []).append(block)
    if start != values.shape[-1]:
        raise ValueError(f"irreps {irreps} do not match features of width {values.shape[-1]}")
    return {key: np.concatenate(blocks, axis=2) for key, blocks in parts.items()}


def layer_tensormap(blocks: Blocks, system, atom, numbers) -> TensorMap:
    """A layer's TensorMap: keys ``center_type`` when it has only proper
    scalars, else ``(o3_lambda, o3_sigma, center_type)`` with ``o3_mu``."""
    if list(blocks) == [(0, 1)]:
        return atom_tensormap(blocks[(0, 1)][:, 0, :], system, atom, numbers)
    keys, tensors = [], []
    for (ell, sigma), values in sorted(blocks.items()):
        components = [Labels(["o3_mu"], np.arange(-ell, ell + 1, dtype=np.int32)[:, None])]
        properties = Labels.range("feature", values.shape[2])
        for z in sorted({int(n) for n in numbers}):
            mask = numbers == z
            samples = Labels(["system", "atom"], np.column_stack([system[mask], atom[mask]]))
            keys.append([ell, sigma, z])
            tensors.append(TensorBlock(values[mask], samples, components, properties))
    return TensorMap(Labels(["o3_lambda", "o3_sigma", "center_type"], np.array(keys)), tensors)


def layers_tensormaps(pieces: Dict[str, List[Blocks]], frames: Sequence) -> Dict[str, TensorMap]:
    """``{layer: TensorMap}`` from the blocks of consecutive batches of ``frames``."""
    system, atom, numbers = frame_atoms(frames)
    result = {}
    for name, chunks in pieces.items():
        blocks = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
        result[name] = layer_tensormap(blocks, system, atom, numbers)
    return result
