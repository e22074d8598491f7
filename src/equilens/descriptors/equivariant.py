"""The equivariant potential's input: lambda-SOAP of a compressed density,
projected, with exact position gradients computed once.

For each batch of frames::

    rho_l         featomic's SphericalExpansion, neighbor types in properties
    r_l           = rho_l P_(l, z)                   fixed equivariant PCA per (l, center type)
    X_lambda      = CG(r, r)                         featomic's ClebschGordanProduct, l_1 <= l_2,
                                                     o3_sigma = 1, lambda <= lambda_max
    x_lambda      = X_lambda Q_(lambda, z)           fixed equivariant PCA per (lambda, center type)
    dx_i/dR_j     = (dr_i/dR_j) J_i                  J_i = dx_i/dr_i, one per atom

The gradients of the density (featomic, per atom-neighbor pair) are
multiplied by each atom's Jacobian of its features by its density, built
from featomic's Clebsch-Gordan coefficients and ``Q``
(:mod:`equilens.descriptors.equivariant_jacobian`: both terms of the product
rule at once), so the forces of a network on ``x`` are exact and the
gradients are computed once, not at every training step (the idea of the
BPNN's projected SOAP gradients, :mod:`equilens.descriptors.projected`).
The projections act on the feature
axis only, shared by the ``2 lambda + 1`` components, so ``x`` transforms
like lambda-SOAP.

Each atom's features are stored flat, ``lambda = 0 .. lambda_max`` one after
the other, each ``(2 lambda + 1) x n_lambda`` (``n_components``, one number
or one per lambda), in a
:class:`~equilens.descriptors.projected.FeatureSet`.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import ase
import metatensor
import numpy as np
import torch
from featomic.clebsch_gordan import ClebschGordanProduct
from metatensor import Labels, TensorBlock, TensorMap

from ..errors import EquilensError
from ..tensormaps import Key, key_tuple
from ._batches import check_species, make_calculator
from .budget import BYTES, density_gradient_frames, frames_per_call
from .compression import EquivariantPCA, components_per_lambda
from .equivariant_jacobian import (
    DensityJacobian,
    check_density_samples,
    coupling_coefficients,
    pair_rows,
    projected_gradients,
)
from .feature_batches import feature_batches
from .projected import FeatureSet, with_targets

#: the key names of densities and features
KEY_NAMES = ["o3_lambda", "o3_sigma", "center_type"]


def angular_pairs(max_angular: int) -> List[Tuple[int, int]]:
    """The ``(l_1, l_2)`` of the product, ``l_1 <= l_2``, in property order."""
    return [(a, b) for a in range(max_angular + 1) for b in range(a, max_angular + 1)]


def spherical_density(frames, species: Sequence[int], hypers: dict, gradients: bool) -> TensorMap:
    """featomic's spherical expansion of ``frames``, the neighbor types moved
    to properties over ``species`` (keys ``o3_lambda, o3_sigma, center_type``)."""
    import featomic

    check_species(frames, species)
    calculator = make_calculator(featomic.SphericalExpansion, hypers)
    density = calculator.compute(list(frames), gradients=["positions"] if gradients else None)
    types = Labels(["neighbor_type"], np.array(species, dtype=np.int32).reshape(-1, 1))
    return density.keys_to_properties(types)


def _filter(keys: Labels) -> List[int]:
    return np.nonzero(keys.column("l_1") <= keys.column("l_2"))[0].tolist()


class DensityProduct:
    """The Clebsch-Gordan product of two compressed densities into the
    ``lambda <= lambda_max``, ``o3_sigma = 1`` blocks, with the ``(l_1, l_2)``
    combinations moved to properties in a fixed order.

    :param max_angular: the density's largest ``l``
    :param lambda_max: the largest ``lambda`` kept
    """

    def __init__(self, max_angular: int, lambda_max: int):
        self.cg = ClebschGordanProduct(max_angular=2 * max_angular, keys_filter=_filter)
        self.selected = Labels(
            ["o3_lambda", "o3_sigma"],
            np.array([[lam, 1] for lam in range(lambda_max + 1)], dtype=np.int32),
        )
        self.max_angular = max_angular
        self.pairs = Labels(
            ["l_1", "l_2"], np.array(angular_pairs(max_angular), dtype=np.int32).reshape(-1, 2)
        )

    def __call__(self, first: TensorMap, second: TensorMap) -> TensorMap:
        return self._blocks(first, second).keys_to_properties(self.pairs)

    def _blocks(self, first: TensorMap, second: TensorMap) -> TensorMap:
        """The product with ``(l_1, l_2)`` still in the keys."""
        first = metatensor.rename_dimension(first, "properties", "n", "n_1")
        second = metatensor.rename_dimension(second, "properties", "n", "n_2")
        return self.cg.compute(first, second, "l_1", "l_2", selected_keys=self.selected)

    def projected(
        self, first: TensorMap, second: TensorMap, projection: Callable[[Key], np.ndarray]
    ) -> Iterator[Tuple[Key, np.ndarray, np.ndarray]]:
        """``(key, samples, values @ projection)`` of the product: the same
        as projecting the blocks of a call of this object with ``projection(key)``
        (rows in its property order), computed per ``(l_1, l_2)`` block with
        that block's rows of the projection, so that the product with every
        pair side by side (most of it zeros) is never built. The parts of
        one key come out one after the other; their sums are the projected
        blocks."""
        offsets = {pair: index for index, pair in enumerate(angular_pairs(self.max_angular))}
        for key, block in self._blocks(first, second).items():
            three = (int(key["o3_lambda"]), int(key["o3_sigma"]), int(key["center_type"]))
            width = block.values.shape[-1]
            start = offsets[(int(key["l_1"]), int(key["l_2"]))] * width
            matrix = projection(three)[start : start + width]
            yield three, np.asarray(block.samples.values), np.asarray(block.values) @ matrix


def _compress(density: TensorMap, pca: EquivariantPCA, width: int) -> Dict[Key, TensorBlock]:
    """``density`` projected block by block to ``width`` channels (zero
    padded), values and position gradients."""
    result = {}
    channels = Labels.range("n", width)
    for key, block in density.items():
        key = key_tuple(key)
        matrix = _padded(pca.projections[key], width)
        new = TensorBlock(block.values @ matrix, block.samples, block.components, channels)
        if "positions" in block.gradients_list():
            gradient = block.gradient("positions")
            new.add_gradient(
                "positions",
                TensorBlock(
                    gradient.values @ matrix, gradient.samples, gradient.components, channels
                ),
            )
        result[key] = new
    return result


def _padded(matrix: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((matrix.shape[0], width))
    out[:, : min(width, matrix.shape[1])] = matrix[:, :width]
    return out


def _tensor(blocks: Dict[Key, TensorBlock], gradients: bool = True) -> TensorMap:
    keys = sorted(blocks)
    copied = []
    for key in keys:
        block = blocks[key]
        new = TensorBlock(block.values, block.samples, block.components, block.properties)
        if gradients and "positions" in block.gradients_list():
            g = block.gradient("positions")
            new.add_gradient(
                "positions", TensorBlock(g.values, g.samples, g.components, g.properties)
            )
        copied.append(new)
    return TensorMap(Labels(KEY_NAMES, np.array(keys, dtype=np.int32).reshape(-1, 3)), copied)


class EquivariantFeatures:
    """The fixed maps from frames to the equivariant potential's features:
    the density compression and the projection of its products.

    :param species: the center and neighbor types
    :param hypers: featomic spherical-expansion hypers
    :param lambda_max: the largest ``lambda`` of the features
    :param density_components: channels per ``(l, center type)`` of the density
    :param n_components: features per ``(lambda, center type)`` block: one
        number, or one per ``lambda = 0 .. lambda_max``
    """

    def __init__(
        self,
        species: Sequence[int],
        hypers: dict,
        lambda_max: int = 2,
        density_components: int = 8,
        n_components: Union[int, Sequence[int]] = 32,
    ):
        self.species = [int(z) for z in species]
        self.hypers = hypers
        self.lambda_max = lambda_max
        self.density_components = density_components
        if not isinstance(n_components, (int, np.integer)):
            n_components = [int(n) for n in n_components]
        self.n_components = n_components
        #: features per block of each ``lambda``
        self.components = list(components_per_lambda(n_components, lambda_max))
        self.max_angular = int(hypers["basis"]["max_angular"])
        self.density_pca = EquivariantPCA(density_components)
        self.product_pca = EquivariantPCA(self.components)
        self._product: Optional[DensityProduct] = None
        self._jacobians: Dict[int, DensityJacobian] = {}
        self._coefficients: Optional[dict] = None

    def product(self) -> DensityProduct:
        """The Clebsch-Gordan product (its coefficients computed once, not
        for every batch)."""
        if self._product is None:
            self._product = DensityProduct(self.max_angular, self.lambda_max)
        return self._product

    def jacobian(self, center_type: int) -> DensityJacobian:
        """The features' Jacobians by the density for atoms of
        ``center_type`` (built once per object)."""
        if center_type not in self._jacobians:
            if self._coefficients is None:
                self._coefficients = coupling_coefficients(self.max_angular, self.lambda_max)
            pairs = {pair: i for i, pair in enumerate(angular_pairs(self.max_angular))}
            self._jacobians[center_type] = DensityJacobian(
                self._coefficients,
                lambda lam: self.product_projection((lam, 1, center_type)),
                pairs,
                self.density_components,
                self.max_angular,
                self.lambda_max,
                self.components,
            )
        return self._jacobians[center_type]

    def __getstate__(self) -> dict:
        # sent to featurizing child processes: they rebuild the product
        return {**self.__dict__, "_product": None, "_jacobians": {}}

    @property
    def width(self) -> int:
        """Features per atom: ``sum_lambda (2 lambda + 1) n_lambda``."""
        return sum((2 * lam + 1) * n for lam, n in enumerate(self.components))

    def product_bytes_per_atom(self) -> int:
        """Bytes of one atom's product before its projection (a bound: every
        ``(l_1, l_2)`` pair for every ``lambda``)."""
        pairs = len(angular_pairs(self.max_angular))
        return BYTES * pairs * self.density_components**2 * (self.lambda_max + 1) ** 2

    def offsets(self) -> List[int]:
        """Where each ``lambda``'s features start in an atom's row."""
        starts, position = [], 0
        for lam, n in enumerate(self.components):
            starts.append(position)
            position += (2 * lam + 1) * n
        return starts

    def fit(self, frames: Sequence[ase.Atoms], max_atoms: int = 4000, seed: int = 0):
        """Fit both projections on (a seeded subset of) ``frames``."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(frames))
        chosen, atoms = [], 0
        for index in order:
            chosen.append(frames[index])
            atoms += len(frames[index])
            if atoms >= max_atoms:
                break
        density = spherical_density(chosen, self.species, self.hypers, gradients=False)
        self.density_pca.fit(density)
        compressed = _tensor(_compress(density, self.density_pca, self.density_components))
        product = self.product()(compressed, compressed)
        self.product_pca.fit(product)
        return self

    def state(self) -> dict:
        """Plain data and arrays, for saving."""
        return {
            "species": list(self.species),
            "lambda_max": self.lambda_max,
            "density_components": self.density_components,
            "n_components": self.n_components,
            "density": self.density_pca.state(),
            "product": self.product_pca.state(),
        }

    @classmethod
    def from_state(cls, state: dict, hypers: dict) -> EquivariantFeatures:
        features = cls(
            state["species"],
            hypers,
            int(state["lambda_max"]),
            int(state["density_components"]),
            state["n_components"],
        )
        features.density_pca = EquivariantPCA.from_state(state["density"])
        features.product_pca = EquivariantPCA.from_state(state["product"])
        return features

    def fingerprint(self) -> str:
        """A SHA-256 of the settings, hypers and fitted projections: equal
        fingerprints, equal features."""
        from ..storage import hash_arrays, hash_json

        state = self.state()
        settings = {k: v for k, v in state.items() if k not in ("density", "product")}
        projections = hash_arrays([m for _, m in state["density"] + state["product"]])
        return hash_json({"settings": settings, "hypers": self.hypers, "projections": projections})

    def density_projection(self, key: Key) -> np.ndarray:
        """The density compression of block ``(l, 1, z)``, padded to its width."""
        return _padded(self.density_pca.projections[key], self.density_components)

    def product_projection(self, key: Key) -> np.ndarray:
        """The projection of the product block ``(lambda, 1, z)``, padded."""
        return _padded(self.product_pca.projections[key], self.components[key[0]])


def featurize_equivariant(
    frames: Sequence[ase.Atoms],
    features: EquivariantFeatures,
    gradients: bool = True,
    energies: Optional[np.ndarray] = None,
    forces: Optional[Sequence[np.ndarray]] = None,
    batch_size: Optional[int] = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    gradient_dtype: Optional[torch.dtype] = None,
) -> FeatureSet:
    """The features of ``frames`` (and their exact position gradients).

    :param batch_size: frames per featomic call and product (default:
        :func:`~equilens.descriptors.budget.density_gradient_frames` with
        gradients, else :func:`~equilens.descriptors.budget.frames_per_call`
        with :meth:`EquivariantFeatures.product_bytes_per_atom`)
    :param gradient_dtype: storage type of the projected gradients (default
        ``dtype``)
    """
    if batch_size is None and gradients:
        batch_size = density_gradient_frames(frames, len(features.species), features.hypers)
    elif batch_size is None:
        batch_size = frames_per_call(frames, features.product_bytes_per_atom())
    parts = feature_batches(
        frames,
        batch_size,
        lambda batch: _batch(batch, features, gradients, dtype, gradient_dtype or dtype),
        progress,
    )
    return with_targets(FeatureSet.concatenate(list(parts)), energies, forces, dtype)


def _batch(frames, features: EquivariantFeatures, gradients: bool, dtype, gradient_dtype):
    density = spherical_density(frames, features.species, features.hypers, gradients)
    compressed = _compress(density, features.density_pca, features.density_components)
    values = _tensor(compressed, gradients=False)
    product = features.product()
    counts = np.array([len(a) for a in frames])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    numbers = np.concatenate([a.numbers for a in frames])
    starts = features.offsets()
    x = np.zeros((len(numbers), features.width))
    for key, samples, projected in product.projected(values, values, features.product_projection):
        rows = offsets[samples[:, 0]] + samples[:, 1]  # distinct within a block
        x[rows, starts[key[0]] : starts[key[0]] + projected[0].size] += projected.reshape(
            len(rows), -1
        )
    result = FeatureSet(
        x=torch.as_tensor(x, dtype=dtype),
        species=torch.as_tensor(np.searchsorted(features.species, numbers), dtype=torch.long),
        atom_offsets=torch.as_tensor(offsets, dtype=torch.long),
    )
    if gradients:
        _gradients(result, compressed, features, offsets, gradient_dtype)
    return result


def _gradients(result, compressed, features: EquivariantFeatures, offsets, gradient_dtype) -> None:
    """The projected position gradients, one row per (atom, moving atom)
    pair: each center type's density gradients times its atoms' Jacobians
    (:mod:`equilens.descriptors.equivariant_jacobian`)."""
    centers, moving, parts = [], [], []
    for z in sorted({key[2] for key in compressed}):
        blocks = [compressed[(ell, 1, z)] for ell in range(features.max_angular + 1)]
        check_density_samples(blocks)
        samples = np.asarray(blocks[0].samples.values)
        rows = offsets[samples[:, 0]] + samples[:, 1]
        density = [np.asarray(block.values) for block in blocks]
        center, neighbor, values = pair_rows(blocks, offsets)
        for pairs, gradient in projected_gradients(features.jacobian(z), density, center, values):
            centers.append(rows[center[pairs]])
            moving.append(neighbor[pairs])
            parts.append(gradient)
    center = np.concatenate(centers)
    neighbor = np.concatenate(moving)
    # frame by frame, then (atom, moving atom)
    order = np.argsort(center * offsets[-1] + neighbor, kind="stable")
    frame = np.searchsorted(offsets, center[order], side="right") - 1
    result.grad_center = torch.as_tensor(center[order], dtype=torch.long)
    result.grad_neighbor = torch.as_tensor(neighbor[order], dtype=torch.long)
    result.grad_values = torch.as_tensor(np.concatenate(parts)[order], dtype=gradient_dtype)
    result.pair_offsets = torch.as_tensor(
        np.concatenate([[0], np.cumsum(np.bincount(frame, minlength=len(offsets) - 1))]),
        dtype=torch.long,
    )


def check_features(features: EquivariantFeatures, species: Sequence[int]) -> None:
    """The fitted maps cover ``species`` (one line naming a missing block)."""
    for z in species:
        for lam in range(features.lambda_max + 1):
            if (lam, 1, z) not in features.product_pca.projections:
                raise EquilensError(
                    f"no feature block (o3_lambda={lam}, center_type={z}): the training "
                    "frames have no such atom"
                )
