"""Composition filters over any dataset: the curation step of multi-element work.

:class:`FilterConfig` holds the filters, each optional and combinable;
:func:`filter_frames` keeps the frames that pass all of them and gives, for
every other frame, the first filter it failed and why. The high-entropy-oxide
selection of the issue, for instance::

    contains: [O]              # every kept frame has oxygen
    min_elements: 5            # at least five elements in all
    others_metals: true        # every element besides O is a metal
    min_cation_entropy: 1.5    # configurational entropy of the cations >= 1.5 R
    equimolar_tolerance: 0.05  # every cation fraction within 0.05 of 1/n
    exclude: [Ru, Rh, Pd, Ag, Os, Ir, Pt, Au]   # no noble metals
    require_energy: true

The cations are the elements other than those of ``contains`` (the anion
sublattice, O here); the configurational entropy of ideal mixing on their
sublattice is ``S / R = -sum_i x_i ln x_i``, ``x_i`` the cation fractions
(an equimolar five-cation oxide has ``ln 5 = 1.61 R``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import ase
import numpy as np
from ase.data import atomic_numbers

from ..errors import ConfigError

#: elements that count as metals (alkali, alkaline earth, transition, post-
#: transition, lanthanides, actinides; metalloids B, Si, Ge, As, Sb, Te are not)
NONMETALS = {
    "H", "He", "B", "C", "N", "O", "F", "Ne", "Si", "P", "S", "Cl", "Ar", "Ge", "As",
    "Se", "Br", "Kr", "Sb", "Te", "I", "Xe", "At", "Rn", "Ts", "Og",
}  # fmt: skip


def is_metal(symbol: str) -> bool:
    """Whether the element ``symbol`` counts as a metal here."""
    return symbol not in NONMETALS


@dataclass(frozen=True)
class FilterConfig:
    """Composition filters (see the module docstring); ``null`` or empty: not applied.

    :param contains: elements every kept frame has (the anion sublattice, e.g. ``[O]``)
    :param min_elements: the fewest elements a kept frame has
    :param others_metals: every element besides those of ``contains`` is a metal
    :param require_energy: keep only frames with an energy
    :param require_forces: keep only frames with forces
    :param min_cation_entropy: the lowest configurational entropy of the
        cations, ``-sum_i x_i ln x_i`` in units of R
    :param equimolar_tolerance: every cation fraction within this of ``1/n``
    :param exclude: elements no kept frame has
    """

    contains: Tuple[str, ...] = ()
    min_elements: Optional[int] = None
    others_metals: bool = False
    require_energy: bool = False
    require_forces: bool = False
    min_cation_entropy: Optional[float] = None
    equimolar_tolerance: Optional[float] = None
    exclude: Tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        for name in ("contains", "exclude"):
            for symbol in getattr(self, name):
                if symbol not in atomic_numbers:
                    raise ConfigError(f"{name}: unknown element '{symbol}'")
        overlap = set(self.contains) & set(self.exclude)
        if overlap:
            raise ConfigError(f"elements both required and excluded: {sorted(overlap)}")
        if self.min_cation_entropy is not None and not (
            np.isfinite(self.min_cation_entropy) and self.min_cation_entropy >= 0
        ):
            raise ConfigError(
                f"min_cation_entropy: expected a number >= 0 (units of R), got "
                f"{self.min_cation_entropy}"
            )
        if self.min_elements is not None and self.min_elements < 1:
            raise ConfigError(f"min_elements: expected >= 1, got {self.min_elements}")
        if self.equimolar_tolerance is not None and not 0 <= self.equimolar_tolerance < 1:
            raise ConfigError(
                f"equimolar_tolerance: expected in [0, 1), got {self.equimolar_tolerance}"
            )


def cation_fractions(atoms: ase.Atoms, anions: Sequence[str]) -> Dict[str, float]:
    """Fractions of each element on the cation sublattice (elements not in ``anions``)."""
    counts = Counter(s for s in atoms.get_chemical_symbols() if s not in anions)
    total = sum(counts.values())
    return {s: n / total for s, n in sorted(counts.items())} if total else {}


def cation_entropy(atoms: ase.Atoms, anions: Sequence[str]) -> float:
    """Ideal configurational entropy of the cation sublattice, in units of R."""
    x = np.array(list(cation_fractions(atoms, anions).values()))
    return float(-np.sum(x * np.log(x))) if len(x) else 0.0


def rejection(atoms: ase.Atoms, config: FilterConfig) -> Optional[str]:
    """Why ``atoms`` fails the filters (the first failed), or ``None``."""
    symbols = set(atoms.get_chemical_symbols())
    missing = [s for s in config.contains if s not in symbols]
    if missing:
        return f"lacks {', '.join(missing)}"
    excluded = sorted(symbols & set(config.exclude))
    if excluded:
        return f"has excluded {', '.join(excluded)}"
    if config.min_elements is not None and len(symbols) < config.min_elements:
        return f"{len(symbols)} elements < {config.min_elements}"
    if config.others_metals:
        others = sorted(s for s in symbols - set(config.contains) if not is_metal(s))
        if others:
            return f"non-metal {', '.join(others)} besides {', '.join(config.contains) or '-'}"
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    if config.require_energy and "energy" not in results:
        return "no energy"
    if config.require_forces and "forces" not in results:
        return "no forces"
    anions = list(config.contains)
    if config.min_cation_entropy is not None:
        entropy = cation_entropy(atoms, anions)
        if entropy < config.min_cation_entropy:
            return f"cation entropy {entropy:.3f} R < {config.min_cation_entropy}"
    if config.equimolar_tolerance is not None:
        fractions = cation_fractions(atoms, anions)
        if fractions:
            ideal = 1.0 / len(fractions)
            worst = max(fractions, key=lambda s: abs(fractions[s] - ideal))
            if abs(fractions[worst] - ideal) > config.equimolar_tolerance:
                return (
                    f"not equimolar: {worst} {fractions[worst]:.3f} vs 1/{len(fractions)} "
                    f"(tolerance {config.equimolar_tolerance})"
                )
    return None


def filter_frames(
    frames: Sequence[ase.Atoms], config: FilterConfig
) -> Tuple[List[int], List[Tuple[int, str]]]:
    """Indices of the frames that pass, and ``(index, reason)`` of the others."""
    kept: List[int] = []
    dropped: List[Tuple[int, str]] = []
    for index, atoms in enumerate(frames):
        reason = rejection(atoms, config)
        if reason is None:
            kept.append(index)
        else:
            dropped.append((index, reason))
    return kept, dropped
