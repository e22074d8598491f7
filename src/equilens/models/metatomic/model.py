"""Any metatomic model (an exported ``AtomisticModel``) on the model protocol.

The layers are the model's feature outputs, in the order it declares them:

- ``feature/<variant>`` (metatomic's current names; ``features/<variant>``
  in older models), one layer per variant; a bare ``feature`` (or
  ``features``) is a layer of its own only when there are no variants (else
  it is an alias of one of them): for metatrain's PET, the node features of
  its readout layers;
- metatrain's ``mtt::aux::<target>_last_layer_features`` and, for PET
  checkpoints, ``mtt::feature::<module>`` hidden features;
- equivariant layers exported by equilens, ``equilens::feature/<layer>``
  (keys ``o3_lambda, o3_sigma, center_type``).

Per-atom features become one block per center type (keys ``center_type``,
samples ``(system, atom)``, properties ``feature``); blocks with ``o3_mu``
components keep their symmetry keys. ``predict`` gives ``energy`` and, by
autograd, ``forces`` when the model has an energy output.

The file is TorchScript (read by ``torch.jit``, not unpickled). Compiled
extensions, which are native code, are loaded only from the directory the user
names (``extensions_directory``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import ase
import numpy as np
import torch
from metatensor import Labels, TensorBlock, TensorMap

from ...errors import ModelError
from ...tensormaps import atom_tensormap, join_by_system
from ..base import Model, ModelDescription, prediction_maps

PathLike = Union[str, "os.PathLike[str]"]
FEATURE_PREFIXES = ("feature/", "features/", "mtt::feature::", "equilens::feature/")


def is_metatomic_file(path: PathLike) -> bool:
    """Whether ``path`` is a saved metatomic ``AtomisticModel`` (TorchScript)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any("/code/" in name for name in names)  # TorchScript, not torch.save


def layer_outputs(outputs: Sequence[str]) -> Dict[str, str]:
    """``{layer name: output name}`` of the feature outputs, in declared order."""
    layers: Dict[str, str] = {}
    for name in outputs:
        for prefix in FEATURE_PREFIXES:
            if name.startswith(prefix):
                if prefix == "equilens::feature/":  # equivariant: preferred to a summary
                    layers[name[len(prefix) :]] = name
                else:
                    layers.setdefault(name[len(prefix) :], name)
        if name.startswith("mtt::aux::") and name.endswith("_last_layer_features"):
            layers.setdefault(name[len("mtt::aux::") :], name)
    if not any(name.startswith(("feature/", "features/")) for name in outputs):
        # a bare output is a layer of its own unless it aliases a variant;
        # ``features`` (the older name) aliases ``feature`` when both exist
        bare = next((name for name in ("feature", "features") if name in outputs), None)
        if bare is not None:
            layers = {bare: bare, **layers}
    return layers


class MetatomicModel(Model):
    """A metatomic model file: every feature output as a layer.

    :param path: the ``.pt`` file
    :param extensions_directory: where its compiled extensions are (default:
        ``extensions/`` beside the file, when it exists)
    """

    kind = "metatomic"

    def __init__(self, path: PathLike, extensions_directory: Optional[PathLike] = None):
        from metatomic.torch import load_atomistic_model

        path = Path(path)
        # reopened by load(path) only with the default extensions folder
        self.reopens = extensions_directory is None
        if extensions_directory is None and (path.parent / "extensions").is_dir():
            extensions_directory = path.parent / "extensions"
        with contextlib.suppress(ImportError):  # featomic's TorchScript classes first
            import featomic.torch  # noqa: F401
        folder = None if extensions_directory is None else str(extensions_directory)
        try:
            self.model = load_atomistic_model(str(path), extensions_directory=folder)
        except Exception as error:  # torch and metatomic raise many types
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            raise ModelError(
                f"{path}: cannot load the metatomic model ({type(error).__name__}: {first}); "
                "give --extensions if it needs compiled extensions"
            ) from None
        self.path = path
        self.extensions_directory = folder
        capabilities = self.model.capabilities()
        self.model_outputs = dict(capabilities.outputs)
        self._species = tuple(sorted(int(z) for z in capabilities.atomic_types))
        self.length_unit = capabilities.length_unit
        self.cutoff = float(capabilities.interaction_range)
        self.dtype = getattr(torch, capabilities.dtype)
        self._layers = layer_outputs(list(self.model_outputs))
        if not self._layers and "energy" not in self.model_outputs:
            raise ModelError(f"{path}: the model has no feature or energy output")
        self.supported_devices = tuple(capabilities.supported_devices)
        self._device = torch.device("cpu")

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device) -> MetatomicModel:
        """Run the model on ``device``, one the file declares it supports."""
        device = torch.device(device)
        if device.type not in self.supported_devices:
            raise ModelError(
                f"{self.path}: the model supports {', '.join(self.supported_devices)}, "
                f"not {device.type}"
            )
        self.model.to(device)
        self._device = device
        return self

    @property
    def species(self) -> Tuple[int, ...]:
        return self._species

    @property
    def layer_names(self) -> List[str]:
        return list(self._layers)

    @property
    def outputs(self) -> Tuple[str, ...]:
        return ("energy", "forces") if "energy" in self.model_outputs else ()

    def describe(self) -> ModelDescription:
        metadata = self.model.metadata()
        return ModelDescription(
            self.kind,
            self.species,
            self.cutoff,
            tuple(self.layer_names),
            self.outputs,
            {"outputs": sorted(self.model_outputs), "dtype": str(self.dtype)},
            {"file": str(self.path), "name": metadata.name, "authors": list(metadata.authors)},
            source=f"metatomic:{self.path}" if self.reopens else None,
        )

    def calculator(self):
        """metatomic-ase's calculator of the file (energy, forces, stress)."""
        if "energy" not in self.model_outputs:
            super().calculator()
        from metatomic_ase import MetatomicCalculator

        return MetatomicCalculator(
            self.model, extensions_directory=self.extensions_directory, device=str(self.device)
        )

    def _systems(self, frames: Sequence[ase.Atoms], positions_grad: bool = False):
        from metatomic.torch import systems_to_torch
        from vesin.metatomic import neighbor_lists_for_model

        systems = systems_to_torch(
            list(frames), dtype=self.dtype, positions_requires_grad=positions_grad
        )
        calculators = neighbor_lists_for_model("angstrom", self.model)
        for calculator in calculators:
            calculator.add_neighbor_list(systems)
        if self.device.type == "cpu":
            return systems
        return [system.to(device=self.device) for system in systems]

    def _run(self, systems, names: Sequence[str]) -> Dict[str, Any]:
        from metatomic.torch import ModelEvaluationOptions, ModelOutput

        options = ModelEvaluationOptions(
            length_unit="angstrom",
            outputs={name: ModelOutput(sample_kind="atom") for name in names},
        )
        return self.model(systems, options, check_consistency=False)

    def layers(self, frames: Sequence[ase.Atoms], batch_size: int = 50) -> Dict[str, TensorMap]:
        """Every feature output per atom, in the conventions of :mod:`equilens.models.base`."""
        self.check_species(frames)
        frames = list(frames)
        parts: Dict[str, List[Any]] = {name: [] for name in self._layers}
        for start in range(0, len(frames), batch_size):
            batch = frames[start : start + batch_size]
            with torch.no_grad():
                outputs = self._run(self._systems(batch), list(self._layers.values()))
            for layer, output in self._layers.items():
                tensor = outputs[output].to(device="cpu")
                if "o3_lambda" in tensor.keys.names:
                    parts[layer].append((start, _equivariant(tensor, layer)))
                else:
                    parts[layer].append(_per_atom_values(tensor, batch, layer))
        system = np.concatenate([np.full(len(f), s) for s, f in enumerate(frames)])
        atom = np.concatenate([np.arange(len(f)) for f in frames])
        numbers = np.concatenate([f.numbers for f in frames])
        result: Dict[str, TensorMap] = {}
        for layer, values in parts.items():
            if values and isinstance(values[0], tuple):
                result[layer] = join_by_system(values)
            else:
                result[layer] = atom_tensormap(
                    np.concatenate(values), system, atom, numbers, species=self.species
                )
        return result

    def predict(
        self,
        frames: Sequence[ase.Atoms],
        outputs: Optional[Sequence[str]] = None,
        batch_size: int = 8,
    ) -> Dict[str, TensorMap]:
        """``energy`` and ``forces`` (autograd) of models with an energy output."""
        if "energy" not in self.model_outputs:
            raise ModelError(f"{self.path}: the model has no energy output")
        wanted = self.wanted_outputs(outputs)
        self.check_species(frames)
        energies: List[float] = []
        forces: List[np.ndarray] = []
        for atoms in frames:
            systems = self._systems([atoms], positions_grad=True)
            output = self._run(systems, ["energy"])["energy"]
            energy = output.block().values.sum()
            energies.append(float(energy.detach().cpu()))
            if "forces" in wanted:
                (gradient,) = torch.autograd.grad(energy, systems[0].positions)
                forces.append(-gradient.detach().cpu().numpy().astype(np.float64))
        return prediction_maps(np.array(energies), forces, wanted)


def _equivariant(tensor, layer: str) -> TensorMap:
    """A per-atom equivariant output (keys ``o3_lambda, o3_sigma,
    center_type``, components ``o3_mu``) as a numpy TensorMap."""
    names = list(tensor.keys.names)
    if names != ["o3_lambda", "o3_sigma", "center_type"]:
        raise ModelError(f"layer '{layer}': equivariant output with keys {names}")
    blocks = []
    for block in tensor.blocks():
        components = [Labels(c.names, c.values.numpy().astype(np.int32)) for c in block.components]
        blocks.append(
            TensorBlock(
                block.values.detach().numpy().astype(np.float64),
                Labels(block.samples.names, block.samples.values.numpy().astype(np.int32)),
                components,
                Labels.range("feature", block.values.shape[-1]),
            )
        )
    return TensorMap(Labels(names, tensor.keys.values.numpy().astype(np.int32)), blocks)


def _per_atom_values(tensor, frames, layer: str) -> np.ndarray:
    """One ``(n_atoms, n_features)`` array in frame order from a per-atom output."""
    if len(tensor.keys) != 1:
        raise ModelError(
            f"layer '{layer}': {len(tensor.keys)} blocks; equivariant metatomic outputs are "
            "not read yet"
        )
    block = tensor.block()
    if len(block.components) != 0:
        raise ModelError(f"layer '{layer}' has components {block.components[0].names}")
    samples = block.samples.values.numpy()
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in frames])])
    rows = offsets[samples[:, 0]] + samples[:, 1]
    values = np.zeros((offsets[-1], block.values.shape[1]))
    values[rows] = block.values.detach().numpy()
    if len(rows) != offsets[-1]:
        raise ModelError(f"layer '{layer}': {len(rows)} atoms for {offsets[-1]} in the frames")
    return values
