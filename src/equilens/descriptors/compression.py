"""Fixed linear compressions of descriptors, fitted once on training data.

- :class:`SpeciesPCA`: per-species principal components of the (dense) SOAP
  power spectrum, applied to the values and, exactly, to their position
  gradients (:mod:`equilens.descriptors.projected`);
- :class:`EquivariantPCA`: per-block principal axes of the feature axis of
  lambda-SOAP, shared by the ``2 lambda + 1`` components so that the
  projection commutes with rotations.

Both follow scikit-learn's conventions (parameters in ``__init__``, ``fit``
returns ``self``, learned attributes end with ``_``) and save to plain arrays
(``state`` / ``from_state``).
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import ase
import numpy as np
from metatensor import Labels, TensorMap

from ..errors import ConfigError, EquilensError
from ..tensormaps import key_tuple

Key = Tuple[int, ...]


class SpeciesPCA:
    """Per-species principal-component projection of the dense SOAP.

    :param n_components: features kept per species (``k``); species with
        fewer atoms or features get zero-padded components, so every atom has
        ``k`` features
    :param whiten: divide each component by its standard deviation (floored
        at ``1e-4`` of the largest one); otherwise divide all components by
        the standard deviation of the first
    :param max_samples: atoms per species used for the fit (a seeded random
        subset when there are more)
    :param gradient_weight: weight of the position-gradient covariance next
        to the value covariance (both normalised by their trace) when
        :meth:`fit` is given gradients. Plain PCA keeps the directions in which
        SOAP varies *between* environments; forces need the directions in
        which it varies when atoms *move*, which the gradient covariance
        ranks. 0 (default) gives plain PCA. Measured on the water data
        (k = 128, 40 epochs): weight 1 gave 0.21 eV/Å validation force RMSE
        against 0.15 for plain PCA, so it stays off by default.
    :param seed: seed of that subset
    :param shared: one projection for all species, fitted on the atoms of
        every species together (for a network shared by the species: the
        same coordinates for all, and species with a handful of atoms get a
        full projection); stored once
    """

    def __init__(
        self,
        n_components: int = 128,
        whiten: bool = True,
        max_samples: int = 20000,
        gradient_weight: float = 0.0,
        seed: int = 0,
        shared: bool = False,
    ):
        self.n_components = n_components
        self.shared = shared
        self.whiten = whiten
        self.max_samples = max_samples
        self.gradient_weight = gradient_weight
        self.seed = seed

    def fit(self, soap: TensorMap, gradients: Optional[Iterable[TensorMap]] = None) -> SpeciesPCA:
        """Learn the projection.

        :param soap: dense SOAP values (keys ``center_type``) of the training
            environments
        :param gradients: optionally, dense SOAP TensorMaps with ``positions``
            gradients of some training frames (same properties; an iterable,
            e.g. one frame at a time, to bound the memory), whose covariance
            is mixed in with ``gradient_weight``
        """
        if soap.keys.names != ["center_type"]:
            raise EquilensError(
                "SpeciesPCA.fit needs the dense SOAP layout (keys 'center_type'); "
                f"got keys {soap.keys.names}"
            )
        values = {int(k["center_type"]): b.values.view(np.ndarray) for k, b in soap.items()}
        return self._fit_values(values, soap.block(0).properties, gradients)

    def fit_batches(
        self,
        frames: Sequence[ase.Atoms],
        species: Sequence[int],
        soap_of: Callable[[List[ase.Atoms]], TensorMap],
        batch_size: int = 50,
        gradients: Optional[Iterable[TensorMap]] = None,
    ) -> SpeciesPCA:
        """:meth:`fit` on ``soap_of(frames)`` without holding it: the rows
        :meth:`fit` would draw (``max_samples`` atoms per species, from the
        same seeded generator) are chosen from the atom counts first and
        gathered from the SOAP of ``batch_size`` frames at a time, so the
        memory is that of the drawn rows, whatever the number of frames.
        The result equals :meth:`fit`'s.

        :param species: the descriptor's species (the blocks of the SOAP)
        :param soap_of: dense SOAP (keys ``center_type``) of a list of frames
        """
        species = sorted(int(z) for z in set(species))
        numbers = np.concatenate([np.asarray(atoms.numbers) for atoms in frames])
        counts = [int(np.sum(numbers == z)) for z in species]
        rng = np.random.default_rng(self.seed)
        drawn: Dict[int, Optional[np.ndarray]] = {}
        if self.shared:
            total = sum(counts)
            rows = (
                np.sort(rng.choice(total, self.max_samples, replace=False))
                if total > self.max_samples
                else None
            )
            starts = np.concatenate([[0], np.cumsum(counts)])
            for index, z in enumerate(species):
                if rows is None:
                    drawn[z] = None
                    continue
                inside = rows[(rows >= starts[index]) & (rows < starts[index + 1])]
                drawn[z] = inside - starts[index]
        else:
            for z, n in zip(species, counts):
                drawn[z] = (
                    np.sort(rng.choice(n, self.max_samples, replace=False))
                    if n > self.max_samples
                    else None
                )
        kept: Dict[int, List[np.ndarray]] = {z: [] for z in species}
        seen = dict.fromkeys(species, 0)
        properties = None
        for start in range(0, len(frames), batch_size):
            soap = soap_of(list(frames[start : start + batch_size]))
            properties = soap.block(0).properties if properties is None else properties
            for key, block in soap.items():
                z = int(key["center_type"])
                values = block.values.view(np.ndarray)
                chosen = drawn[z]
                if chosen is not None:
                    window = chosen[(chosen >= seen[z]) & (chosen < seen[z] + len(values))]
                    values = values[window - seen[z]]
                kept[z].append(np.array(values))
                seen[z] += len(block.values)
        values = {z: np.concatenate(parts) for z, parts in kept.items() if parts}
        return self._fit_values(values, properties, gradients)

    def _fit_values(
        self,
        values_by_species: Dict[int, np.ndarray],
        properties: Labels,
        gradients: Optional[Iterable[TensorMap]],
    ) -> SpeciesPCA:
        """Learn the projection from the SOAP rows of each species (the
        blocks' order), drawing ``max_samples`` of them where there are more."""
        n_features = len(properties)
        if not 1 <= self.n_components <= n_features:
            raise ConfigError(
                f"compression.n_components: {self.n_components} components of "
                f"{n_features} SOAP features per atom; use 1 to {n_features}"
            )
        gradient_covariance = (
            _gradient_covariances(gradients)
            if gradients is not None and self.gradient_weight > 0
            else {}
        )
        rng = np.random.default_rng(self.seed)
        self.species_: List[int] = list(values_by_species)
        self.properties_ = properties
        self.mean_: Dict[int, np.ndarray] = {}
        self.components_: Dict[int, np.ndarray] = {}
        self.scale_: Dict[int, np.ndarray] = {}
        self.explained_variance_ratio_: Dict[int, np.ndarray] = {}
        if self.shared:
            values = np.concatenate(list(values_by_species.values()))
            covariances = list(gradient_covariance.values())
            mixed = sum(covariances) / len(covariances) if covariances else None
            fitted = self._fit_rows(values, mixed, rng)
            for z in self.species_:
                self._store(z, fitted)
            return self
        for z, values in values_by_species.items():
            self._store(z, self._fit_rows(values, gradient_covariance.get(z), rng))
        return self

    def _store(self, z: int, fitted: tuple) -> None:
        self.mean_[z], self.components_[z], self.scale_[z], explained = fitted
        if explained is not None:
            self.explained_variance_ratio_[z] = explained

    def _fit_rows(self, values: np.ndarray, gradient_covariance, rng) -> tuple:
        """Mean, components, scale and explained variance of one set of rows."""
        k = self.n_components
        n, p = values.shape
        if n > self.max_samples:
            values = values[np.sort(rng.choice(n, self.max_samples, replace=False))]
        mean = values.mean(axis=0) if len(values) else np.zeros(p)
        components = np.zeros((p, k))
        variance = np.zeros(k)
        explained_ratio = None
        if len(values) > 1:
            centered = values - mean
            kept = min(k, len(values) - 1, p)
            if gradient_covariance is None and len(values) < p:
                # fewer rows than features (few atoms of many-element SOAP):
                # the covariance's eigenvectors from the rows' thin SVD, without
                # the p x p matrix
                _, singular, vt = np.linalg.svd(centered, full_matrices=False)
                total = float(np.sum(singular**2)) / (len(values) - 1)
                eigenvalues = singular[:kept] ** 2 / (len(values) - 1) / max(total, 1e-300)
                vectors = vt[:kept].T
            else:
                covariance = centered.T @ centered / (len(values) - 1)
                total = float(np.trace(covariance))
                target = covariance / max(total, 1e-300)
                if gradient_covariance is not None:
                    target = target + self.gradient_weight * gradient_covariance
                values_, eigenvectors = np.linalg.eigh(target)
                order = np.argsort(values_)[::-1][:kept]
                eigenvalues, vectors = values_[order], eigenvectors[:, order]
            # fix the sign of each component (largest entry positive) so
            # that the projection does not depend on the eigen-solver
            signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), range(kept)])
            components[:, :kept] = vectors * signs
            # the scale of each kept direction: its eigenvalue of the mixed
            # target in value units (the variance itself for plain PCA);
            # directions that barely vary between environments but move
            # with the atoms are not blown up by whitening
            variance[:kept] = np.clip(eigenvalues, 0, None) * total
            # the variance of the centred rows along each component
            along = centered @ components[:, :kept]
            explained = np.einsum("na,na->a", along, along) / (len(values) - 1)
            explained_ratio = explained / total if total > 0 else explained
        std = np.sqrt(variance)
        top = std.max() if len(std) and std.max() > 0 else 1.0
        if self.whiten:
            scale = np.maximum(std, 1e-4 * top)
        else:
            scale = np.full(k, top)
        return mean, components, scale, explained_ratio

    def projection(self, z: int) -> np.ndarray:
        """``W_z / scale_z``: the matrix applied to (centered) SOAP and gradients."""
        return self.components_[z] / self.scale_[z]

    def offset(self, z: int) -> np.ndarray:
        """``mean_z @ W_z / scale_z``, subtracted after the projection."""
        return self.mean_[z] @ self.projection(z)

    def fingerprint(self) -> str:
        """A SHA-256 of the fitted arrays: equal fingerprints, equal projections."""
        from ..storage import hash_arrays

        state = self.state()
        names = ("components", "mean", "scale")
        return hash_arrays([state[name][z] for name in names for z in state[name]])

    def state(self) -> dict:
        """Plain arrays, for saving."""
        return {
            "params": {
                "n_components": self.n_components,
                "whiten": self.whiten,
                "max_samples": self.max_samples,
                "gradient_weight": self.gradient_weight,
                "seed": self.seed,
                "shared": self.shared,
            },
            "species": self.species_,
            "properties_names": self.properties_.names,
            "properties": self.properties_.values.copy(),
            # a shared projection is stored once, under the first species
            "mean": {z: v.copy() for z, v in self._stored(self.mean_).items()},
            "components": {z: v.copy() for z, v in self._stored(self.components_).items()},
            "scale": {z: v.copy() for z, v in self._stored(self.scale_).items()},
        }

    def _stored(self, arrays: Dict[int, np.ndarray]) -> Dict[int, np.ndarray]:
        return {self.species_[0]: arrays[self.species_[0]]} if self.shared else arrays

    @classmethod
    def from_state(cls, state: dict) -> SpeciesPCA:
        """Rebuild a fitted projection from ``state``."""

        pca = cls(**state["params"])
        pca.species_ = [int(z) for z in state["species"]]
        pca.properties_ = Labels(state["properties_names"], np.asarray(state["properties"]))
        for name in ("mean", "components", "scale"):
            arrays = {int(z): np.asarray(v) for z, v in state[name].items()}
            if pca.shared:
                arrays = {z: arrays[pca.species_[0]] for z in pca.species_}
            setattr(pca, f"{name}_", arrays)
        pca.explained_variance_ratio_ = {}
        return pca


def _gradient_covariances(tensors: Iterable[TensorMap]) -> Dict[int, np.ndarray]:
    """Per species, the covariance of the SOAP position gradients (summed
    over tensors, normalised to unit trace)."""
    sums: Dict[int, np.ndarray] = {}
    for tensor in tensors:
        if tensor.keys.names != ["center_type"]:
            raise EquilensError("gradient SOAP for SpeciesPCA.fit must use the dense layout")
        for key, block in tensor.items():
            values = block.gradient("positions").values.view(np.ndarray)
            rows = values.reshape(-1, values.shape[-1])
            z = int(key["center_type"])
            sums[z] = sums.get(z, 0.0) + rows.T @ rows
    return {
        z: total / np.trace(total)
        for z, total in sums.items()
        if np.ndim(total) == 2 and np.trace(total) > 0
    }


def components_per_lambda(
    n_components: Union[int, Sequence[int]], lambda_max: int
) -> Tuple[int, ...]:
    """``n_components`` (one number, or one per ``o3_lambda``) as one number
    per ``o3_lambda = 0 .. lambda_max``."""
    if isinstance(n_components, (int, np.integer)):
        return (int(n_components),) * (lambda_max + 1)
    widths = tuple(int(n) for n in n_components)
    if len(widths) != lambda_max + 1:
        raise EquilensError(
            f"n_components: one number per o3_lambda 0..{lambda_max} ({lambda_max + 1}), "
            f"got {list(widths)}"
        )
    return widths


class EquivariantPCA:
    """Per-block principal axes of the feature space, shared by the components.

    For a block of shape ``(samples, 2l+1, p)`` the rows ``(sample, m)`` are
    stacked and the top right singular vectors of that ``(n (2l+1), p)``
    matrix are kept, without centering (a mean over ``m`` is not equivariant),
    so the projection acts on the feature axis only and commutes with
    rotations. Each block is also divided by its root-mean-square row norm
    after projection, so every block enters the network at unit scale.

    :param n_components: features kept per block (``0``: all), or a list of
        one number per ``o3_lambda`` (the first entry of a block's key)
    """

    def __init__(self, n_components: Union[int, Sequence[int]]):
        self.n_components = n_components
        self.projections: Dict[Key, np.ndarray] = {}

    def components(self, key: Key) -> int:
        """Features kept for block ``key`` (``0``: all)."""
        if isinstance(self.n_components, (int, np.integer)):
            return int(self.n_components)
        return int(self.n_components[key[0]])

    def state(self) -> List[Tuple[Key, np.ndarray]]:
        """The fitted projections as ``[(key, matrix)]``, for saving."""
        return [(key, matrix.copy()) for key, matrix in self.projections.items()]

    @classmethod
    def from_state(cls, state) -> EquivariantPCA:
        """Rebuild a fitted projection from ``state``."""
        pca = cls(0)
        pca.projections = {tuple(int(v) for v in key): np.asarray(m) for key, m in state}
        if pca.projections:
            pca.n_components = max(m.shape[1] for m in pca.projections.values())
        return pca

    def fit(self, tensor: TensorMap) -> EquivariantPCA:
        for key, block in tensor.items():
            values = np.asarray(block.values, dtype=np.float64)
            rows = values.reshape(-1, values.shape[-1])
            wanted = self.components(key_tuple(key))
            k = min(wanted, *rows.shape) if wanted else rows.shape[1]
            if len(rows) == 0:
                raise EquilensError(f"block {key_tuple(key)} has no samples to fit the projection")
            _, _, vt = np.linalg.svd(rows, full_matrices=False)
            projection = vt[:k].T
            scale = np.sqrt(np.mean(np.sum((rows @ projection) ** 2, axis=1)))
            self.projections[key_tuple(key)] = projection / max(scale, 1e-12)
        return self
