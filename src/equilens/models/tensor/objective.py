"""The loss of the ``tensor`` task and the metrics of its predictions.

Per-structure targets and per-atom targets without an overlap use the mean
squared error of each block divided by the block's training variance,
averaged over blocks. Per-atom density coefficients with an overlap metric
use ``sum_s d_s^T S_s d_s / sum_s v_s^T S_s v_s`` (``d`` the error, ``v`` the
deviation of the reference from the species-average spherical density), the
square of SALTED's %RMSE / 100.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from ...tensormaps import Key
from ...training.metrics import tensor_metrics
from .data import TensorData, network_input
from .model import assemble
from .module import TensorModule


class TensorObjective:
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

    def predict(self, module: TensorModule, systems: np.ndarray):
        tensor, rows = network_input(self.data.soap, systems)
        values = assemble(module.layers(tensor)["output"], self.data.layout, systems)
        return values, rows

    def _flat(self, blocks: Dict[Key, torch.Tensor]) -> torch.Tensor:
        return torch.cat([blocks[k].reshape(-1) for k in self.data.layout.keys])

    def loss(self, module: TensorModule, systems: np.ndarray) -> torch.Tensor:
        systems = np.sort(np.asarray(systems))
        values, rows = self.predict(module, systems)
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


def evaluate(
    data: TensorData, objective: TensorObjective, values, rows, systems
) -> Dict[str, float]:
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
