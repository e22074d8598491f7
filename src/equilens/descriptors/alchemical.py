"""Alchemical compression: neighbor types mixed onto a few pseudo-species.

The SOAP power spectrum over ``S`` elements has ``S (S + 1) / 2`` neighbor
pairs per center, which is what makes dozens of elements unaffordable (55
elements: 1,540 pairs). Following Willatt, Musil and Ceriotti (PCCP 20,
29661, 2018), the density coefficients of the neighbor types are mixed
*before* the power spectrum,

    c_{alpha n l m}(i) = sum_a U_{a alpha} c_{a n l m}(i),

onto ``P`` pseudo-species, and the power spectrum of the mixed density has
``P^2`` pairs whatever the number of elements. The mixing is linear, so the
position gradients mix the same way and forces stay exact.

``U`` is fixed, not learned, so that a descriptor does not depend on the
data it was computed on. ``embedding: periodic`` (default) weighs each
element by smooth functions of its place in the periodic table (a constant,
then the standardized period, group and covalent radius, then their
products): the first pseudo-species is the plain geometric density of all
neighbors, the next ones densities weighted by chemistry, a generalisation
of the structural + compositional channels of Artrith, Urban and Ceder
(PRB 96, 014112, 2017). ``embedding: random`` draws ``U`` from a seeded
Gaussian (a Johnson-Lindenstrauss sketch of the element one-hot).

:class:`AlchemicalExpansion` is featomic's ``SphericalExpansion`` followed
by the mixing, so featomic's own ``PowerSpectrum`` and
``EquivariantPowerSpectrum`` build SOAP and lambda-SOAP from it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import featomic
import numpy as np
from ase.data import covalent_radii
from metatensor import Labels, TensorBlock, TensorMap

from .config import AlchemicalConfig

#: the elements whose table positions standardize the periodic embedding
#: (H to Rn: every element GFN-xTB and most datasets cover)
REFERENCE_ELEMENTS = np.arange(1, 87)


def period_and_group(z: int) -> Tuple[int, int]:
    """Period and IUPAC group of element ``z`` (lanthanides and actinides in group 3)."""
    if not 1 <= z <= 118:
        raise ValueError(f"no element with atomic number {z}")
    starts = [1, 3, 11, 19, 37, 55, 87, 119]
    period = int(np.searchsorted(starts, z, side="right"))
    position = z - starts[period - 1]  # 0-based position in the period
    length = starts[period] - starts[period - 1]
    if period == 1:
        return period, 1 if z == 1 else 18
    if position < 2:
        return period, position + 1
    if length == 8:
        return period, position + 11
    if length == 18:
        return period, position + 1
    # periods 6 and 7: the f block sits in group 3
    if position < 17:
        return period, 3
    return period, position - 13


def _table_features(numbers: Sequence[int]) -> np.ndarray:
    """Period, group and covalent radius of each element, standardized over
    :data:`REFERENCE_ELEMENTS`."""

    def raw(zs) -> np.ndarray:
        return np.array([[*period_and_group(int(z)), covalent_radii[int(z)]] for z in zs])

    reference = raw(REFERENCE_ELEMENTS)
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    return (raw(numbers) - mean) / std


def element_embedding(species: Sequence[int], config: AlchemicalConfig) -> np.ndarray:
    """The mixing matrix ``U`` (``len(species) x pseudo_species``)."""
    species = [int(z) for z in species]
    if config.embedding == "random":
        rng = np.random.default_rng(config.seed)
        table = rng.standard_normal((119, config.pseudo_species)) / np.sqrt(config.pseudo_species)
        return table[species]
    p, g, r = _table_features(species).T
    channels = [np.ones(len(species)), p, g, r, p * p, g * g, r * r, p * g, p * r, g * r]
    return np.column_stack(channels[: config.pseudo_species])


class AlchemicalExpansion(featomic.SphericalExpansion):
    """featomic's spherical expansion with the neighbor types mixed onto
    pseudo-species ``0 .. P-1`` (keys ``neighbor_type`` = pseudo-species
    index), gradients included.

    :param species: the elements, in the rows' order of ``mixing``
    :param mixing: ``U``, from :func:`element_embedding`
    :param hypers: featomic's spherical-expansion hyper-parameters
    """

    def __init__(self, species: Sequence[int], mixing: np.ndarray, **hypers: Any):
        super().__init__(**hypers)
        self.mixing_species = [int(z) for z in species]
        self.mixing = np.asarray(mixing, dtype=np.float64)

    def compute(self, systems, **kwargs) -> TensorMap:  # type: ignore[override]
        return contract_neighbor_types(
            super().compute(systems, **kwargs), self.mixing_species, self.mixing
        )


def contract_neighbor_types(
    expansion: TensorMap, species: Sequence[int], mixing: np.ndarray
) -> TensorMap:
    """Mix the ``neighbor_type`` blocks of a spherical expansion with ``mixing``.

    Blocks of one ``(o3_lambda, o3_sigma, center_type)`` are summed with
    weights ``mixing[a, alpha]`` into ``P`` blocks over the union of their
    samples (and gradient samples), without ever making the dense
    ``S``-wide array.
    """
    index = {z: i for i, z in enumerate(species)}
    names = expansion.keys.names
    position = names.index("neighbor_type")
    groups: Dict[tuple, List[Tuple[int, TensorBlock]]] = {}
    for key, block in expansion.items():
        values = tuple(int(v) for v in key.values)
        group = values[:position] + values[position + 1 :]
        groups.setdefault(group, []).append((index[values[position]], block))
    keys, blocks = [], []
    for group, members in groups.items():
        mixed = _mix_group(members, mixing)
        for alpha, block in enumerate(mixed):
            keys.append(group[:position] + (alpha,) + group[position:])
            blocks.append(block)
    return TensorMap(Labels(names, np.array(keys, dtype=np.int32)), blocks)


def _union(sample_sets: List[np.ndarray]) -> Tuple[np.ndarray, List[np.ndarray]]:
    """The sorted union of integer sample rows, and each set's rows in it."""
    stacked = np.concatenate(sample_sets)
    union, inverse = np.unique(stacked, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    bounds = np.cumsum([0] + [len(s) for s in sample_sets])
    return union, [inverse[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _mix_group(members: List[Tuple[int, TensorBlock]], mixing: np.ndarray) -> List[TensorBlock]:
    template = members[0][1]
    samples, rows = _union([b.samples.values for _, b in members])
    n_pseudo = mixing.shape[1]
    shape = (len(samples),) + template.values.shape[1:]
    out = np.zeros((n_pseudo,) + shape)
    for (a, block), where in zip(members, rows):
        values = block.values.view(np.ndarray)
        for alpha in range(n_pseudo):
            out[alpha][where] += mixing[a, alpha] * values
    gradient: Optional[Tuple[np.ndarray, np.ndarray, Any]] = None
    if "positions" in template.gradients_list():
        parts = [b.gradient("positions") for _, b in members]
        renumbered = []
        for g, where in zip(parts, rows):
            s = g.samples.values.astype(np.int64)
            renumbered.append(np.column_stack([where[s[:, 0]], s[:, 1:]]))
        g_samples, g_rows = _union(renumbered)
        g_out = np.zeros((n_pseudo, len(g_samples)) + parts[0].values.shape[1:])
        for (a, _), g, where in zip(members, parts, g_rows):
            values = g.values.view(np.ndarray)
            for alpha in range(n_pseudo):
                g_out[alpha][where] += mixing[a, alpha] * values
        gradient = (g_samples, g_out, parts[0].components)
    result = []
    sample_labels = Labels(template.samples.names, samples.astype(np.int32))
    for alpha in range(n_pseudo):
        block = TensorBlock(out[alpha], sample_labels, template.components, template.properties)
        if gradient is not None:
            g_samples, g_out, components = gradient
            block.add_gradient(
                "positions",
                TensorBlock(
                    g_out[alpha],
                    Labels(["sample", "system", "atom"], g_samples.astype(np.int32)),
                    components,
                    template.properties,
                ),
            )
        result.append(block)
    return result


def split_hypers(hypers: Dict[str, Any]) -> Tuple[Dict[str, Any], Optional[AlchemicalConfig]]:
    """featomic's hypers and the alchemical compression of a descriptor's
    hyper-parameters (``hypers["alchemical"]``, absent for plain SOAP)."""
    if "alchemical" not in hypers:
        return hypers, None
    rest = {k: v for k, v in hypers.items() if k != "alchemical"}
    return rest, AlchemicalConfig(**hypers["alchemical"])
