"""The ``tensor`` task: an equivariant model of a tensorial property, with a ridge baseline.

``train_tensor_model(config)`` reads the structures and the target
(:mod:`equilens.models.tensor.data`), splits the structures (stratified by
size), fits the equivariant PCA on the training atoms, trains the
:class:`~equilens.models.tensor.module.TensorModule` with
:func:`equilens.training.loop.fit` (the trainer of the energy models:
schedule, early stopping, atomic checkpoints, resume), fits the per-block
ridge baseline on the same data and writes the files every task writes
(:mod:`equilens.training.run`). The loss is in
:mod:`equilens.models.tensor.objective`.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from ...config import to_mapping
from ...data.splits import split_indices
from ...descriptors.compression import EquivariantPCA
from ...errors import ConfigError
from ...storage import hash_arrays, hash_frames, save_json
from ...training.config import claim_output, run_fingerprint
from ...training.loop import fit
from ...training.plots import plot_learning_curve, plot_tensor_parity
from ...training.run import run_summary
from .baseline import BlockRidge
from .config import TensorConfig
from .data import TensorData, read_tensor_data, subset
from .layout import network_keys
from .model import TensorModel, build_module
from .objective import TensorObjective, evaluate


def build_model(config: TensorConfig, data: TensorData, train: np.ndarray) -> TensorModel:
    """An untrained :class:`TensorModel` for ``data``: the equivariant PCA fitted
    on the ``train`` structures, weights seeded by ``config.training.seed``."""
    in_keys, out_keys = network_keys(data.layout, data.species)
    in_features = [len(data.soap.block(key).properties) for key in in_keys]
    projection = None
    if config.model.n_components:
        projection = EquivariantPCA(config.model.n_components).fit(subset(data.soap, train)[0])
    hypers = config.descriptor.descriptor_hypers(len(data.species))
    with torch.random.fork_rng():
        torch.manual_seed(config.training.seed)
        module = build_module(
            config.model,
            hypers,
            data.species,
            data.layout,
            in_keys,
            out_keys,
            in_features,
            projection,
        )
    return TensorModel(
        module,
        config.model,
        hypers,
        data.species,
        data.layout,
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
    if config.training.device not in ("auto", "cpu"):
        raise ConfigError(
            f"task tensor trains on the CPU (training.device: {config.training.device}); "
            "use auto or cpu"
        )
    timings: Dict[str, float] = {}
    start = time.perf_counter()
    data = read_tensor_data(config, progress)
    output = config.output
    fingerprint = run_fingerprint(config, _data_hashes(data))
    claim_output(output, fingerprint, overwrite)
    splits = split_indices(config.data, data.frames)
    train, validation = splits["train"], splits["validation"]
    model = build_model(config, data, train)
    network = model.module
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
