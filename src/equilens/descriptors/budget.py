"""Memory estimates before the large descriptor allocations.

The SOAP power spectrum over a fixed species list has, per atom, one block of
``(max_angular + 1) (max_radial + 1)^2`` features for every unordered pair of
neighbor types: ``S (S + 1) / 2`` pairs for ``S`` elements. Three elements
give 6 pairs; 55 elements give 1,540, and the descriptor of a few hundred
frames no longer fits in memory. Gradients multiply that by three times the
number of neighbors of each atom. :func:`check_soap_memory` computes the size
before featomic allocates it and stops with a
:class:`~equilens.errors.ResourceError` that says how much memory the
computation would need, why, and what reduces it.

The memory available is ``MemAvailable`` of ``/proc/meminfo`` (else the
physical memory); ``EQUILENS_MEMORY_LIMIT_GB`` sets another limit. A
computation may use up to :data:`FRACTION` of it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import ase
import numpy as np

from ..errors import ResourceError

#: the share of the available memory one descriptor computation may take
FRACTION = 0.8
BYTES = 8  # float64


@dataclass(frozen=True)
class SoapSize:
    """The size of a SOAP computation, and why."""

    n_atoms: int
    n_species: int
    n_pairs: int
    per_pair: int
    n_gradient_pairs: int

    @property
    def per_atom(self) -> int:
        """Features per atom."""
        return self.n_pairs * self.per_pair

    @property
    def values_bytes(self) -> int:
        return self.n_atoms * self.per_atom * BYTES

    @property
    def gradient_bytes(self) -> int:
        return 3 * self.n_gradient_pairs * self.per_atom * BYTES

    @property
    def total_bytes(self) -> int:
        return self.values_bytes + self.gradient_bytes


def soap_size(
    frames: Sequence[ase.Atoms], n_species: int, hypers: Dict[str, Any], gradients: bool
) -> SoapSize:
    """The size of the SOAP power spectrum of ``frames`` over ``n_species``
    elements (and of its position gradients: one row per atom and per
    distinct neighbor within the cutoff, and the atom itself)."""
    basis = hypers["basis"]
    per_pair = (int(basis["max_angular"]) + 1) * (int(basis["radial"]["max_radial"]) + 1) ** 2
    n_atoms = int(sum(len(f) for f in frames))
    n_gradient = gradient_pairs(frames, float(hypers["cutoff"]["radius"])) if gradients else 0
    return SoapSize(n_atoms, n_species, n_species * (n_species + 1) // 2, per_pair, n_gradient)


#: frames per featomic call without gradients, and the most bytes of
#: descriptor such a call may allocate
VALUE_FRAMES = 64
VALUE_BYTES = 256 * 1024**2


def frames_per_call(
    frames: Sequence[ase.Atoms],
    bytes_per_atom: int,
    most: int = VALUE_FRAMES,
    budget: int = VALUE_BYTES,
) -> int:
    """Frames per descriptor call without gradients: ``most``, fewer when
    that many (average) frames at ``bytes_per_atom`` would pass ``budget``
    bytes (many elements, large frames), at least one. Small calls cost
    featomic much more per atom: the layers of 360 iron/water frames took
    14.6 s in 8-frame calls, 7.7 s in 50-frame ones."""
    if not len(frames):
        return most
    per_frame = bytes_per_atom * sum(len(atoms) for atoms in frames) / len(frames)
    return int(max(1, min(most, budget // max(per_frame, 1.0))))


#: the most frames per call of a density with position gradients
GRADIENT_FRAMES = 16
#: the most bytes of density gradients such a call may allocate
GRADIENT_BYTES = 256 * 1024**2


def density_gradient_frames(
    frames: Sequence[ase.Atoms], n_species: int, hypers: Dict[str, Any]
) -> int:
    """Frames per spherical-expansion call with position gradients:
    :data:`GRADIENT_FRAMES`, fewer when that many (average) frames would
    pass :data:`GRADIENT_BYTES` of density gradients (twice: featomic's and
    the compressed copy's working arrays), counted from the pairs of up to
    four frames. The equivariant potential's features of 216 embedded frames
    took 14.5 s in 4-frame calls, 9.4 s in 16-frame ones."""
    if len(frames) <= 1:  # one call whatever the estimate (a calculator's frame)
        return GRADIENT_FRAMES
    basis = hypers["basis"]
    width = (int(basis["max_angular"]) + 1) ** 2 * (int(basis["radial"]["max_radial"]) + 1)
    sample = list(frames[:: max(1, len(frames) // 4)][:4])
    pairs = gradient_pairs(sample, float(hypers["cutoff"]["radius"]))
    per_atom = 2 * 3 * BYTES * n_species * width * pairs / sum(len(a) for a in sample)
    return frames_per_call(frames, int(per_atom), GRADIENT_FRAMES, GRADIENT_BYTES)


def gradient_pairs(frames: Sequence[ase.Atoms], radius: float) -> int:
    """Distinct (atom, neighbor) pairs within ``radius`` (periodic images
    merged), each atom with itself included: the rows of position gradients
    (vesin's neighbour list: its memory follows the pairs, not the cell)."""
    from ..neighbors import neighbor_pairs

    total = 0
    for atoms in frames:
        n = len(atoms)
        first, second = neighbor_pairs(atoms, radius, "ij")
        rows = np.concatenate([first * n + second, second * n + first, np.arange(n) * (n + 1)])
        total += len(np.unique(rows))
    return total


def pair_bound(frames: Sequence[ase.Atoms]) -> int:
    """Every atom pair of each frame: the bound of :func:`gradient_pairs`,
    free to compute."""
    return int(sum(len(f) ** 2 for f in frames))


def available_memory() -> int:
    """Bytes of memory a computation may count on (see the module docstring)."""
    limit = os.environ.get("EQUILENS_MEMORY_LIMIT_GB")
    if limit:
        return int(float(limit) * 1024**3)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_soap_memory(
    frames: Sequence[ase.Atoms],
    n_species: int,
    hypers: Dict[str, Any],
    gradients: bool = False,
    what: str = "SOAP",
    available: Optional[int] = None,
) -> Optional[SoapSize]:
    """Raise :class:`~equilens.errors.ResourceError` when the SOAP of
    ``frames`` would need more than :data:`FRACTION` of the available memory;
    returns the size otherwise (``None`` for hypers it cannot read: featomic
    then reports what is wrong with them).

    Counting neighbors costs a fifth of the SOAP gradients themselves, so it
    is done only when the bound of every atom pair of each frame (periodic
    images merged) does not fit; the size returned then holds that bound."""
    try:
        size = soap_size(frames, n_species, hypers, False)
    except (KeyError, TypeError, ValueError):
        return None
    budget = FRACTION * (available if available is not None else available_memory())
    if gradients:
        size = dataclasses.replace(size, n_gradient_pairs=pair_bound(frames))
        if size.total_bytes > budget:
            size = soap_size(frames, n_species, hypers, True)
    if size.total_bytes <= budget:
        return size
    gib = 1024**3
    gradient_text = (
        f" + gradients {size.gradient_bytes / gib:.1f} GB ({size.n_gradient_pairs:,} "
        "atom-neighbor pairs x 3)"
        if gradients
        else ""
    )
    raise _soap_refusal(what, size, size.total_bytes, budget, gradient_text)


def _soap_refusal(
    what: str, size: SoapSize, needed: int, budget: float, extra: str = ""
) -> ResourceError:
    """The one-line refusal of a SOAP computation of ``size`` that would
    need ``needed`` bytes (``extra``: what else it holds, in words)."""
    gib = 1024**3
    return ResourceError(
        f"{what}: would need {needed / gib:.1f} GB, more than "
        f"{FRACTION:.0%} of the {budget / FRACTION / gib:.1f} GB available: "
        f"{size.n_atoms:,} atoms x {size.per_atom:,} features "
        f"({size.n_species} neighbor types -> {size.n_pairs:,} neighbor-type pairs x "
        f"{size.per_pair} features per pair) = {size.values_bytes / gib:.1f} GB"
        f"{extra}. Reduce it with descriptor.alchemical (neighbor types mixed onto a "
        "few pseudo-species: the size no longer grows with the square of the elements), "
        "fewer elements in descriptor.species, a smaller basis (max_radial, max_angular, or "
        "preset: small), or fewer frames (read.index, e.g. '::4')"
    )


def check_compression_memory(
    frames: Sequence[ase.Atoms],
    species: Sequence[int],
    hypers: Dict[str, Any],
    max_samples: int,
    shared: bool,
    batch_size: int,
) -> Optional[int]:
    """Raise :class:`~equilens.errors.ResourceError` when fitting the SOAP
    compression of ``frames`` batch by batch
    (:meth:`~equilens.descriptors.compression.SpeciesPCA.fit_batches`)
    would not fit: the rows it keeps (``max_samples`` atoms per species, or
    every atom of a species with fewer), the SOAP of the largest batch and
    the features' covariance. Returns the bytes (``None`` for hypers it
    cannot read)."""
    from .alchemical import split_hypers

    base, alchemical = split_hypers(hypers)
    n_species = alchemical.pseudo_species if alchemical is not None else len(species)
    numbers = np.concatenate([np.asarray(atoms.numbers) for atoms in frames])
    counts = [int(np.sum(numbers == z)) for z in set(int(z) for z in species)]
    kept = min(sum(counts), max_samples) if shared else sum(min(c, max_samples) for c in counts)
    largest = max(
        sum(len(f) for f in frames[start : start + batch_size])
        for start in range(0, len(frames), batch_size)
    )
    try:
        size = soap_size(frames[:0], n_species, base, False)
    except (KeyError, TypeError, ValueError):
        return None
    size = dataclasses.replace(size, n_atoms=kept + largest)
    covariance = size.per_atom**2 * BYTES
    needed = size.values_bytes + covariance
    budget = FRACTION * available_memory()
    if needed > budget:
        extra = f" + their covariance {covariance / 1024**3:.1f} GB"
        raise _soap_refusal("SOAP for the compression", size, needed, budget, extra)
    return needed


def lambda_soap_features(hypers: Dict[str, Any], n_species: int, symmetries) -> int:
    """Values per atom of the lambda-SOAP blocks ``symmetries`` (``(o3_lambda,
    o3_sigma)`` pairs) with neighbor types in properties: for each, ``2 lambda
    + 1`` components x the ``l_1 <= l_2`` pairs that couple to it with that
    parity x ``(max_radial + 1)^2`` x ``S^2`` ordered neighbor-type pairs."""
    basis = hypers["basis"]
    top, radial = int(basis["max_angular"]), int(basis["radial"]["max_radial"]) + 1
    total = 0
    for lam, sigma in symmetries:
        pairs = sum(
            1
            for l1 in range(top + 1)
            for l2 in range(l1, top + 1)
            if abs(l1 - l2) <= lam <= l1 + l2 and ((l1 + l2 + lam) % 2 == 0) == (sigma == 1)
        )
        total += (2 * lam + 1) * pairs * radial**2 * n_species**2
    return total


def check_lambda_soap_memory(
    frames: Sequence[ase.Atoms], n_species: int, hypers: Dict[str, Any], symmetries
) -> Optional[int]:
    """:func:`check_soap_memory` for lambda-SOAP; returns the bytes it needs."""
    try:
        per_atom = lambda_soap_features(hypers, n_species, symmetries)
    except (KeyError, TypeError, ValueError):
        return None
    n_atoms = int(sum(len(f) for f in frames))
    needed = n_atoms * per_atom * BYTES
    budget = FRACTION * available_memory()
    if needed > budget:
        gib = 1024**3
        raise ResourceError(
            f"lambda-SOAP: would need {needed / gib:.1f} GB, more than {FRACTION:.0%} of the "
            f"{budget / FRACTION / gib:.1f} GB available: {n_atoms:,} atoms x {per_atom:,} "
            f"values ({n_species} neighbor types -> {n_species**2:,} ordered neighbor-type "
            "pairs). "
            "Reduce it with descriptor.alchemical (a few pseudo-species), fewer elements, a "
            "smaller basis or lambda_max, or fewer frames"
        )
    return needed


def check_feature_memory(
    frames: Sequence[ase.Atoms],
    cutoff: float,
    n_components: int,
    gradient_bytes: int,
    available: Optional[int] = None,
    folder: Optional[str] = None,
) -> int:
    """Raise :class:`~equilens.errors.ResourceError` when the projected
    features of ``frames`` (values and, per distinct atom-neighbor pair, a
    ``3 x n_components`` gradient of ``gradient_bytes`` per number: the
    largest array force training holds) would not fit; returns the bytes.
    Neighbors are counted only when the all-pairs bound does not fit.

    :param folder: the features are written to files under this folder and
        read batch by batch (a feature cache): the disk space free there is
        the limit, not the memory
    """
    if available is None:
        available = free_disk(folder) if folder is not None else available_memory()
    budget = FRACTION * available
    n_atoms = int(sum(len(f) for f in frames))

    def needed(pairs: int) -> int:
        return n_atoms * n_components * 8 + 3 * pairs * n_components * gradient_bytes

    pairs = pair_bound(frames)
    if needed(pairs) > budget:
        pairs = gradient_pairs(frames, cutoff)
    if needed(pairs) <= budget:
        return needed(pairs)
    gib = 1024**3
    where = "memory" if folder is None else f"disk space under {folder}"
    raise ResourceError(
        f"projected features: would need {needed(pairs) / gib:.1f} GB, more than "
        f"{FRACTION:.0%} of the {budget / FRACTION / gib:.1f} GB of {where} available: "
        f"{pairs:,} atom-neighbor pairs x 3 x {n_components} components x {gradient_bytes} B. "
        "Reduce it with compression.gradient_storage: float16, fewer compression.n_components, "
        "a smaller cutoff, or fewer frames (read.index, e.g. '::4')"
    )


def free_disk(folder: str) -> int:
    """Bytes free on the file system that holds ``folder`` (or its nearest
    existing parent)."""
    import shutil
    from pathlib import Path

    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's
    ``malloc_trim``; nothing elsewhere).

    The transient arrays of one featurization batch (featomic's SOAP with
    gradients, about 0.8 GB for 8 water frames) are freed into the heap,
    which fragments over thousands of batches: this lowered the peak of
    the water training set repeated 10 times from 3.81 to 3.36 GiB (the set
    itself peaks at 1.64 GiB; see ``docs/benchmarks.md``).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)
