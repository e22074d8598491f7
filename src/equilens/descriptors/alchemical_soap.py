"""The SOAP power spectrum of the alchemically compressed density.

featomic's :class:`~featomic.clebsch_gordan.PowerSpectrum` of an
:class:`~equilens.descriptors.alchemical.AlchemicalExpansion`, batch by
batch, assembled into the dense layout of :func:`compute_soap` (keys
``center_type`` for every element of the species list, samples ``(system,
atom)`` for every atom, optional position gradients). featomic's power
spectrum holds both orders of each pair of ``(pseudo-species, n)`` channels;
one of each is kept, off-diagonal ones times ``sqrt(2)`` so that dot products
(kernels, PCA) are those of the full square. Properties ``(l,
neighbor_1_type, n_1, neighbor_2_type, n_2)``, with neighbor types the
pseudo-species indices ``0 .. P-1``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import ase
import numpy as np
from featomic.clebsch_gordan import PowerSpectrum
from metatensor import Labels, TensorBlock, TensorMap

from ._batches import iterate_batches, make_calculator
from .alchemical import AlchemicalConfig, AlchemicalExpansion, element_embedding
from .budget import check_soap_memory


def alchemical_calculator(
    species: Sequence[int], hypers: Dict[str, Any], config: AlchemicalConfig
) -> AlchemicalExpansion:
    """The compressed spherical expansion over ``species``."""
    mixing = element_embedding(species, config)
    return make_calculator(lambda **h: AlchemicalExpansion(species, mixing, **h), hypers)


def compute_alchemical_soap(
    frames: Sequence[ase.Atoms],
    species: Sequence[int],
    hypers: Dict[str, Any],
    config: AlchemicalConfig,
    gradients: bool = False,
    batch_size: int = 50,
    progress: bool = False,
) -> TensorMap:
    """SOAP of ``frames`` with neighbor types compressed onto
    ``config.pseudo_species`` pseudo-species (see the module docstring).

    :param hypers: featomic hyper-parameters (without ``alchemical``)
    """
    check_soap_memory(frames, config.pseudo_species, hypers, gradients, what="alchemical SOAP")
    calculator = PowerSpectrum(alchemical_calculator(species, hypers, config))
    keep = None
    parts: Dict[int, List[TensorBlock]] = {int(z): [] for z in species}
    properties = None

    def compute(batch):
        return calculator.compute(batch, gradients=["positions"] if gradients else None)

    for start, tensor in iterate_batches(compute, frames, batch_size, progress, "SOAP"):
        for key, block in tensor.items():
            if keep is None:
                keep, factor, properties = _upper_triangle(block.properties)
            parts[int(key["center_type"])].append(_shifted(block, start, keep, factor))
    assert properties is not None
    blocks = [_stack(parts[int(z)], properties, gradients) for z in species]
    keys = Labels(["center_type"], np.array([[z] for z in species], dtype=np.int32))
    return TensorMap(keys, blocks)


def _upper_triangle(properties: Labels):
    """Columns with ``(neighbor_1_type, n_1) <= (neighbor_2_type, n_2)``, their
    factors (``sqrt 2`` off the diagonal) and their labels."""
    names = properties.names
    values = properties.values
    first = values[:, [names.index("neighbor_1_type"), names.index("n_1")]]
    second = values[:, [names.index("neighbor_2_type"), names.index("n_2")]]
    lower = (first[:, 0] < second[:, 0]) | (
        (first[:, 0] == second[:, 0]) & (first[:, 1] <= second[:, 1])
    )
    keep = np.nonzero(lower)[0]
    diagonal = np.all(first[keep] == second[keep], axis=1)
    factor = np.where(diagonal, 1.0, np.sqrt(2.0))
    return keep, factor, Labels(names, np.ascontiguousarray(values[keep]))


def _shifted(block: TensorBlock, start: int, keep, factor) -> tuple:
    """Kept columns of one batch's block, systems renumbered from ``start``."""
    samples = block.samples.values.astype(np.int64).copy()
    samples[:, 0] += start
    values = block.values.view(np.ndarray)[:, keep] * factor
    if "positions" not in block.gradients_list():
        return samples, values, None
    gradient = block.gradient("positions")
    g_samples = gradient.samples.values.astype(np.int64).copy()
    g_samples[:, 1] += start
    g_values = gradient.values.view(np.ndarray)[..., keep] * factor
    return samples, values, (g_samples, g_values, gradient.components)


def _stack(parts: list, properties: Labels, gradients: bool) -> TensorBlock:
    """One center type's rows of every batch in one block (empty if absent)."""
    width = len(properties)
    samples = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 2), np.int64)
    values = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, width))
    sample_labels = Labels(["system", "atom"], samples.astype(np.int32))
    block = TensorBlock(values, sample_labels, [], properties)
    if gradients:
        rows, g_values, offset = [], [], 0
        for sample_rows, _, (g_samples, g_value, _) in parts:
            shifted = g_samples.copy()
            shifted[:, 0] += offset
            offset += len(sample_rows)
            rows.append(shifted)
            g_values.append(g_value)
        g_samples_all = np.concatenate(rows) if rows else np.zeros((0, 3), np.int64)
        g_values_all = np.concatenate(g_values) if g_values else np.zeros((0, 3, width))
        block.add_gradient(
            "positions",
            TensorBlock(
                g_values_all,
                Labels(["sample", "system", "atom"], g_samples_all.astype(np.int32)),
                [Labels(["xyz"], np.arange(3, dtype=np.int32).reshape(-1, 1))],
                properties,
            ),
        )
    return block
