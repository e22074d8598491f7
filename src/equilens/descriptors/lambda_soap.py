"""lambda-SOAP: the equivariant SOAP power spectrum up to a chosen lambda.

Computed with :class:`featomic.clebsch_gordan.EquivariantPowerSpectrum` with
the neighbor types moved to properties over a fixed species list, and every
center type of the list given a block (empty when absent) in a canonical key
order, so that tensors of different datasets have identical metadata.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import ase
import featomic
import numpy as np
from featomic.clebsch_gordan import EquivariantPowerSpectrum
from metatensor import Labels, TensorBlock, TensorMap

from ..tensormaps import join_by_system
from ._batches import check_species, iterate_batches, make_calculator
from .alchemical import split_hypers
from .alchemical_soap import alchemical_calculator
from .budget import check_lambda_soap_memory


def compute_lambda_soap(
    frames: Sequence[ase.Atoms],
    species: Sequence[int],
    hypers: Dict[str, Any],
    lambda_max: int,
    include_improper: bool = True,
    batch_size: int = 50,
    progress: bool = False,
) -> TensorMap:
    """The lambda-SOAP (equivariant power spectrum) of ``frames``.

    :param lambda_max: keep blocks with ``o3_lambda <= lambda_max``
    :param include_improper: keep the ``o3_sigma = -1`` blocks
    :param hypers: featomic hyper-parameters, with ``alchemical`` to mix the
        neighbor types onto pseudo-species first (then properties
        ``neighbor_*_type`` are pseudo-species indices)
    :returns: keys ``(o3_lambda, o3_sigma, center_type)`` (every combination,
        blocks of absent center types empty), samples ``(system, atom)``,
        components ``o3_mu``, properties
        ``(l_1, l_2, neighbor_1_type, n_1, neighbor_2_type, n_2)``
    """
    species = check_species(frames, species)
    hypers, alchemical = split_hypers(hypers)
    if alchemical is None:
        expansion = make_calculator(featomic.SphericalExpansion, hypers)
        neighbor_types = list(species)
    else:
        expansion = alchemical_calculator(species, hypers, alchemical)
        neighbor_types = list(range(alchemical.pseudo_species))
    calculator = EquivariantPowerSpectrum(expansion, neighbor_types=neighbor_types)
    max_angular = hypers["basis"]["max_angular"]
    symmetries = [
        (lam, sigma)
        for lam in range(lambda_max + 1)
        for sigma in ((1, -1) if include_improper else (1,))
        if not (sigma == -1 and (lam == 0 or max_angular == 0))
    ]
    check_lambda_soap_memory(frames, len(neighbor_types), hypers, symmetries)
    selected = Labels(["o3_lambda", "o3_sigma"], np.array(symmetries, dtype=np.int32))

    def compute(batch):
        return calculator.compute(batch, selected_keys=selected, neighbors_to_properties=True)

    parts = list(iterate_batches(compute, frames, batch_size, progress, "lambda-SOAP"))
    return _complete_center_types(join_by_system(parts), species)


def _complete_center_types(tensor: TensorMap, species: Sequence[int]) -> TensorMap:
    """Order the keys canonically and add empty blocks for absent center types.

    Keys come out sorted by ``(o3_lambda, -o3_sigma, center_type)`` whatever
    the frames contain, so two tensors over the same species list have
    identical keys.
    """
    names = tensor.keys.names
    center = names.index("center_type")
    templates: Dict[tuple, TensorBlock] = {}
    present: Dict[tuple, TensorBlock] = {}
    for key, block in tensor.items():
        entry = tuple(int(v) for v in key.values)
        templates.setdefault(entry[:center] + entry[center + 1 :], block)
        present[entry] = block
    order = sorted(templates, key=lambda sym: (sym[0], -sym[1]) + tuple(sym[2:]))
    keys, blocks = [], []
    for symmetry in order:
        template = templates[symmetry]
        for z in species:
            full = symmetry[:center] + (z,) + symmetry[center:]
            keys.append(full)
            if full in present:
                block = present[full]
                values = block.values
                samples = block.samples
            else:
                values = np.zeros((0,) + template.values.shape[1:])
                samples = Labels(template.samples.names, np.zeros((0, 2), dtype=np.int32))
            blocks.append(TensorBlock(values, samples, template.components, template.properties))
    return TensorMap(Labels(names, np.array(keys, dtype=np.int32)), blocks)
