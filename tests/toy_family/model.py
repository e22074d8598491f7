"""The toy model on the equilens protocol: an invariant layer per atom
(its neighbour count and pair energy), energies and analytic forces."""

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from ase.neighborlist import neighbor_list

from equilens.models.base import (
    Model,
    energy_map,
    forces_map,
    read_model_file,
    write_model_file,
)
from equilens.tensormaps import atom_tensormap, frame_atoms

SPECIES = tuple(range(1, 30))


class ToyModel(Model):
    kind = "toy"

    def __init__(self, stiffness: float, length: float, cutoff: float):
        self.stiffness, self.length, self.cutoff = stiffness, length, cutoff

    @property
    def species(self) -> Tuple[int, ...]:
        return SPECIES

    @property
    def layer_names(self) -> List[str]:
        return ["input", "output"]

    @property
    def outputs(self) -> Tuple[str, ...]:
        return ("energy", "forces")

    def _atomic(self, atoms):
        i, j, d, vectors = neighbor_list("ijdD", atoms, self.cutoff)
        pair = self.stiffness * (d - self.length) ** 2
        energy = np.zeros(len(atoms))
        np.add.at(energy, i, 0.5 * pair)
        count = np.bincount(i, minlength=len(atoms)).astype(float)
        gradient = (2 * self.stiffness * (d - self.length) / d)[:, None] * vectors
        forces = np.zeros((len(atoms), 3))
        np.add.at(forces, i, gradient)  # dE/dr_i = -sum_j dpair/dd * D_ij / d
        return energy, count, forces

    def layers(self, frames, batch_size: int = 50) -> Dict:
        self.check_species(frames)
        rows = [self._atomic(a) for a in frames]
        system, atom, numbers = frame_atoms(frames)
        inputs = np.concatenate([np.stack([c, e], axis=1) for e, c, _ in rows])
        output = np.concatenate([e for e, _, _ in rows])[:, None]
        return {
            "input": atom_tensormap(inputs, system, atom, numbers),
            "output": atom_tensormap(output, system, atom, numbers),
        }

    def predict(self, frames, outputs=None, batch_size: int = 8) -> Dict:
        wanted = self.wanted_outputs(outputs)
        self.check_species(frames)
        rows = [self._atomic(a) for a in frames]
        result = {"energy": energy_map([e.sum() for e, _, _ in rows])}
        if "forces" in wanted:
            result["forces"] = forces_map([f for _, _, f in rows])
        return result

    def save(self, path) -> Path:
        payload = {"stiffness": self.stiffness, "length": self.length, "cutoff": self.cutoff}
        return write_model_file(path, self.kind, payload)

    @classmethod
    def from_file(cls, payload, path):
        return cls(payload["stiffness"], payload["length"], payload["cutoff"])


def read(path):
    return ToyModel.from_file(read_model_file(path)[1], path)
