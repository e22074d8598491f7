"""SOAP and lambda-SOAP descriptors as metatensor TensorMaps.

Two descriptors, both computed with featomic:

``soap``
    The SOAP power spectrum (:class:`featomic.SoapPowerSpectrum`). Keys
    ``center_type``; samples ``(system, atom)``; properties
    ``(neighbor_1_type, neighbor_2_type, l, n_1, n_2)``. Optionally with
    gradients with respect to positions.
``lambda_soap``
    The equivariant power spectrum ("lambda-SOAP",
    :class:`featomic.clebsch_gordan.EquivariantPowerSpectrum`) up to
    ``lambda_max``. Keys ``(o3_lambda, o3_sigma, center_type)``; samples
    ``(system, atom)``; components ``o3_mu``; properties
    ``(l_1, l_2, neighbor_1_type, n_1, neighbor_2_type, n_2)``.

The neighbor types are moved to properties over a *fixed* species list and
every center type of that list gets a block (empty when absent), so the
metadata never depend on which species a particular frame contains: the
descriptors of two datasets with the same species list can be joined.

Frames are processed in batches (with an optional progress bar) and joined;
:func:`compute_descriptor` adds a cache keyed by a hash of the hypers, the
species list and the structures.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple

import ase
import featomic
import metatensor
import numpy as np
from featomic.clebsch_gordan import EquivariantPowerSpectrum
from metatensor import Labels, TensorBlock, TensorMap
from tqdm.auto import tqdm

from .config import from_mapping
from .errors import ConfigError, DescriptorError
from .storage import TensorMapCache, hash_frames, hash_json

#: bump when the layout of computed descriptors changes, to invalidate caches
CACHE_FORMAT = 1


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


#: Named hyper-parameter sets. ``small`` is for quick looks and tests,
#: ``default`` for energy models, ``accurate`` for the best fits.
PRESETS: Dict[str, SoapHypers] = {
    "small": SoapHypers(cutoff=4.0, max_radial=4, max_angular=3),
    "default": SoapHypers(cutoff=5.0, max_radial=6, max_angular=4),
    "accurate": SoapHypers(cutoff=6.0, max_radial=8, max_angular=6),
}


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
    :param batch_size: frames per featomic call; only memory and the progress
        bar depend on it, never the result
    """

    kind: Literal["soap", "lambda_soap"] = "soap"
    preset: str = "default"
    hypers: Dict[str, Any] = field(default_factory=dict)
    featomic_hypers: Optional[Dict[str, Any]] = None
    species: Optional[Tuple[int, ...]] = None
    lambda_max: int = 2
    include_improper: bool = True
    gradients: bool = False
    batch_size: int = 50

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ConfigError(
                f"unknown descriptor preset '{self.preset}'; "
                f"available: {', '.join(PRESETS)}"
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
            object.__setattr__(self, "species", tuple(sorted(set(self.species))))
        if self.kind == "lambda_soap":
            max_angular = self.featomic_dict()["basis"]["max_angular"]
            if self.lambda_max > 2 * max_angular:
                raise ConfigError(
                    f"lambda_max={self.lambda_max} is larger than 2 * max_angular "
                    f"= {2 * max_angular}"
                )

    def soap_hypers(self) -> SoapHypers:
        """The preset with the overrides applied (validated)."""
        base = dataclasses.asdict(PRESETS[self.preset])
        unknown = set(self.hypers) - set(base)
        if unknown:
            raise ConfigError(
                f"unknown SOAP hyper-parameter '{sorted(unknown)[0]}'; accepted: "
                f"{', '.join(base)}"
            )
        return from_mapping(SoapHypers, {**base, **self.hypers}, where="hypers")

    def featomic_dict(self) -> Dict[str, Any]:
        """The featomic hyper-parameters this configuration resolves to."""
        if self.featomic_hypers is not None:
            return dict(self.featomic_hypers)
        return self.soap_hypers().to_featomic()


def compute_soap(
    frames: Sequence[ase.Atoms],
    species: Sequence[int],
    hypers: Dict[str, Any],
    gradients: bool = False,
    batch_size: int = 50,
    progress: bool = False,
) -> TensorMap:
    """The SOAP power spectrum of ``frames`` over a fixed ``species`` list.

    :param frames: structures; every atomic number must be in ``species``
    :param species: atomic numbers of the centers and neighbors
    :param hypers: featomic hyper-parameters (see :meth:`SoapHypers.to_featomic`)
    :param gradients: also compute gradients with respect to positions
    :param batch_size: frames per featomic call
    :param progress: show a progress bar
    :returns: keys ``center_type`` (one block per species), samples
        ``(system, atom)``, properties
        ``(neighbor_1_type, neighbor_2_type, l, n_1, n_2)``
    """
    species = _check_species(frames, species)
    calculator = _calculator(featomic.SoapPowerSpectrum, hypers)
    pairs = [(a, b) for i, a in enumerate(species) for b in species[i:]]
    selected = Labels(
        ["center_type", "neighbor_1_type", "neighbor_2_type"],
        np.array([(c, a, b) for c in species for (a, b) in pairs], dtype=np.int32),
    )
    to_properties = Labels(
        ["neighbor_1_type", "neighbor_2_type"], np.array(pairs, dtype=np.int32)
    )

    def compute(batch):
        tensor = calculator.compute(
            batch,
            gradients=["positions"] if gradients else [],
            selected_keys=selected,
        )
        return tensor.keys_to_properties(to_properties)

    return _batched(compute, frames, batch_size, progress, "SOAP")


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
    :returns: keys ``(o3_lambda, o3_sigma, center_type)`` (every combination,
        blocks of absent center types empty), samples ``(system, atom)``,
        components ``o3_mu``, properties
        ``(l_1, l_2, neighbor_1_type, n_1, neighbor_2_type, n_2)``
    """
    species = _check_species(frames, species)
    expansion = _calculator(featomic.SphericalExpansion, hypers)
    calculator = EquivariantPowerSpectrum(expansion, neighbor_types=list(species))
    max_angular = hypers["basis"]["max_angular"]
    symmetries = [
        (lam, sigma)
        for lam in range(lambda_max + 1)
        for sigma in ((1, -1) if include_improper else (1,))
        if not (sigma == -1 and (lam == 0 or max_angular == 0))
    ]
    selected = Labels(["o3_lambda", "o3_sigma"], np.array(symmetries, dtype=np.int32))

    def compute(batch):
        return calculator.compute(
            batch, selected_keys=selected, neighbors_to_properties=True
        )

    tensor = _batched(compute, frames, batch_size, progress, "lambda-SOAP")
    return _complete_center_types(tensor, species)


def compute_descriptor(
    frames: Sequence[ase.Atoms],
    config: DescriptorConfig,
    cache_dir: Optional[str] = None,
    progress: bool = False,
) -> TensorMap:
    """Compute (or load from the cache) the descriptor ``config`` of ``frames``.

    The cache entry is keyed by the resolved featomic hypers, the species list,
    ``lambda_max``, the sigma and gradient options, the featomic version and a
    hash of the structures (numbers, positions, cell, pbc); ``batch_size``
    does not enter since it does not change the result.

    :param cache_dir: folder of the cache; ``None`` computes without caching
    """
    species = config.species if config.species is not None else _frames_species(frames)
    hypers = config.featomic_dict()
    description = descriptor_metadata(config, species)
    key = hash_json({**description, "frames": hash_frames(frames)})

    def compute() -> TensorMap:
        if config.kind == "soap":
            return compute_soap(
                frames, species, hypers, config.gradients, config.batch_size, progress
            )
        return compute_lambda_soap(
            frames,
            species,
            hypers,
            config.lambda_max,
            config.include_improper,
            config.batch_size,
            progress,
        )

    cache = TensorMapCache(cache_dir)
    metadata = {**description, "n_frames": len(frames)}
    return cache.get_or_compute(config.kind, key, compute, metadata=metadata)


def descriptor_metadata(config: DescriptorConfig, species: Sequence[int]) -> dict:
    """Everything that determines a descriptor's values, as plain data."""
    description = {
        "kind": config.kind,
        "featomic_hypers": config.featomic_dict(),
        "species": [int(s) for s in species],
        "gradients": config.gradients,
        "featomic_version": featomic.__version__,
        "cache_format": CACHE_FORMAT,
    }
    if config.kind == "lambda_soap":
        description["lambda_max"] = config.lambda_max
        description["include_improper"] = config.include_improper
    return description


def _frames_species(frames: Sequence[ase.Atoms]) -> Tuple[int, ...]:
    numbers = set()
    for atoms in frames:
        numbers.update(int(z) for z in np.unique(atoms.numbers))
    return tuple(sorted(numbers))


def _check_species(frames: Sequence[ase.Atoms], species: Sequence[int]) -> List[int]:
    species = sorted(set(int(s) for s in species))
    if len(frames) == 0:
        raise DescriptorError("no frames to compute descriptors for")
    if not species:
        raise DescriptorError("the species list is empty")
    allowed = set(species)
    for index, atoms in enumerate(frames):
        extra = set(int(z) for z in np.unique(atoms.numbers)) - allowed
        if extra:
            raise DescriptorError(
                f"frame {index} contains atomic numbers {sorted(extra)} that are not "
                f"in the descriptor species {species}"
            )
    return species


def _calculator(cls, hypers: Dict[str, Any]):
    try:
        return cls(**hypers)
    except (TypeError, ValueError, featomic.FeatomicError) as error:
        raise DescriptorError(f"invalid featomic hyper-parameters: {error}") from None


def _batched(compute, frames, batch_size, progress, name) -> TensorMap:
    """Run ``compute`` over batches of frames and join the results."""
    starts = range(0, len(frames), batch_size)
    parts = []
    bar = tqdm(
        total=len(frames), desc=name, unit="frame", disable=not progress, leave=False
    )
    with bar:
        for start in starts:
            batch = list(frames[start : start + batch_size])
            try:
                with warnings.catch_warnings():
                    # ASE gives non-periodic molecules a cell; featomic warns
                    # that it ignores it, which is what we want
                    warnings.filterwarnings(
                        "ignore", message="periodic boundary conditions are disabled"
                    )
                    tensor = compute(batch)
            except featomic.FeatomicError as error:
                raise DescriptorError(
                    f"featomic failed on frames {start} to {start + len(batch) - 1}: "
                    f"{error}"
                ) from None
            parts.append(_offset_systems(tensor, start) if start else tensor)
            bar.update(len(batch))
    if len(parts) == 1:
        return parts[0]
    return metatensor.join(parts, axis="samples", different_keys="union")


def _offset_systems(tensor: TensorMap, offset: int) -> TensorMap:
    """Shift the ``system`` sample index (values and gradients) by ``offset``."""
    blocks = []
    for block in tensor.blocks():
        new = TensorBlock(
            block.values,
            _shift(block.samples, "system", offset),
            block.components,
            block.properties,
        )
        for parameter, gradient in block.gradients():
            new.add_gradient(
                parameter,
                TensorBlock(
                    gradient.values,
                    _shift(gradient.samples, "system", offset),
                    gradient.components,
                    gradient.properties,
                ),
            )
        blocks.append(new)
    return TensorMap(tensor.keys, blocks)


def _shift(labels: Labels, name: str, offset: int) -> Labels:
    values = labels.values.copy()
    values[:, labels.names.index(name)] += offset
    return Labels(labels.names, values)


def _complete_center_types(tensor: TensorMap, species: Sequence[int]) -> TensorMap:
    """Order the keys canonically and add empty blocks for absent center types.

    Keys come out sorted by ``(o3_lambda, -o3_sigma, center_type)`` whatever
    the frames contain, so two tensors over the same species list have
    identical keys.
    """
    names = tensor.keys.names
    center = names.index("center_type")
    templates, present = {}, {}
    for key, block in tensor.items():
        values = tuple(int(v) for v in key.values)
        templates.setdefault(values[:center] + values[center + 1 :], block)
        present[values] = block
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
            blocks.append(
                TensorBlock(values, samples, template.components, template.properties)
            )
    return TensorMap(Labels(names, np.array(keys, dtype=np.int32)), blocks)
