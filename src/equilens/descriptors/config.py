"""Descriptor hyper-parameters: presets, overrides and the descriptor config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Literal, Optional, Tuple

from ..config import from_mapping, validate_species
from ..errors import ConfigError


@dataclass(frozen=True)
class SoapHypers:
    """The usual SOAP hyper-parameters, turned into featomic's by
    :meth:`to_featomic`.

    :param cutoff: radial cutoff in Å
    :param cutoff_width: width of the shifted-cosine smoothing at the cutoff, Å
    :param density_width: width of the Gaussian atomic densities, Å
    :param max_radial: the largest radial index ``n`` (``n_max + 1`` radial
        functions, featomic's convention)
    :param max_angular: the largest angular channel ``l``
    :param radial_basis: featomic's radial basis type
    :param radial_scaling: ``None``, or ``(rate, scale, exponent)`` of the
        Willatt et al. (2018) radial scaling of the neighbor density
    :param center_atom_weight: weight of the central atom's own density
    """

    cutoff: float = 5.0
    cutoff_width: float = 0.5
    density_width: float = 0.3
    max_radial: int = 6
    max_angular: int = 4
    radial_basis: Literal["Gto"] = "Gto"
    radial_scaling: Optional[Tuple[float, float, float]] = None
    center_atom_weight: float = 1.0

    def __post_init__(self):
        if self.cutoff <= 0 or self.density_width <= 0 or self.cutoff_width < 0:
            raise ValueError("cutoff and density_width must be > 0, cutoff_width >= 0")
        if self.cutoff_width >= self.cutoff:
            raise ValueError("cutoff_width must be smaller than cutoff")
        if self.max_radial < 0 or self.max_angular < 0:
            raise ValueError("max_radial and max_angular must be >= 0")

    def to_featomic(self) -> Dict[str, Any]:
        """featomic's hyper-parameter dictionary for these settings."""
        density: Dict[str, Any] = {
            "type": "Gaussian",
            "width": self.density_width,
            "center_atom_weight": self.center_atom_weight,
        }
        if self.radial_scaling is not None:
            rate, scale, exponent = self.radial_scaling
            density["scaling"] = {
                "type": "Willatt2018",
                "rate": rate,
                "scale": scale,
                "exponent": exponent,
            }
        return {
            "cutoff": {
                "radius": self.cutoff,
                "smoothing": {"type": "ShiftedCosine", "width": self.cutoff_width},
            },
            "density": density,
            "basis": {
                "type": "TensorProduct",
                "max_angular": self.max_angular,
                "radial": {"type": self.radial_basis, "max_radial": self.max_radial},
            },
        }


#: ``(rate, scale, exponent)`` of the radial scaling every shipped potential
#: uses: a neighbor at ``r`` weighs ``1 / (1 + (r / 1.5 Å)^4)``. Chosen on the
#: iron/water validation forces (scale 3, 2, 1.5 Å: 0.293, 0.274, 0.249 eV/Å;
#: none 0.397); on the study's GFN1-xTB set it lowers the validation forces of
#: a BPNN from 0.152 to 0.117 eV/Å and of the equivariant potential from 0.27
#: to 0.17 (``docs/benchmarks.md``)
RADIAL_SCALING: Tuple[float, float, float] = (1.0, 1.5, 4.0)

#: Named hyper-parameter sets. ``small`` is for quick looks and tests,
#: ``default`` for energy models, ``accurate`` for the best fits.
PRESETS: Dict[str, SoapHypers] = {
    "small": SoapHypers(cutoff=4.0, max_radial=4, max_angular=3),
    "default": SoapHypers(cutoff=5.0, max_radial=6, max_angular=4),
    "accurate": SoapHypers(cutoff=6.0, max_radial=8, max_angular=6),
}


#: the periodic embedding's channels: 1, p, g, r, then their products
PERIODIC_CHANNELS = 10


@dataclass(frozen=True)
class AlchemicalConfig:
    """How neighbor types are compressed (``descriptor.alchemical``).

    :param pseudo_species: number of pseudo-species ``P``; 2 (the plain
        density and one weighted by the period) gave the lowest test errors
        on the 58-element benchmark over three seeds (mean 1,037 meV/atom and
        2.74 eV/Å against 1,460 and 3.23 for 4, ``docs/benchmarks.md``)
    :param embedding: ``periodic`` (fixed functions of the periodic table) or
        ``random`` (a seeded Gaussian matrix)
    :param seed: seed of the ``random`` embedding
    """

    pseudo_species: int = 2
    embedding: Literal["periodic", "random"] = "periodic"
    seed: int = 0

    def __post_init__(self):
        if self.embedding not in ("periodic", "random"):
            raise ConfigError(
                f"alchemical.embedding must be 'periodic' or 'random', got {self.embedding!r}"
            )
        limit = PERIODIC_CHANNELS if self.embedding == "periodic" else 64
        if not 1 <= self.pseudo_species <= limit:
            raise ConfigError(
                f"alchemical.pseudo_species must be between 1 and {limit} for the "
                f"{self.embedding} embedding, got {self.pseudo_species}"
            )


@dataclass(frozen=True)
class DescriptorConfig:
    """What to compute.

    :param kind: ``"soap"`` (invariant power spectrum) or ``"lambda_soap"``
    :param preset: a name in :data:`PRESETS`
    :param hypers: overrides of the preset's :class:`SoapHypers` fields, e.g.
        ``{"max_radial": 8}``
    :param featomic_hypers: full featomic hyper-parameters (``cutoff``,
        ``density``, ``basis``), used as they are instead of ``preset`` and
        ``hypers``
    :param species: the atomic numbers the descriptor covers; ``None`` takes
        the species of the frames (then two datasets with different species
        give different properties: fix the list to compare them)
    :param lambda_max: the largest ``o3_lambda`` of lambda-SOAP
    :param include_improper: keep the ``o3_sigma = -1`` blocks of lambda-SOAP
    :param gradients: compute gradients with respect to positions (SOAP only)
    :param neighbors: SOAP layout: ``"properties"`` moves the neighbor types to
        properties (keys ``center_type``); ``"keys"`` keeps them in the keys
        (``center_type, neighbor_1_type, neighbor_2_type``, every combination
        of the species list present, empty where absent). Both have metadata
        independent of the frames. ``"keys"`` stores gradients without zero
        padding at featomic's own speed, while dense gradients take about
        twice the memory and 4x the time (``benchmarks/descriptors.py``);
        ``"auto"`` (default) picks ``"properties"`` without gradients and
        ``"keys"`` with them
    :param batch_size: frames per featomic call; only memory and the progress
        bar depend on it, never the result
    :param alchemical: mix the neighbor types onto a few pseudo-species
        (:mod:`equilens.descriptors.alchemical`): SOAP then grows as ``P^2``,
        not as the square of the number of elements; ``None`` (default)
        leaves the choice to ``alchemical_above``
    :param alchemical_above: with more elements than this (and no
        ``alchemical`` section), the default :class:`AlchemicalConfig` is
        used; ``None`` never switches on its own
    """

    kind: Literal["soap", "lambda_soap"] = "soap"
    preset: str = "default"
    hypers: Dict[str, Any] = field(default_factory=dict)
    featomic_hypers: Optional[Dict[str, Any]] = None
    species: Optional[Tuple[int, ...]] = None
    lambda_max: int = 2
    include_improper: bool = True
    gradients: bool = False
    neighbors: Literal["auto", "properties", "keys"] = "auto"
    batch_size: int = 50
    alchemical: Optional[AlchemicalConfig] = None
    alchemical_above: Optional[int] = 10

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ConfigError(
                f"unknown descriptor preset '{self.preset}'; available: {', '.join(PRESETS)}"
            )
        if self.featomic_hypers is not None and self.hypers:
            raise ConfigError("give either 'hypers' overrides or 'featomic_hypers', not both")
        if self.lambda_max < 0:
            raise ConfigError(f"lambda_max must be >= 0, got {self.lambda_max}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.gradients and self.kind == "lambda_soap":
            raise ConfigError("position gradients are only available for kind 'soap'")
        if self.species is not None:
            object.__setattr__(self, "species", validate_species(self.species, "species"))
        if self.kind == "lambda_soap":
            max_angular = self.featomic_dict()["basis"]["max_angular"]
            if self.lambda_max > 2 * max_angular:
                raise ConfigError(
                    f"lambda_max={self.lambda_max} is larger than 2 * max_angular "
                    f"= {2 * max_angular}"
                )

    @property
    def layout(self) -> str:
        """The SOAP layout ``neighbors`` resolves to."""
        if self.neighbors == "auto":
            return "keys" if self.gradients else "properties"
        return self.neighbors

    def soap_hypers(self) -> SoapHypers:
        """The preset with the overrides applied (validated)."""
        base = dataclasses.asdict(PRESETS[self.preset])
        unknown = set(self.hypers) - set(base)
        if unknown:
            raise ConfigError(
                f"unknown SOAP hyper-parameter '{sorted(unknown)[0]}'; accepted: {', '.join(base)}"
            )
        return from_mapping(SoapHypers, {**base, **self.hypers}, where="hypers")

    def compression_for(self, n_species: int) -> Optional[AlchemicalConfig]:
        """The alchemical compression used for ``n_species`` elements, if any."""
        if self.alchemical is not None:
            return self.alchemical
        if self.alchemical_above is not None and n_species > self.alchemical_above:
            return AlchemicalConfig()
        return None

    def descriptor_hypers(self, n_species: int) -> Dict[str, Any]:
        """The descriptor's hyper-parameters for ``n_species`` elements:
        featomic's, plus ``alchemical`` when the neighbor types are compressed
        (what :func:`~equilens.descriptors.compute_soap` and
        :func:`~equilens.descriptors.compute_lambda_soap` take)."""
        hypers = self.featomic_dict()
        compression = self.compression_for(n_species)
        if compression is not None:
            hypers["alchemical"] = dataclasses.asdict(compression)
        return hypers

    def featomic_dict(self) -> Dict[str, Any]:
        """The featomic hyper-parameters this configuration resolves to."""
        if self.featomic_hypers is not None:
            return dict(self.featomic_hypers)
        return self.soap_hypers().to_featomic()
