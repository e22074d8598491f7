"""Compressed SOAP features with exact position gradients, ready for training.

Recomputing SOAP gradients every epoch is what makes force training slow
(featomic gives 600 to 900 atoms/s with gradients on two cores). equilens
computes them once, projects them on a per-species principal subspace of the
SOAP power spectrum and keeps only the projection:

    x_i = ((X_i - mean_z) @ W_z) / scale_z          (k features per atom)
    dx_i/dr_j = (dX_i/dr_j @ W_z) / scale_z

where ``z`` is the species of atom ``i``. Since the model sees only ``x``,
``F_j = -sum_i dE/dx_i . dx_i/dr_j`` is the exact force of the model. The
projection is done per ``(center, neighbor_1, neighbor_2)`` block of
featomic's sparse output, so the 1,470-wide dense gradients never exist.

:class:`~equilens.descriptors.compression.SpeciesPCA` learns ``mean_z``,
``W_z`` and ``scale_z``; :func:`featurize` turns frames (and their targets) into a
:class:`FeatureSet` of torch tensors, in batches with a progress bar.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import ase
import numpy as np
import torch

from .budget import BYTES, frames_per_call, soap_size
from .compression import SpeciesPCA
from .feature_batches import feature_batches
from .soap import compute_soap


@dataclass
class FeatureSet:
    """Projected features of a list of frames, with optional gradients and targets.

    Atoms of all frames are stacked in frame order; ``atom_offsets[f]`` is the
    first atom of frame ``f``. Gradient entries ``e`` say how the features of
    atom ``grad_center[e]`` move with the position of atom
    ``grad_neighbor[e]`` (global indices), frame by frame
    (``pair_offsets``).
    """

    x: torch.Tensor
    species: torch.Tensor
    atom_offsets: torch.Tensor
    grad_center: Optional[torch.Tensor] = None
    grad_neighbor: Optional[torch.Tensor] = None
    grad_values: Optional[torch.Tensor] = None
    pair_offsets: Optional[torch.Tensor] = None
    energy: Optional[torch.Tensor] = None
    forces: Optional[torch.Tensor] = None

    @property
    def n_frames(self) -> int:
        return len(self.atom_offsets) - 1

    @property
    def n_atoms_per_frame(self) -> torch.Tensor:
        return self.atom_offsets[1:] - self.atom_offsets[:-1]

    @property
    def system(self) -> torch.Tensor:
        """Frame index of every atom."""
        frames = torch.arange(self.n_frames, device=self.atom_offsets.device)
        return torch.repeat_interleave(frames, self.n_atoms_per_frame)

    @property
    def has_gradients(self) -> bool:
        return self.grad_values is not None

    @property
    def nbytes(self) -> int:
        """Bytes of all its tensors."""
        values = (getattr(self, f.name) for f in dataclasses.fields(self))
        return sum(v.nbytes for v in values if isinstance(v, torch.Tensor))

    def to(self, device=None, dtype=None) -> FeatureSet:
        """The same features on ``device``, the float arrays in ``dtype``
        (the stored gradients keep their own storage precision)."""
        changes = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, torch.Tensor):
                floating = value.is_floating_point() and field.name != "grad_values"
                changes[field.name] = value.to(device=device, dtype=dtype if floating else None)
        return dataclasses.replace(self, **changes)

    def select(self, positions: Sequence[int]) -> FeatureSet:
        """The frames at ``positions``, renumbered from zero."""
        frames = torch.as_tensor(positions, dtype=torch.long, device=self.atom_offsets.device)
        if len(frames) and bool(torch.all(frames[1:] - frames[:-1] == 1)):
            return self._slice(int(frames[0]), int(frames[-1]) + 1)
        starts, stops = self.atom_offsets[frames], self.atom_offsets[frames + 1]
        counts = stops - starts
        atoms = concatenated_ranges(starts, counts)
        new_offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        # index_select copies whole rows: 3x faster than advanced indexing
        # for the gradients of a batch (what a seed's order of frames shared
        # with other seeds selects every step)
        changes = {
            "x": self.x.index_select(0, atoms),
            "species": self.species.index_select(0, atoms),
            "atom_offsets": new_offsets,
            "energy": None if self.energy is None else self.energy.index_select(0, frames),
            "forces": None if self.forces is None else self.forces.index_select(0, atoms),
        }
        if self.has_gradients:
            p_starts = self.pair_offsets[frames]
            p_counts = self.pair_offsets[frames + 1] - p_starts
            pairs = concatenated_ranges(p_starts, p_counts)
            shift = torch.repeat_interleave(new_offsets[:-1] - starts, p_counts)
            changes.update(
                grad_center=self.grad_center.index_select(0, pairs) + shift,
                grad_neighbor=self.grad_neighbor.index_select(0, pairs) + shift,
                grad_values=self.grad_values.index_select(0, pairs),
                pair_offsets=torch.cat([p_counts.new_zeros(1), p_counts.cumsum(0)]),
            )
        return dataclasses.replace(self, **changes)

    def reordered(self, positions: Sequence[int]) -> FeatureSet:
        """The frames at ``positions``, in that order (:meth:`select`; a
        :class:`~equilens.descriptors.feature_files.MappedFeatureSet` does it
        without reading its files)."""
        return self.select(positions)

    def _slice(self, first: int, stop: int) -> FeatureSet:
        """Frames ``first`` to ``stop - 1`` as views, without copying."""
        a, b = int(self.atom_offsets[first]), int(self.atom_offsets[stop])
        changes = {
            "x": self.x[a:b],
            "species": self.species[a:b],
            "atom_offsets": self.atom_offsets[first : stop + 1] - a,
            "energy": None if self.energy is None else self.energy[first:stop],
            "forces": None if self.forces is None else self.forces[a:b],
        }
        if self.has_gradients:
            p, q = int(self.pair_offsets[first]), int(self.pair_offsets[stop])
            changes.update(
                grad_center=self.grad_center[p:q] - a,
                grad_neighbor=self.grad_neighbor[p:q] - a,
                grad_values=self.grad_values[p:q],
                pair_offsets=self.pair_offsets[first : stop + 1] - p,
            )
        return dataclasses.replace(self, **changes)

    @classmethod
    def concatenate(cls, parts: List[FeatureSet]) -> FeatureSet:
        """Stack feature sets of consecutive frame ranges.

        ``parts`` is emptied as it goes, so that the peak memory is the result
        plus one part rather than twice the result.
        """
        if len(parts) == 1:
            return parts.pop()
        n_atoms = [int(p.atom_offsets[-1]) for p in parts]
        atom_base = np.concatenate([[0], np.cumsum(n_atoms)[:-1]])
        fields = ["x", "species", "energy", "forces"]
        if parts[0].has_gradients:
            fields += ["grad_center", "grad_neighbor", "grad_values"]
        sizes = {
            name: [len(getattr(p, name)) for p in parts]
            for name in fields
            if getattr(parts[0], name) is not None
        }
        out = {
            name: torch.empty(
                (sum(counts),) + tuple(getattr(parts[0], name).shape[1:]),
                dtype=getattr(parts[0], name).dtype,
            )
            for name, counts in sizes.items()
        }
        atom_offsets = [torch.zeros(1, dtype=torch.long)]
        pair_offsets = [torch.zeros(1, dtype=torch.long)]
        position = {name: 0 for name in out}
        base_pairs = 0
        for base in atom_base:
            part = parts[0]
            for name in out:
                value = getattr(part, name)
                if name in ("grad_center", "grad_neighbor"):
                    value = value + int(base)
                out[name][position[name] : position[name] + len(value)] = value
                position[name] += len(value)
            atom_offsets.append(part.atom_offsets[1:] + int(base))
            if part.has_gradients:
                pair_offsets.append(part.pair_offsets[1:] + base_pairs)
                base_pairs += int(part.pair_offsets[-1])
            parts.pop(0)  # free this part before copying the next
        result = cls(
            atom_offsets=torch.cat(atom_offsets),
            **{n: out.get(n) for n in ("x", "species", "energy", "forces")},
        )
        if "grad_values" in out:
            result.grad_center = out["grad_center"]
            result.grad_neighbor = out["grad_neighbor"]
            result.grad_values = out["grad_values"]
            result.pair_offsets = torch.cat(pair_offsets)
        return result


def concatenated_ranges(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Concatenation of ``arange(start, start + count)`` for each pair."""
    total = int(counts.sum())
    if total == 0:
        return counts.new_zeros(0)
    first = torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]])
    return torch.arange(total, device=counts.device) + torch.repeat_interleave(
        starts - first, counts
    )


#: frames per featomic call of :func:`featurize` with gradients
GRADIENT_BATCH = 8


def featurize(
    frames: Sequence[ase.Atoms],
    hypers: dict,
    pca: SpeciesPCA,
    gradients: bool = True,
    energies: Optional[np.ndarray] = None,
    forces: Optional[Sequence[np.ndarray]] = None,
    batch_size: Optional[int] = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    gradient_dtype: Optional[torch.dtype] = None,
) -> FeatureSet:
    """Projected SOAP features (and gradients) of ``frames``.

    :param hypers: featomic SOAP hypers (the ones ``pca`` was fitted with)
    :param pca: a fitted :class:`SpeciesPCA`
    :param gradients: also compute the projected position gradients
    :param energies: total energies (eV) to attach, or ``None``
    :param forces: forces (eV/Å) to attach, or ``None``
    :param batch_size: frames per featomic call; with gradients the peak
        memory is about 90 MB per 164-atom frame of the batch, without about
        2 MB (default: :data:`GRADIENT_BATCH` frames with gradients, else
        :func:`~equilens.descriptors.budget.frames_per_call`)
    :param gradient_dtype: storage type of the projected gradients (default:
        ``dtype``); ``torch.float16`` halves the largest array of force
        training (relative rounding 5e-4) and is cast back per batch
    """
    if batch_size is None and gradients:
        batch_size = GRADIENT_BATCH
    elif batch_size is None:
        features = soap_size(frames[:1], len(pca.species_), hypers, gradients=False).per_atom
        batch_size = frames_per_call(frames, features * BYTES)
    parts = featurize_batches(
        frames, hypers, pca, gradients, batch_size, dtype, progress, gradient_dtype
    )
    return with_targets(FeatureSet.concatenate(list(parts)), energies, forces, dtype)


def featurize_batches(
    frames: Sequence[ase.Atoms],
    hypers: dict,
    pca: SpeciesPCA,
    gradients: bool = True,
    batch_size: int = 8,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    gradient_dtype: Optional[torch.dtype] = None,
    per_process: Optional[int] = None,
) -> Iterator[FeatureSet]:
    """:func:`featurize`, batch by batch (without targets).

    :param per_process: see :func:`~equilens.descriptors.feature_batches.feature_batches`
    """
    compute = functools.partial(
        _featurize_batch,
        hypers=hypers,
        pca=pca,
        gradients=gradients,
        dtype=dtype,
        gradient_dtype=gradient_dtype or dtype,
    )
    return feature_batches(frames, batch_size, compute, progress, per_process)


def target_tensors(
    energies: Optional[np.ndarray], forces: Optional[Sequence[np.ndarray]], dtype: torch.dtype
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Total energies and stacked forces as tensors of ``dtype`` (or None)."""
    energy = None if energies is None else torch.as_tensor(np.asarray(energies), dtype=dtype)
    force = None if forces is None else torch.as_tensor(np.concatenate(forces), dtype=dtype)
    return energy, force


def with_targets(
    features: FeatureSet,
    energies: Optional[np.ndarray],
    forces: Optional[Sequence[np.ndarray]],
    dtype: torch.dtype,
) -> FeatureSet:
    """``features`` with the frames' energies and forces attached."""
    energy, force = target_tensors(energies, forces, dtype)
    if energy is not None:
        features.energy = energy
    if force is not None:
        features.forces = force
    return features


def _featurize_batch(
    frames, hypers, pca: SpeciesPCA, gradients: bool, dtype, gradient_dtype
) -> FeatureSet:
    species = pca.species_
    soap = compute_soap(
        frames, species, hypers, gradients=gradients, neighbors="keys", batch_size=len(frames)
    )
    counts = np.array([len(a) for a in frames])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    numbers = np.concatenate([a.numbers for a in frames])
    species_index = np.searchsorted(species, numbers)
    k = pca.n_components
    x = np.zeros((len(numbers), k))
    grad_parts: list = []  # (center, neighbor, values) per center type
    if soap.keys.names == ["center_type"]:  # the dense layout (alchemical SOAP)
        _project_dense(soap, pca, offsets, x, grad_parts if gradients else None)
    else:
        _project_pairs(soap, pca, numbers, offsets, x, grad_parts if gradients else None)
    result = FeatureSet(
        x=torch.as_tensor(x, dtype=dtype),
        species=torch.as_tensor(species_index, dtype=torch.long),
        atom_offsets=torch.as_tensor(offsets, dtype=torch.long),
    )
    if gradients:
        center = np.concatenate([p[0] for p in grad_parts])
        neighbor = np.concatenate([p[1] for p in grad_parts])
        gradient_values = np.concatenate([p[2] for p in grad_parts])
        # order the entries frame by frame
        frame = np.searchsorted(offsets, center, side="right") - 1
        order = np.argsort(frame, kind="stable")
        result.grad_center = torch.as_tensor(center[order], dtype=torch.long)
        result.grad_neighbor = torch.as_tensor(neighbor[order], dtype=torch.long)
        result.grad_values = torch.as_tensor(gradient_values[order], dtype=gradient_dtype)
        result.pair_offsets = torch.as_tensor(
            np.concatenate([[0], np.cumsum(np.bincount(frame, minlength=len(frames)))]),
            dtype=torch.long,
        )
    return result


def _project_pairs(soap, pca: SpeciesPCA, numbers, offsets, x, grad_parts) -> None:
    """Project featomic's sparse pair blocks (keys ``center_type,
    neighbor_1_type, neighbor_2_type``) into ``x`` and, unless ``grad_parts``
    is None, append the merged projected gradients of each center type."""
    species = pca.species_
    k = pca.n_components
    gradients = grad_parts is not None
    pair_width = None
    pairs = [(a, b) for i, a in enumerate(species) for b in species[i:]]
    for z in species:
        projection = pca.projection(z)
        mask = numbers == z
        x[mask] -= pca.offset(z)
        centers, neighbors, values = [], [], []
        for index, (a, b) in enumerate(pairs):
            block = soap.block({"center_type": z, "neighbor_1_type": a, "neighbor_2_type": b})
            pair_width = pair_width or block.values.shape[1]
            w = projection[index * pair_width : (index + 1) * pair_width]
            samples = block.samples.values
            rows = offsets[samples[:, 0]] + samples[:, 1]
            if len(rows):
                x[rows] += block.values.view(np.ndarray) @ w
            if gradients and len(rows):
                gradient = block.gradient("positions")
                g = gradient.samples.values
                centers.append(rows[g[:, 0]])
                neighbors.append(offsets[g[:, 1]] + g[:, 2])
                gv = gradient.values.view(np.ndarray)
                values.append((gv.reshape(-1, pair_width) @ w).reshape(len(g), 3, k))
        if gradients and centers:
            grad_parts.append(
                _merge(
                    np.concatenate(centers),
                    np.concatenate(neighbors),
                    np.concatenate(values),
                    len(numbers),
                )
            )


def _project_dense(soap, pca: SpeciesPCA, offsets, x, grad_parts) -> None:
    """:func:`_project_pairs` for the dense layout (keys ``center_type``)."""
    k = pca.n_components
    for key, block in soap.items():
        z = int(key["center_type"])
        if len(block.samples) == 0:
            continue
        projection = pca.projection(z)
        rows = offsets[block.samples.values[:, 0]] + block.samples.values[:, 1]
        x[rows] += block.values.view(np.ndarray) @ projection - pca.offset(z)
        if grad_parts is None:
            continue
        gradient = block.gradient("positions")
        g = gradient.samples.values
        gv = gradient.values.view(np.ndarray)
        values = (gv.reshape(-1, gv.shape[-1]) @ projection).reshape(len(g), 3, k)
        # featomic's gradient samples are already unique per block
        grad_parts.append((rows[g[:, 0]], offsets[g[:, 1]] + g[:, 2], values))


def _merge(center, neighbor, values, n_atoms):
    """Sum the entries that share a (center, neighbor) pair."""
    codes = center.astype(np.int64) * n_atoms + neighbor
    unique, inverse = np.unique(codes, return_inverse=True)
    summed = np.zeros((len(unique),) + values.shape[1:])
    flat = torch.from_numpy(summed.reshape(len(summed), -1))
    flat.index_add_(0, torch.from_numpy(inverse), torch.from_numpy(values.reshape(len(values), -1)))
    return unique // n_atoms, unique % n_atoms, summed
