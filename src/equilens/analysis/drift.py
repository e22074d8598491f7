"""Latent drift: what fine-tuning does to a model's layers.

For models that share layer names (a base model, its fine-tuned version, a
model of the same architecture trained from scratch on the same data),
:func:`latent_drift` compares each layer across the models on the same atoms:
GFRE in both directions (how well one model's layer linearly reconstructs the
other's; 0 is a perfect reconstruction) and debiased linear CKA (1 for the
same representation up to rotation and scale). Per-species networks have
their own coordinates per species, so the measures are computed species by
species (:func:`~equilens.analysis.compare.compare_by_species`) and averaged
with atom-count weights. Equivariant layers enter as their invariant
summaries; layers constant within every species (a species embedding) carry
no information about the environment and are left out.

The question it answers, layer by layer: is the fine-tuned model closer to
its base than to a model that never saw the pre-training data?
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import ase
import numpy as np

from ..errors import EquilensError
from ..models.base import Model
from .compare import compare_by_species
from .latents import latents
from .measures import is_constant

Pair = Tuple[str, str]


def latent_drift(
    models: Mapping[str, Model],
    frames: Sequence[ase.Atoms],
    pairs: Sequence[Pair],
    layers: Optional[Sequence[str]] = None,
    n_samples: int = 3000,
    seed: int = 0,
) -> List[Dict[str, object]]:
    """Per layer, GFRE both ways and CKA for each pair of models.

    :param models: ``{name: model}`` implementing the model protocol
    :param frames: the atoms every model sees
    :param pairs: ``(a, b)`` names to compare, e.g. ``("finetune", "base")``
    :param layers: layer names to compare (default: those every model has,
        in the first model's order)
    :param n_samples: GFRE sample budget per species
    :returns: one row per layer: ``layer``, ``skipped`` (why, or ``None``),
        and for each pair ``gfre_<a>_to_<b>``, ``gfre_<b>_to_<a>``,
        ``cka_<a>_<b>``
    """
    names = list(models)
    for a, b in pairs:
        if a not in models or b not in models:
            raise EquilensError(f"latent drift: pair ({a}, {b}) names a model not in {names}")
    shared = [n for n in models[names[0]].layer_names if _in_all(models, n)]
    chosen = list(layers) if layers is not None else shared
    missing = [n for n in chosen if n not in shared]
    if missing:
        raise EquilensError(f"latent drift: layers {missing} are not in every model")
    sets = {name: latents(model, frames, per_species=True) for name, model in models.items()}
    numbers = np.concatenate([np.asarray(f.numbers) for f in frames])
    rows: List[Dict[str, object]] = []
    for layer in chosen:
        row: Dict[str, object] = {"layer": layer, "skipped": None}
        constant = [n for n in names if _constant(sets[n][layer])]
        if constant:
            row["skipped"] = f"constant within each species in {', '.join(constant)}"
            rows.append(row)
            continue
        result = compare_by_species(
            {n: sets[n][layer] for n in names},
            measures=("gfre", "cka"),
            n_samples=n_samples,
            seed=seed,
        )
        for a, b in pairs:
            row[f"gfre_{a}_to_{b}"] = _weighted(result, numbers, "gfre", a, b)
            row[f"gfre_{b}_to_{a}"] = _weighted(result, numbers, "gfre", b, a)
            row[f"cka_{a}_{b}"] = _weighted(result, numbers, "cka", a, b)
        rows.append(row)
    return rows


def _in_all(models: Mapping[str, Model], layer: str) -> bool:
    return all(layer in m.layer_names for m in models.values())


def _constant(tensor) -> bool:
    """Some per-species block of ``tensor`` is one repeated row."""
    return any(is_constant(block.values) for block in tensor.blocks())


def _weighted(result, numbers: np.ndarray, measure: str, source: str, target: str) -> float:
    """A measure between two sets, averaged over species weighted by atoms."""
    total = value = 0.0
    for z, comparison in result.items():
        i, j = comparison.names.index(source), comparison.names.index(target)
        weight = float(np.sum(numbers == z))
        value += weight * float(comparison.matrices[measure][i, j])
        total += weight
    return value / total
