"""Train an equivariant model of a tensorial property, with a linear baseline.

``train_tensor_model(config)`` reads the structures and the target TensorMap,
computes lambda-SOAP, splits the structures (stratified by size), fits the
equivariant PCA on the training atoms, trains the
:class:`~equilens.models.equivariant.EquivariantNetwork` with
:func:`equilens.training.fit` (the trainer of the energy models: schedule,
early stopping, atomic checkpoints, resume), fits the per-block ridge
baseline on the same data and writes into ``config.output_dir``:

``model.pt``      the :class:`~equilens.tensor_model.TensorModel`
``metrics.json``  errors of the network and of the ridge on every split
``log.csv``, ``checkpoint.pt``, ``learning_curve.png``, ``parity.png``

Losses: per-structure targets and per-atom targets without an overlap use
the mean squared error of each block divided by the block's training
variance, averaged over blocks. Per-atom density coefficients with
``data.overlap`` set use the error in the overlap metric of the auxiliary
basis, ``sum_s d_s^T S_s d_s / sum_s v_s^T S_s v_s`` (``d`` the error,
``v`` the deviation of the reference from the species-average spherical
density), i.e. the square of SALTED's %RMSE / 100.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import ase
import ase.io
import metatensor
import numpy as np
import torch
from metatensor import Labels, TensorBlock, TensorMap

from .config import from_yaml, to_mapping
from .data.splits import resolve_path
from .descriptors import DescriptorConfig
from .descriptors._batches import check_species
from .descriptors.lambda_soap import compute_lambda_soap
from .errors import ConfigError, DataError, EquilensError
from .models.equivariant import EquivariantConfig, EquivariantNetwork, EquivariantPCA, key_tuple
from .plots import plot_learning_curve
from .storage import hash_json, save_json
from .tensor_model import (
    TargetLayout,
    TensorModel,
    assemble,
    network_keys,
    output_properties,
    select_blocks,
    to_torch,
)
from .tensor_metrics import tensor_metrics
from .training import TrainConfig, fit

Key = Tuple[int, ...]


@dataclass(frozen=True)
class TensorDataConfig:
    """Where the structures and the target are, and how to split them.

    :param structures: extended XYZ file of the structures (``reference:`` or
        a path)
    :param target: metatensor ``.mts`` file, samples ``system`` (one row per
        structure, in file order) or ``(system, atom)``
    :param test_fraction: structures held out for the test
    :param validation_fraction: structures for early stopping and the ridge's
        regularisation
    :param split_seed: seeds the split (stratified by number of atoms)
    :param overlap: auxiliary basis name (PySCF) of per-atom density
        coefficients: train and score in its overlap metric (needs pyscf)
    """

    structures: str = "data/water_tensors/structures.extxyz"
    target: str = "data/water_tensors/dipole.mts"
    test_fraction: float = 0.2
    validation_fraction: float = 0.1
    split_seed: int = 0
    overlap: Optional[str] = None

    def __post_init__(self):
        if not 0 < self.test_fraction < 1 or not 0 < self.validation_fraction < 1:
            raise ConfigError("test_fraction and validation_fraction must be in (0, 1)")
        if self.test_fraction + self.validation_fraction >= 1:
            raise ConfigError("test_fraction + validation_fraction must be < 1")


@dataclass(frozen=True)
class TensorModelConfig:
    """Everything ``equilens train`` reads for a tensorial target.

    The model always reads lambda-SOAP (the proper, ``o3_sigma = 1`` blocks up
    to the target's largest lambda); ``descriptor`` gives its preset, hyper-
    parameter overrides and species list (its ``kind`` is not used).
    """

    target: TensorDataConfig = field(default_factory=TensorDataConfig)
    name: str = "tensor"
    descriptor: DescriptorConfig = field(
        default_factory=lambda: DescriptorConfig(kind="lambda_soap", preset="small")
    )
    model: EquivariantConfig = field(default_factory=EquivariantConfig)
    training: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=400,
            batch_size=8,
            learning_rate=3e-3,
            scheduler="plateau",
            early_stopping_patience=60,
            dtype="float64",
        )
    )
    baseline: bool = True
    output_dir: str = "results/tensor"

    def __post_init__(self):
        if self.training.dtype != "float64":
            raise ConfigError("tensor models train in float64 (training.dtype: float64)")


def load_tensor_config(path) -> TensorModelConfig:
    """Read and validate a tensor-model YAML file."""
    return from_yaml(TensorModelConfig, path)


# ---------------------------------------------------------------------------
# data


@dataclass
class TensorData:
    """Structures, their lambda-SOAP and the target aligned with it."""

    frames: List[ase.Atoms]
    soap: TensorMap  # torch, network input blocks, all structures
    layout: TargetLayout
    targets: Dict[Key, np.ndarray]  # rows: structures, or the atoms of soap's block
    species: Tuple[int, ...]
    overlap: Optional[List["OverlapMetric"]] = None


def read_tensor_data(config: TensorModelConfig, progress: bool = False) -> TensorData:
    """Read, check and align the structures and the target of ``config``."""
    data = config.target
    structures_path = resolve_path(data.structures)
    target_path = resolve_path(data.target)
    try:
        frames = ase.io.read(structures_path, ":")
    except Exception as error:
        raise DataError(f"cannot read structures ({error})", path=structures_path) from error
    try:
        target = metatensor.load(str(target_path))
    except Exception as error:
        raise DataError(f"cannot read the target TensorMap ({error})", path=target_path) from error
    layout = TargetLayout.of(target)
    species = config.descriptor.species or tuple(
        sorted({int(z) for f in frames for z in f.numbers})
    )
    try:
        check_species(frames, species)
    except EquilensError as error:
        raise DataError(str(error), path=structures_path) from error
    for index, frame in enumerate(frames):
        if not np.all(np.isfinite(frame.positions)):
            raise DataError("non-finite positions", path=structures_path, frame=index)
    lambda_max = max(k[0] for k in layout.keys)
    soap = compute_lambda_soap(
        frames,
        species,
        config.descriptor.featomic_dict(),
        lambda_max,
        include_improper=False,
        progress=progress,
    )
    in_keys, _ = network_keys(layout, species)
    soap = to_torch(select_blocks(soap, in_keys))
    targets = _align_targets(target, layout, soap, len(frames), target_path)
    metric = None
    if data.overlap:
        if not layout.per_atom:
            raise ConfigError("target.overlap applies to per-atom (density) targets only")
        metric = [
            OverlapMetric.build(f, s, data.overlap, soap, layout) for s, f in enumerate(frames)
        ]
    return TensorData(frames, soap, layout, targets, tuple(species), metric)


def _align_targets(target, layout, soap, n_frames, path) -> Dict[Key, np.ndarray]:
    result = {}
    for key, block in zip(layout.keys, target.blocks()):
        values = np.asarray(block.values, dtype=np.float64)
        samples = np.asarray(block.samples.values)
        bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
        if bad.any():
            raise DataError(
                f"target block {key} has non-finite values",
                path=path,
                frame=int(samples[bad][0, 0]),
            )
        if not layout.per_atom:
            if len(values) != n_frames or not np.array_equal(samples[:, 0], np.arange(n_frames)):
                raise DataError(
                    f"target block {key} has {len(values)} rows, expected one per structure "
                    f"({n_frames}, systems 0..{n_frames - 1} in order)",
                    path=path,
                )
            result[key] = values
            continue
        rows = soap.block(dict(zip(layout.key_names, key))).samples.values
        index = {tuple(int(v) for v in s): i for i, s in enumerate(samples)}
        order = []
        for row in rows:
            position = index.get((int(row[0]), int(row[1])))
            if position is None:
                raise DataError(
                    f"target block {key} has no value for atom {int(row[1])}",
                    path=path,
                    frame=int(row[0]),
                )
            order.append(position)
        if len(order) != len(samples):
            raise DataError(f"target block {key} has rows for atoms of another species", path=path)
        result[key] = values[order]
    return result


@dataclass
class OverlapMetric:
    """One structure's overlap matrix and where its coefficients live.

    ``gather[k]`` is the position, in the concatenation of all flattened
    per-atom blocks (in ``layout.keys`` order), of the coefficient of
    auxiliary function ``k`` of :func:`~equilens.generate.water_tensors.auxiliary_basis`.
    """

    overlap: torch.Tensor
    gather: torch.Tensor

    @classmethod
    def build(cls, frame, system, auxbasis, soap, layout) -> "OverlapMetric":
        from .generate.water_tensors import auxiliary_basis

        overlap, basis = auxiliary_basis(frame, auxbasis)
        offsets, rows = {}, {}
        offset = 0
        for index, key in enumerate(layout.keys):
            samples = soap.block(dict(zip(layout.key_names, key))).samples.values
            n_props = len(layout.properties[index][1])
            width = (2 * key[0] + 1) * n_props
            offsets[key] = (offset, width, n_props)
            for i, row in enumerate(samples):
                if int(row[0]) == system:
                    rows[(key, int(row[1]))] = i
            offset += len(samples) * width
        gather = []
        for atom, ell, n, m in basis:
            key = (int(ell), 1, int(frame.numbers[atom]))
            if key not in offsets or (key, int(atom)) not in rows:
                raise DataError(f"the target has no block {key} for atom {atom}", frame=system)
            start, width, n_props = offsets[key]
            gather.append(start + rows[(key, int(atom))] * width + int(m) * n_props + int(n))
        return cls(torch.tensor(overlap), torch.tensor(gather))

    def square(self, flat: torch.Tensor) -> torch.Tensor:
        vector = flat[self.gather]
        return vector @ self.overlap @ vector


# ---------------------------------------------------------------------------
# splits and subsets


def stratified_split(frames: Sequence[ase.Atoms], test: float, validation: float, seed: int):
    """Train / validation / test structure indices, each size group split alike."""
    rng = np.random.default_rng(seed)
    sizes = np.array([len(f) for f in frames])
    parts: Dict[str, List[int]] = {"train": [], "validation": [], "test": []}
    for size in np.unique(sizes):
        members = rng.permutation(np.flatnonzero(sizes == size))
        n_test = int(round(test * len(members)))
        n_val = int(round(validation * len(members)))
        parts["test"].extend(members[:n_test])
        parts["validation"].extend(members[n_test : n_test + n_val])
        parts["train"].extend(members[n_test + n_val :])
    result = {name: np.sort(np.array(idx, dtype=np.int64)) for name, idx in parts.items()}
    if min(len(v) for v in result.values()) == 0:
        raise ConfigError(f"the split left an empty set: {[len(v) for v in result.values()]}")
    return result


def subset(tensor: TensorMap, systems: np.ndarray) -> Tuple[TensorMap, Dict[Key, np.ndarray]]:
    """The rows of ``tensor`` for ``systems`` and, per key, their row indices."""
    blocks, rows = [], {}
    for key, block in tensor.items():
        index = np.flatnonzero(np.isin(block.samples.column("system"), systems))
        rows[key_tuple(key)] = index
        samples = Labels(block.samples.names, np.asarray(block.samples.values)[index])
        blocks.append(TensorBlock(block.values[index], samples, block.components, block.properties))
    return TensorMap(tensor.keys, blocks), rows


# ---------------------------------------------------------------------------
# the model and its losses


class _Objective:
    """Loss and predictions of the network on sets of structures."""

    def __init__(self, data: TensorData, train: np.ndarray):
        self.data = data
        self.scale = {}
        for key, values in data.targets.items():
            values = values[_target_rows(data, key, train)]
            centered = values - values.mean(axis=0) if key[0] == 0 else values
            self.scale[key] = float(np.mean(centered**2)) or 1.0
        self.targets = {k: torch.tensor(v) for k, v in data.targets.items()}
        self.reference_squares = None
        if data.overlap:
            mean = _species_mean(data, train)
            flat_ref = self._flat({k: self.targets[k] - mean[k] for k in data.layout.keys})
            self.reference_squares = torch.stack([m.square(flat_ref) for m in data.overlap])

    def references(self, rows, systems) -> Dict[Key, torch.Tensor]:
        """Targets laid out like the predictions of ``predict(model, systems)``."""
        if self.data.layout.per_atom:
            return {k: self.targets[k][rows[k]] for k in self.data.layout.keys}
        return {k: self.targets[k][systems] for k in self.data.layout.keys}

    def overlap_ratio(self, values, rows, systems) -> torch.Tensor:
        """``sum_s d_s^T S_s d_s / sum_s v_s^T S_s v_s`` over ``systems``."""
        full = {}
        for key, reference in self.references(rows, systems).items():
            error = torch.as_tensor(values[key]) - reference
            full[key] = torch.zeros_like(self.targets[key]).index_copy(
                0, torch.as_tensor(rows[key]), error
            )
        flat = self._flat(full)
        numerator = torch.stack([self.data.overlap[s].square(flat) for s in systems]).sum()
        return numerator / self.reference_squares[systems].sum()

    def predict(self, model: EquivariantNetwork, systems: np.ndarray):
        tensor, rows = subset(self.data.soap, systems)
        values = assemble(model(tensor), self.data.layout, systems)
        return values, rows

    def _flat(self, blocks: Dict[Key, torch.Tensor]) -> torch.Tensor:
        return torch.cat([blocks[k].reshape(-1) for k in self.data.layout.keys])

    def loss(self, model: EquivariantNetwork, systems: np.ndarray) -> torch.Tensor:
        systems = np.sort(np.asarray(systems))
        values, rows = self.predict(model, systems)
        if self.data.overlap:
            return self.overlap_ratio(values, rows, systems)
        references = self.references(rows, systems)
        terms = [
            torch.mean((values[key] - reference) ** 2) / self.scale[key]
            for key, reference in references.items()
        ]
        return torch.stack(terms).mean()


def _target_rows(data: TensorData, key: Key, systems: np.ndarray) -> np.ndarray:
    """Rows of ``data.targets[key]`` that belong to ``systems``."""
    if not data.layout.per_atom:
        return np.asarray(systems)
    block = data.soap.block(dict(zip(data.layout.key_names, key)))
    return np.flatnonzero(np.isin(block.samples.column("system"), systems))


def _species_mean(data: TensorData, train: np.ndarray) -> Dict[Key, torch.Tensor]:
    """Per-key mean over training atoms for lambda = 0, zero otherwise (the
    species-average spherical density of SALTED's %RMSE)."""
    result = {}
    for key, values in data.targets.items():
        mean = np.zeros(values.shape[1:])
        if key[0] == 0:
            mean = values[_target_rows(data, key, train)].mean(axis=0)
        result[key] = torch.tensor(mean)
    return result


# ---------------------------------------------------------------------------
# training


def build_model(config: TensorModelConfig, data: TensorData, train: np.ndarray) -> TensorModel:
    """An untrained :class:`TensorModel` for ``data``: the equivariant PCA fitted
    on the ``train`` structures, weights seeded by ``config.training.seed``."""
    in_keys, out_keys = network_keys(data.layout, data.species)
    in_features = [len(b.properties) for b in data.soap.blocks()]
    projection = None
    if config.model.n_components:
        projection = EquivariantPCA(config.model.n_components).fit(subset(data.soap, train)[0])
    torch.manual_seed(config.training.seed)
    network = EquivariantNetwork(
        in_keys,
        in_features,
        out_keys,
        output_properties(data.layout, out_keys),
        config.model,
        projection,
    )
    return TensorModel(
        network,
        config.descriptor.featomic_dict(),
        data.species,
        data.layout,
        in_features,
        projection,
    )


def train_tensor_model(
    config: TensorModelConfig, progress: bool = True, stop_after: Optional[int] = None
) -> Tuple[TensorModel, dict]:
    """Train the network (and the ridge baseline) and write the outputs."""
    start = time.perf_counter()
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    data = read_tensor_data(config, progress)
    splits = stratified_split(
        data.frames,
        config.target.test_fraction,
        config.target.validation_fraction,
        config.target.split_seed,
    )
    train, validation = splits["train"], splits["validation"]
    model = build_model(config, data, train)
    network = model.network
    objective = _Objective(data, train)

    def loss_fn(model, batch):
        return objective.loss(model, train[np.asarray(batch)])

    def validate_fn(model):
        with torch.no_grad():
            value = float(objective.loss(model, validation))
        return value, {"validation_loss": value}

    fingerprint = {"config": to_mapping(config), "n_frames": len(data.frames)}
    result = fit(
        network,
        loss_fn,
        validate_fn,
        len(train),
        config.training,
        output,
        progress=progress,
        stop_after=stop_after,
        fingerprint={"hash": hash_json(fingerprint)},
    )
    model.save(output / "model.pt")
    metrics = {"network": {}, "ridge": {}}
    with torch.no_grad():
        for name, systems in splits.items():
            values, rows = objective.predict(network, systems)
            metrics["network"][name] = evaluate(data, objective, values, rows, systems)
    if config.baseline:
        from .tensor_ridge import BlockRidge

        ridge = BlockRidge().fit(data, train, validation)
        for name, systems in splits.items():
            values, rows = ridge.predict(data, systems)
            metrics["ridge"][name] = evaluate(data, objective, values, rows, systems)
        metrics["ridge_alphas"] = {str(k): v for k, v in ridge.alphas_.items()}
    summary = {
        "name": config.name,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "seconds": time.perf_counter() - start,
        "splits": {k: v.tolist() for k, v in splits.items()},
        "metrics": metrics,
    }
    save_json(output / "metrics.json", summary)
    plot_learning_curve(result.history, output / "learning_curve.png")
    _plot_parity(data, objective, network, splits["test"], config, output / "parity.png")
    return model, summary


def evaluate(data: TensorData, objective: _Objective, values, rows, systems) -> Dict[str, float]:
    """Metrics of predictions ``values`` (assembled) on ``systems``."""
    references = {k: v.numpy() for k, v in objective.references(rows, systems).items()}
    predictions = {
        k: np.asarray(v.detach() if hasattr(v, "detach") else v) for k, v in values.items()
    }
    result = tensor_metrics(predictions, references)
    if data.overlap:
        ratio = float(objective.overlap_ratio(predictions, rows, systems))
        result["overlap_percent_rmse"] = 100.0 * float(np.sqrt(ratio))
    return result


def _plot_parity(data, objective, network, systems, config, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with torch.no_grad():
        values, rows = objective.predict(network, systems)
    keys = data.layout.keys
    references = objective.references(rows, systems)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        reference = references[key].numpy()
        predicted = values[key].numpy()
        ax.scatter(reference.ravel(), predicted.ravel(), s=4, alpha=0.6)
        low, high = (
            float(min(reference.min(), predicted.min())),
            float(max(reference.max(), predicted.max())),
        )
        ax.plot([low, high], [low, high], color="k", lw=0.8)
        ax.set_title(f"block {key}", fontsize=9)
        ax.set_xlabel("reference")
        ax.set_ylabel("predicted")
    fig.suptitle(f"{config.name}: test set")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def with_overrides(config: TensorModelConfig, output: Optional[str], epochs: Optional[int]):
    """``config`` with the CLI's ``--output`` / ``--epochs`` applied."""
    if output:
        config = dataclasses.replace(config, output_dir=output)
    if epochs:
        config = dataclasses.replace(
            config, training=dataclasses.replace(config.training, epochs=epochs)
        )
    return config
