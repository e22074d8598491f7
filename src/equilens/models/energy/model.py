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
from ..base import energies_and_forces as base_energies_and_forces
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
        return predict_together([self], frames, forces, batch_size)[0]

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


Prediction = Tuple[np.ndarray, Optional[List[np.ndarray]]]


def predict_together(
    models: Sequence[ProjectedPotential],
    frames: Sequence[ase.Atoms],
    forces: bool = True,
    batch_size: int = 8,
) -> List[Prediction]:
    """:meth:`ProjectedPotential.energies_and_forces` of ``models`` that
    featurize alike (one ``feature_fingerprint()``: the seeds of one study
    entry, the members of a committee), each batch of ``frames`` featurized
    once for all of them: ``[(energies, forces per frame)]`` in the order of
    ``models``."""
    first = models[0]
    fingerprint = first.feature_fingerprint()  # type: ignore[attr-defined]
    for model in models[1:]:
        if model.feature_fingerprint() != fingerprint:  # type: ignore[attr-defined]
            raise ValueError("predict_together: the models featurize differently")
    for model in models:
        model.check_species(frames)  # type: ignore[attr-defined]
        model.module.eval()  # type: ignore[attr-defined]
    energies: List[List[np.ndarray]] = [[] for _ in models]
    all_forces: List[List[np.ndarray]] = [[] for _ in models]
    for start in range(0, len(frames), batch_size):
        batch = list(frames[start : start + batch_size])
        shared = first.device_features(batch, gradients=forces)
        offsets = shared.atom_offsets.cpu().numpy()
        for i, model in enumerate(models):
            features = shared if model.device == first.device else shared.to(device=model.device)
            energy, force = energy_and_forces(model.module, features, forces=forces)  # type: ignore[attr-defined]
            energies[i].append(energy.detach().cpu().numpy().astype(np.float64))
            if force is not None:
                array = force.detach().cpu().numpy().astype(np.float64)
                all_forces[i].extend(array[a:b] for a, b in zip(offsets[:-1], offsets[1:]))
    return [(np.concatenate(e), (f if forces else None)) for e, f in zip(energies, all_forces)]


def predict_shared(
    models: Dict[str, object], frames: Sequence[ase.Atoms], forces: bool = True
) -> Dict[str, Prediction]:
    """``{key: (energies, forces per frame or None)}`` of every model of
    ``models`` (``{key: model}`` of the model protocol) for ``frames``, with
    forces when ``forces`` and the model predicts them; the equilens
    potentials that featurize alike share their features
    (:func:`predict_together`), the others predict one by one."""
    groups: Dict[str, List[str]] = {}
    results: Dict[str, Prediction] = {}
    for key, model in models.items():
        if isinstance(model, ProjectedPotential):
            groups.setdefault(model.feature_fingerprint(), []).append(key)  # type: ignore[attr-defined]
        else:
            names = ("energy", "forces") if forces else ("energy",)
            wanted = [name for name in names if name in model.outputs]  # type: ignore[attr-defined]
            results[key] = base_energies_and_forces(model.predict(frames, wanted))  # type: ignore[attr-defined]
    for keys in groups.values():
        together = predict_together([models[key] for key in keys], frames, forces)  # type: ignore[misc]
        results.update(zip(keys, together))
    return {key: results[key] for key in models}
