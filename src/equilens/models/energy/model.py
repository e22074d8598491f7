"""What the equilens potential families share as models: energies and
exact forces from projected features (``featurize`` then the family's
module), predictions as TensorMaps, and the ASE calculator."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import ase
import numpy as np
import torch
from metatensor import TensorMap

from ...descriptors.projected import FeatureSet
from ...storage import hash_frames
from ..base import prediction_maps
from .forces import energy_and_forces


class FeatureMemo:
    """Features computed once for the models that featurize alike: the seeds
    of a study share their lambda-SOAP maps, the BPNNs of a seed their
    compression, and the layers and predictions of each are computed on the
    same frames. ``{(featurizer fingerprint, frames, gradients): FeatureSet}``,
    the least recently used dropped beyond ``max_bytes``; owned by whoever
    shares it (:func:`equilens.study.run.run_study`), never global.

    :param max_bytes: the most bytes of features kept
    """

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[Tuple[str, str, bool], FeatureSet] = OrderedDict()
        self.hits = 0

    @property
    def nbytes(self) -> int:
        """Bytes of the features kept."""
        return sum(features.nbytes for features in self.entries.values())

    def get(self, key: Tuple[str, str, bool], compute: Callable[[], FeatureSet]) -> FeatureSet:
        """The features of ``key``, computed by ``compute()`` the first time."""
        if key in self.entries:
            self.entries.move_to_end(key)
            self.hits += 1
            return self.entries[key]
        features = compute()
        self.entries[key] = features
        while len(self.entries) > 1 and self.nbytes > self.max_bytes:
            self.entries.popitem(last=False)
        return features


class ProjectedPotential:
    """Mixed into a :class:`~equilens.models.base.Model` whose ``featurize(frames,
    gradients)`` gives a :class:`~equilens.descriptors.projected.FeatureSet`,
    whose ``feature_fingerprint()`` names what decides those features, whose
    ``module`` has ``atomic_energies(x, species)`` and whose
    ``torch_module(dtype)`` is the scripted copy the calculator runs."""

    @property
    def layer_names(self) -> List[str]:
        return list(self.module.layer_names)  # type: ignore[attr-defined]

    @property
    def outputs(self) -> Tuple[str, ...]:
        return ("energy", "forces")

    @property
    def dtype(self) -> torch.dtype:
        return self.module.baseline.dtype  # type: ignore[attr-defined]

    @property
    def device(self) -> torch.device:
        """Where the network runs; features are computed on the CPU (featomic)
        and moved there batch by batch."""
        return self.module.baseline.device  # type: ignore[attr-defined]

    def to(self, device):
        """Run the network on ``device`` (``cpu``, ``cuda``, ``cuda:N``)."""
        self.module.to(torch.device(device))  # type: ignore[attr-defined]
        return self

    #: features shared with other models (:class:`FeatureMemo`), or none
    feature_memo: Optional[FeatureMemo] = None

    def device_features(self, frames: Sequence[ase.Atoms], gradients: bool):
        """``featurize(frames, gradients)`` on the network's device (from the
        :attr:`feature_memo` when the model has one)."""

        def compute() -> FeatureSet:
            return self.featurize(frames, gradients=gradients)  # type: ignore[attr-defined]

        if self.feature_memo is None:
            features = compute()
        else:
            featurizer = self.feature_fingerprint()  # type: ignore[attr-defined]
            key = (featurizer, hash_frames(frames), gradients)
            features = self.feature_memo.get(key, compute)
        return features if self.device.type == "cpu" else features.to(device=self.device)

    def energies_and_forces(
        self, frames: Sequence[ase.Atoms], forces: bool = True, batch_size: int = 8
    ) -> Tuple[np.ndarray, Optional[List[np.ndarray]]]:
        """Energies (eV) and forces (eV/Å, one array per frame) as numpy arrays."""
        self.check_species(frames)  # type: ignore[attr-defined]
        energies: List[np.ndarray] = []
        all_forces: List[np.ndarray] = []
        self.module.eval()  # type: ignore[attr-defined]
        for start in range(0, len(frames), batch_size):
            batch = list(frames[start : start + batch_size])
            features = self.device_features(batch, gradients=forces)
            energy, force = energy_and_forces(self.module, features, forces=forces)  # type: ignore[attr-defined]
            energies.append(energy.detach().cpu().numpy().astype(np.float64))
            if force is not None:
                array = force.detach().cpu().numpy().astype(np.float64)
                offsets = features.atom_offsets.cpu().numpy()
                all_forces.extend(array[a:b] for a, b in zip(offsets[:-1], offsets[1:]))
        return np.concatenate(energies), (all_forces if forces else None)

    def predict(
        self,
        frames: Sequence[ase.Atoms],
        outputs: Optional[Sequence[str]] = None,
        batch_size: int = 8,
    ) -> Dict[str, TensorMap]:
        """``energy`` (eV) and ``forces`` (eV/Å) as TensorMaps (forces only
        when asked: they need the descriptor gradients)."""
        wanted = self.wanted_outputs(outputs)  # type: ignore[attr-defined]
        energies, forces = self.energies_and_forces(frames, "forces" in wanted, batch_size)
        return prediction_maps(energies, forces, wanted)

    def calculator(self, dtype: torch.dtype = torch.float64):
        """An ASE calculator: energy, forces, stress (periodic cells) and atomic
        energies, evaluated in ``dtype`` on the model's device."""
        from ..calculator import EquilensCalculator

        module = self.torch_module(dtype).to(self.device)  # type: ignore[attr-defined]
        return EquilensCalculator(self, module, dtype)
