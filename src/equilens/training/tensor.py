"""The ``tensor`` task: an equivariant model of a tensorial property, with a ridge baseline.

``train_tensor_model(config)`` reads the structures and the target
(:mod:`equilens.training.tensor_data`), splits the structures (stratified by
size), fits the equivariant PCA on the training atoms, trains the
:class:`~equilens.models.equivariant.EquivariantNetwork` with
:func:`equilens.training.loop.fit` (the trainer of the energy models:
schedule, early stopping, atomic checkpoints, resume), fits the per-block
ridge baseline on the same data and writes the files every task writes
(:mod:`equilens.training.run`). The loss is in
:mod:`equilens.training.tensor_objective`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Literal, Optional, Tuple

import numpy as np
import torch

from ..config import to_mapping
from ..data.io import ReadOptions
from ..data.splits import SplitConfig, split_indices
from ..descriptors import DescriptorConfig
from ..descriptors.compression import EquivariantPCA
from ..errors import ConfigError
from ..models.equivariant import EquivariantConfig, EquivariantNetwork
from ..models.tensor_model import TensorModel, network_keys, output_properties
from ..storage import hash_arrays, hash_frames, save_json
from .config import claim_output, output_folder, run_fingerprint
from .loop import TrainConfig, fit
from .plots import plot_learning_curve, plot_tensor_parity
from .run import run_summary
from .tensor_data import TensorData, read_tensor_data, subset
from .tensor_objective import TensorObjective, evaluate

EMBEDDED_STRUCTURES = "embedded:water_tensors/structures.extxyz"


@dataclass(frozen=True)
class TargetConfig:
    """The tensorial target of the structures in ``data.train``.

    :param file: metatensor ``.mts`` file (``embedded:``, ``reference:`` or a
        path): samples ``system`` (one row per structure, in file order) or
        ``(system, atom)``, keys starting with ``(o3_lambda, o3_sigma)``
    :param name: the target's name in predictions (default: the file name
        without extension, e.g. ``dipole``)
    :param overlap: auxiliary basis name (PySCF) of per-atom density
        coefficients: train and score in its overlap metric (needs pyscf)
    """

    file: str = "embedded:water_tensors/dipole.mts"
    name: Optional[str] = None
    overlap: Optional[str] = None


@dataclass(frozen=True)
class TensorConfig:
    """The ``tensor`` task: everything ``equilens train`` reads for a tensorial target.

    The model always reads lambda-SOAP (the proper, ``o3_sigma = 1`` blocks up
    to the target's largest lambda); ``descriptor`` gives its preset, hyper-
    parameter overrides and species list (its ``kind`` is not used). The
    validation and test structures are held out of ``data.train`` by
    fractions.
    """

    task: Literal["tensor"] = "tensor"
    name: str = "tensor"
    data: SplitConfig = field(
        default_factory=lambda: SplitConfig(
            train=EMBEDDED_STRUCTURES, validation_fraction=0.1, test_fraction=0.2, stratify=True
        )
    )
    read: ReadOptions = field(default_factory=lambda: ReadOptions(require_energy=False))
    target: TargetConfig = field(default_factory=TargetConfig)
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
    output_dir: Optional[str] = None
    cache_dir: Optional[str] = ".equilens_cache"

    def __post_init__(self):
        if self.training.dtype != "float64":
            raise ConfigError("tensor models train in float64 (training.dtype: float64)")
        if self.data.validation is not None or self.data.test is not None:
            raise ConfigError(
                "the tensor task holds its validation and test structures out of data.train "
                "(data.validation_fraction, data.test_fraction); separate files are not read"
            )
        if self.data.validation_fraction <= 0 or self.data.test_fraction <= 0:
            raise ConfigError("data.validation_fraction and data.test_fraction must be > 0")
        if self.read.index != ":" or self.read.on_error != "raise":
            raise ConfigError(
                "the tensor task reads every structure of its file (read.index ':' and "
                "read.on_error 'raise'), since the target has one row per structure"
            )

    @property
    def output(self) -> Path:
        return output_folder(self)


def build_model(config: TensorConfig, data: TensorData, train: np.ndarray) -> TensorModel:
    """An untrained :class:`TensorModel` for ``data``: the equivariant PCA fitted
    on the ``train`` structures, weights seeded by ``config.training.seed``."""
    in_keys, out_keys = network_keys(data.layout, data.species)
    in_features = [len(b.properties) for b in data.soap.blocks()]
    projection = None
    if config.model.n_components:
        projection = EquivariantPCA(config.model.n_components).fit(subset(data.soap, train)[0])
    with torch.random.fork_rng():
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
        config.descriptor.descriptor_hypers(len(data.species)),
        data.species,
        data.layout,
        in_features,
        projection,
        {"config": to_mapping(config)},
    )


def _data_hashes(data: TensorData) -> Dict[str, Any]:
    return {
        "structures": hash_frames(data.frames),
        "target": hash_arrays(
            [v for key in sorted(data.targets) for v in (np.array(key), data.targets[key])]
        ),
    }


def train_tensor_model(
    config: TensorConfig,
    progress: bool = True,
    stop_after: Optional[int] = None,
    overwrite: bool = False,
) -> Tuple[TensorModel, Dict[str, Any]]:
    """Train the network (and the ridge baseline) and write the outputs.

    :param stop_after: stop (as if interrupted) after this epoch
    :param overwrite: replace the outputs of another run in the output folder
    """
    timings: Dict[str, float] = {}
    start = time.perf_counter()
    data = read_tensor_data(config, progress)
    output = config.output
    fingerprint = run_fingerprint(config, _data_hashes(data))
    claim_output(output, fingerprint, overwrite)
    splits = split_indices(config.data, data.frames)
    train, validation = splits["train"], splits["validation"]
    model = build_model(config, data, train)
    network = model.network
    objective = TensorObjective(data, train)
    timings["read_s"] = time.perf_counter() - start

    def loss_fn(model, batch):
        return objective.loss(model, train[np.asarray(batch)])

    def validate_fn(model):
        with torch.no_grad():
            value = float(objective.loss(model, validation))
        return value, {"validation_loss": value}

    result = fit(
        network,
        loss_fn,
        validate_fn,
        len(train),
        config.training,
        output,
        progress=progress,
        stop_after=stop_after,
        fingerprint=fingerprint,
    )
    timings["training_s"] = result.seconds
    start = time.perf_counter()
    metrics: Dict[str, Dict[str, float]] = {}
    predictions = {}
    with torch.no_grad():
        for name, systems in splits.items():
            values, rows = objective.predict(network, systems)
            metrics[name] = evaluate(data, objective, values, rows, systems)
            predictions[name] = (values, objective.references(rows, systems))
    baselines: Dict[str, Any] = {}
    extra: Dict[str, Any] = {"split_indices": {k: v.tolist() for k, v in splits.items()}}
    if config.baseline:
        from ..models.baselines import BlockRidge

        ridge = BlockRidge().fit(data, train, validation)
        baselines["ridge"] = {}
        for name, systems in splits.items():
            values, rows = ridge.predict(data, systems)
            baselines["ridge"][name] = evaluate(data, objective, values, rows, systems)
        extra["ridge_alphas"] = {str(k): v for k, v in ridge.alphas_.items()}
    timings["evaluation_s"] = time.perf_counter() - start
    summary = run_summary(config, result, timings, splits, metrics, baselines, **extra)
    model.metadata["metrics"] = metrics
    model.save(output / "model.pt")
    save_json(output / "metrics.json", summary)
    plot_learning_curve(result.history, output / "learning_curve.png")
    for name, (values, references) in predictions.items():
        plot_tensor_parity(
            {k: np.asarray(v) for k, v in values.items()},
            {k: v.numpy() for k, v in references.items()},
            output / f"parity_{name}.png",
            title=f"{config.name}: {name}",
        )
    return model, summary
