"""The linear baseline of tensor models: one ridge regression per block.

The rho_learn / SA-GPR-style linear model in feature space: for each target
block, a linear map of the lambda-SOAP features of the same symmetry, shared
by the ``2 lambda + 1`` components (rows ``(sample, m)``), so it is
equivariant by construction.

- Per-structure targets: the features of a structure are the sums over its
  atoms of each center type's block, concatenated over center types (a sum of
  linear atomic contributions); ``lambda = 0`` blocks also get the count of
  each species (per-species offsets).
- Per-atom targets: the atom's own block, plus a constant for ``lambda = 0``.

The regularisation ``alpha * s_max^2`` (``s_max`` the largest singular value
of the training rows) is chosen on the validation structures from a grid;
the fit uses the training structures only, as the network does.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from ...tensormaps import key_tuple

Key = Tuple[int, ...]
ALPHAS = np.geomspace(1e-10, 1.0, 21)


class BlockRidge:
    """Per-block ridge regression on lambda-SOAP (see the module docstring)."""

    def _features(self, data, key: Key):
        """``(rows, values)``: the rows of each sample (per-atom: indices into
        the soap block) and the features ``(n, 2l+1, p)``."""
        layout = data.layout
        if layout.per_atom:
            block = data.soap.block(dict(zip(layout.key_names, key)))
            values = np.asarray(block.values)
            if key[0] == 0:
                values = np.concatenate([values, np.ones(values.shape[:2] + (1,))], axis=2)
            return np.asarray(block.samples.column("system")), values
        n_frames = len(data.frames)
        parts = []
        for soap_key, block in data.soap.items():
            soap_key = key_tuple(soap_key)
            if soap_key[:2] != key:
                continue
            values = np.asarray(block.values)
            summed = np.zeros((n_frames,) + values.shape[1:])
            np.add.at(summed, np.asarray(block.samples.column("system")), values)
            parts.append(summed)
            if key[0] == 0:
                counts = np.bincount(block.samples.column("system"), minlength=n_frames)
                parts.append(counts[:, None, None].astype(np.float64))
        return np.arange(n_frames), np.concatenate(parts, axis=2)

    def fit(self, data, train: np.ndarray, validation: np.ndarray) -> BlockRidge:
        self.weights_: Dict[Key, np.ndarray] = {}
        self.alphas_: Dict[Key, float] = {}
        for key, target in data.targets.items():
            systems, x = self._features(data, key)
            fit_rows = np.isin(systems, train)
            val_rows = np.isin(systems, validation)
            a = x[fit_rows].reshape(-1, x.shape[2])
            b = target[fit_rows].reshape(-1, target.shape[2])
            scale = np.sqrt(np.mean(a**2)) or 1.0
            u, s, vt = np.linalg.svd(a / scale, full_matrices=False)
            utb = u.T @ b
            best = None
            for alpha in ALPHAS * s.max() ** 2:
                w = vt.T @ ((s / (s**2 + alpha))[:, None] * utb) / scale
                predicted = x[val_rows].reshape(-1, x.shape[2]) @ w
                error = float(np.mean((predicted - target[val_rows].reshape(-1, b.shape[1])) ** 2))
                if best is None or error < best[0]:
                    best = (error, alpha / s.max() ** 2, w)
            _, self.alphas_[key], self.weights_[key] = best
        return self

    def predict(self, data, systems: np.ndarray):
        """``(values, rows)`` like the network's: values per target key for the
        structures ``systems`` (per-atom: the rows of those structures)."""
        values, rows = {}, {}
        for key, w in self.weights_.items():
            owner, x = self._features(data, key)
            index = np.flatnonzero(np.isin(owner, systems))
            if not data.layout.per_atom:
                index = np.sort(np.asarray(systems))
            rows[key] = index
            values[key] = np.einsum("smp,pq->smq", x[index], w)
        return values, rows
