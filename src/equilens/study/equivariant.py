"""The study's equivariant comparison: the covariant blocks of every
equivariant layer, compared lambda by lambda with the equivariant GFRE.

The scorecard and the GFRE matrices read an equivariant layer through its
invariant summary (invariant channels and the norm of every covariant
channel), which keeps the magnitude of a covariant channel and drops its
direction. Here the blocks themselves are compared: for every ``lambda >= 1``
and center type, the blocks of both parities of a layer are put side by side
(a rotation acts on them alike) and
:func:`~equilens.analysis.equivariant.equivariant_gfre_matrix` gives the
error of the best component-shared linear map between every pair of layers
(0: the target layer is a linear function of the source, about 1: nothing of
it is). Per lambda, the matrices per center type and their mean weighted by
the atoms of each type are kept, over the layers that have that lambda for
every center type.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Tuple

import numpy as np
from metatensor import Labels, TensorBlock, TensorMap

from ..analysis.equivariant import equivariant_gfre_matrix
from ..errors import EquilensError


@dataclass
class LambdaComparison:
    """The equivariant GFRE between layers for one ``lambda``.

    :param names: the layers compared (rows: source, columns: target)
    :param per_type: ``{center_type: matrix}``
    :param atoms: ``{center_type: atoms compared}``
    :param mean: the matrices' mean weighted by atoms
    """

    names: List[str]
    per_type: Dict[int, np.ndarray]
    atoms: Dict[int, int]
    mean: np.ndarray


def lambda_blocks(tensor: TensorMap, where: str) -> Dict[Tuple[int, int], TensorBlock]:
    """``{(lambda, center_type): block}`` of the ``lambda >= 1`` blocks of an
    equivariant layer, the blocks of both parities side by side."""
    groups: Dict[Tuple[int, int], List[TensorBlock]] = {}
    for key, block in tensor.items():
        lam = int(key["o3_lambda"])
        if lam > 0:
            groups.setdefault((lam, int(key["center_type"])), []).append(block)
    result = {}
    for (lam, z), blocks in groups.items():
        for block in blocks[1:]:
            if block.samples != blocks[0].samples:
                raise EquilensError(f"{where}: the parities of block ({lam}, {z}) differ in atoms")
        values = np.concatenate([np.asarray(b.values, dtype=np.float64) for b in blocks], axis=2)
        properties = Labels.range("feature", values.shape[2])
        result[(lam, z)] = TensorBlock(values, blocks[0].samples, blocks[0].components, properties)
    return result


def compare_equivariant(
    layers: Mapping[str, TensorMap], seed: int = 0, min_atoms: int = 10
) -> Dict[int, LambdaComparison]:
    """The equivariant GFRE between the equivariant ``layers`` (``{name:
    TensorMap}`` with keys ``o3_lambda, o3_sigma, center_type``, on the same
    atoms), per ``lambda >= 1``; center types with fewer than ``min_atoms``
    atoms are left out."""
    blocks = {name: lambda_blocks(tensor, f"layer {name}") for name, tensor in layers.items()}
    lambdas = sorted({lam for found in blocks.values() for lam, _ in found})
    result: Dict[int, LambdaComparison] = {}
    for lam in lambdas:
        types = sorted({z for found in blocks.values() for (order, z) in found if order == lam})
        names = [n for n in layers if all((lam, z) in blocks[n] for z in types)]
        if len(names) < 2:
            continue
        types = [z for z in types if len(blocks[names[0]][(lam, z)].samples) >= min_atoms]
        if not types:
            continue
        per_type, atoms = {}, {}
        for z in types:
            keys = Labels(["o3_lambda", "center_type"], np.array([[lam, z]]))
            atoms[z] = len(blocks[names[0]][(lam, z)].samples)
            maps = {n: TensorMap(keys, [blocks[n][(lam, z)].copy()]) for n in names}
            per_type[z] = equivariant_gfre_matrix(maps, seed=seed)[(lam, z)]
        weights = np.array([atoms[z] for z in types], dtype=float)
        mean = np.tensordot(weights / weights.sum(), np.stack([per_type[z] for z in types]), 1)
        result[lam] = LambdaComparison(names, per_type, atoms, mean)
    return result


def save_equivariant(
    result: Dict[int, LambdaComparison], folder: Path
) -> Dict[int, LambdaComparison]:
    """Write ``<folder>/equivariant_gfre/lambda_<l>/``: ``matrices.json`` and
    one heatmap per center type and for the mean (``block_mean.png``);
    returns ``result``."""
    from ..export.comparisons import save_equivariant_comparison

    for lam, comparison in result.items():
        matrices: Dict[Tuple, np.ndarray] = {(z,): m for z, m in comparison.per_type.items()}
        matrices[("mean",)] = comparison.mean
        target = Path(folder) / "equivariant_gfre" / f"lambda_{lam}"
        save_equivariant_comparison(matrices, comparison.names, target)
    return result
