"""The model protocol: what every equilens model family and every adapter provides.

A model says which layers it has, in order from input to output
(:attr:`Model.layer_names`), returns them as TensorMaps for any frames
(:meth:`Model.layers`), predicts its targets as TensorMaps
(:meth:`Model.predict`) and, for equilens's own families, saves to and loads
from one file behind a common header (:func:`write_model_file`,
:func:`read_model_file`; :func:`equilens.models.load` dispatches on it).

Layer TensorMaps follow metatensor's conventions, with numpy float64 values:

- invariant layers: keys ``center_type``, samples ``(system, atom)``, no
  components, properties ``feature``;
- equivariant layers: keys ``(o3_lambda, o3_sigma, center_type)``,
  components ``[o3_mu]`` (featomic's real spherical harmonics, see
  :mod:`equilens.so3`), properties ``feature``.

Predictions are ``{name: TensorMap}``: potentials give ``energy`` (samples
``system``, properties ``energy``, eV) and, when asked, ``forces`` (samples
``(system, atom)``, components ``xyz``, properties ``forces``, eV/Å); tensor
models give their target under its name, laid out like the training target.

Model files are ``torch.save`` archives of tensors and plain data only, read
with ``torch.load(weights_only=True)``: opening one can never run code.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import ase
import numpy as np
import torch
from metatensor import Labels, TensorBlock, TensorMap

from ..errors import FileFormatError, ModelError
from ..provenance import package_versions
from ..storage import json_default, load_torch, save_torch

PathLike = Union[str, "os.PathLike[str]"]

#: version of the model file layout written by :func:`write_model_file`;
#: version 1 files (equilens 0.1) were pickled and are refused
FORMAT_VERSION = 2
HEADER_KEY = "equilens"


@dataclass(frozen=True)
class ModelDescription:
    """What :meth:`Model.describe` says of a model.

    :param kind: the family or adapter (``equilens.potential``, ``sevenn``, ...)
    :param species: the atomic numbers the model handles
    :param cutoff: the range of an atom's environment, in Å (``None`` when
        the model does not say)
    :param layers: the layer names, input to output
    :param outputs: what :meth:`Model.predict` gives
    :param hypers: the architecture and descriptor settings, plain data
    :param provenance: where the model comes from (file, training
        configuration, package versions), plain data
    :param source: what :func:`equilens.models.load` opens to get this model
        again (a spec such as ``sevenn:7net-0`` or a file), when there is one
    """

    kind: str
    species: Tuple[int, ...]
    cutoff: Optional[float]
    layers: Tuple[str, ...]
    outputs: Tuple[str, ...]
    hypers: Dict[str, Any] = field(default_factory=dict)
    provenance: Dict[str, Any] = field(default_factory=dict)
    source: Optional[str] = None

    def as_dict(self) -> Dict[str, Any]:
        """Plain, JSON-able data."""
        return to_plain(dataclasses.asdict(self))


class Model(abc.ABC):
    """The interface shared by equilens models and adapters of external models.

    Subclasses set :attr:`kind` (the name written in file headers, e.g.
    ``"equilens.potential"``) and implement the abstract members; a concrete
    subclass without ``kind`` cannot be instantiated, and one that misses an
    abstract member fails with Python's own message naming it.
    ``equilens.testing.check_model`` checks that a model keeps the contract.
    """

    #: the family's name in file headers and messages
    kind: ClassVar[str] = ""
    #: whether each species has its own coordinates in the hidden layers
    #: (per-species networks): analyses then work species by species
    per_species_coordinates: ClassVar[bool] = False
    #: whether the layers transform with a definite parity under inversion
    #: (models built without parity are only rotation-covariant)
    parity_equivariant: ClassVar[bool] = True

    def __new__(cls, *args, **kwargs):
        if not cls.kind:
            raise TypeError(f"model class {cls.__name__} must set the class attribute 'kind'")
        return super().__new__(cls)

    @property
    @abc.abstractmethod
    def layer_names(self) -> List[str]:
        """The names of the layers, in order from input to output."""

    @property
    @abc.abstractmethod
    def species(self) -> Tuple[int, ...]:
        """The atomic numbers the model can handle."""

    @property
    @abc.abstractmethod
    def outputs(self) -> Tuple[str, ...]:
        """The names :meth:`predict` can give (``energy``, ``forces``, a
        target such as ``dipole``), the default ones first."""

    @abc.abstractmethod
    def layers(self, frames: Sequence[ase.Atoms], batch_size: int = 50) -> Dict[str, TensorMap]:
        """Every layer for every atom of ``frames``: ``{name: TensorMap}`` in
        :attr:`layer_names` order, with the metadata conventions of this module."""

    @abc.abstractmethod
    def predict(
        self,
        frames: Sequence[ase.Atoms],
        outputs: Optional[Sequence[str]] = None,
        batch_size: int = 8,
    ) -> Dict[str, TensorMap]:
        """The model's predictions for ``frames``: ``{name: TensorMap}`` for
        each name of ``outputs`` (default: all of :attr:`outputs`)."""

    @property
    def device(self) -> torch.device:
        """The device :meth:`layers` and :meth:`predict` compute on (the CPU
        unless :meth:`to` moved the model); their results are numpy arrays
        whatever the device."""
        return torch.device("cpu")

    def to(self, device: Union[str, torch.device]) -> Model:
        """Compute on ``device`` from now on (``cpu``, ``cuda``, ``cuda:N``);
        returns the model. The default keeps the model on the CPU and refuses
        any other device in one line; families and adapters whose networks
        run on a GPU override it."""
        device = torch.device(device)
        if device.type != "cpu":
            raise ModelError(f"{self.kind} models compute on the CPU only (asked for {device})")
        return self

    def describe(self) -> ModelDescription:
        """Species, cutoff, layers, outputs, hypers and provenance."""
        return ModelDescription(
            self.kind, self.species, None, tuple(self.layer_names), self.outputs
        )

    def calculator(self):
        """An ASE calculator of the model: energy and forces (and, where the
        family provides it, stress); a :class:`ModelError` for models that
        predict no energy. The default evaluates :meth:`predict`."""
        if "energy" not in self.outputs:
            raise ModelError(
                f"{self.kind} models have no ASE calculator (they predict "
                f"{', '.join(self.outputs) or 'no energy'})"
            )
        from .calculator import PredictionCalculator

        return PredictionCalculator(self)

    def save(self, path: PathLike) -> Path:
        """Write the model to one file (equilens families only)."""
        raise ModelError(f"{self.kind} models are not saved by equilens")

    @classmethod
    def from_file(cls, payload: Dict[str, Any], path: Path) -> Model:
        """Rebuild a model from the payload of its file (see :func:`read_model_file`)."""
        raise ModelError(f"{cls.kind} models are not read from equilens files")

    def wanted_outputs(self, outputs: Optional[Sequence[str]]) -> Tuple[str, ...]:
        """``outputs`` checked against :attr:`outputs` (``None``: all of them);
        a :class:`ModelError` names an unknown one."""
        if outputs is None:
            return self.outputs
        unknown = [name for name in outputs if name not in self.outputs]
        if unknown:
            raise ModelError(
                f"this {self.kind} model does not predict {', '.join(map(repr, unknown))} "
                f"(it predicts {', '.join(self.outputs)})"
            )
        return tuple(outputs)

    def check_species(self, frames: Sequence[ase.Atoms], where: str = "frames") -> None:
        """Raise :class:`ModelError` naming the first frame with an element the
        model does not know."""
        known = set(self.species)
        for index, atoms in enumerate(frames):
            unknown = sorted({int(z) for z in atoms.numbers} - known)
            if unknown:
                from ase.data import chemical_symbols

                names = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in unknown)
                raise ModelError(
                    f"{where}: frame {index} contains {names}, which this {self.kind} model "
                    f"does not know (it knows Z = {list(self.species)})"
                )


class NetworkOnDevice:
    """Mixed into adapters whose network is the torch module ``self.model``
    (SevenNet, MACE): :meth:`Model.to` moves it, and the adapter moves its
    inputs to the device and its results back to the CPU."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device  # type: ignore[attr-defined]

    def to(self, device):
        """Run the network on ``device``; graphs are built on the CPU and moved."""
        self.model.to(torch.device(device))  # type: ignore[attr-defined]
        return self


# ---------------------------------------------------------------------------
# files


def write_model_file(path: PathLike, kind: str, payload: Dict[str, Any]) -> Path:
    """Write ``payload`` (tensors and plain data) behind the common header.

    The header holds ``kind``, ``format_version`` and the versions of
    equilens, torch, featomic, metatensor and numpy.
    """
    if HEADER_KEY in payload:
        raise ValueError(f"'{HEADER_KEY}' is reserved for the header")
    header = {"kind": kind, "format_version": FORMAT_VERSION, "versions": package_versions()}
    return save_torch(path, {HEADER_KEY: header, **payload})


def read_model_file(path: PathLike) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(header, payload)`` of a file written by :func:`write_model_file`.

    :raises FileFormatError: (one line, naming the file) for a missing,
        corrupt, foreign or unsafe file, or an unsupported format version
    """
    path = Path(path)
    content = load_torch(path, "model file")
    header = content.get(HEADER_KEY) if isinstance(content, dict) else None
    if not isinstance(header, dict) or "kind" not in header:
        raise FileFormatError(
            f"{path}: not an equilens model file (no '{HEADER_KEY}' header); "
            "give a model.pt written by `equilens train`"
        )
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise FileFormatError(
            f"{path}: model file format {version} is not supported (this equilens reads "
            f"format {FORMAT_VERSION}); re-create the model with this version"
        )
    payload = {key: value for key, value in content.items() if key != HEADER_KEY}
    return header, payload


def to_plain(value: Any) -> Any:
    """JSON-able plain data (numpy scalars and arrays become Python numbers and
    lists), as stored in model files."""
    return json.loads(json.dumps(value, default=json_default))


# ---------------------------------------------------------------------------
# predictions


def energy_map(energies: np.ndarray) -> TensorMap:
    """Total energies (eV) as a TensorMap: samples ``system``, property ``energy``."""
    energies = np.asarray(energies, dtype=np.float64).reshape(-1, 1)
    block = TensorBlock(
        energies,
        Labels.range("system", len(energies)),
        [],
        Labels.range("energy", 1),
    )
    return TensorMap(Labels.single(), [block])


def forces_map(forces: Sequence[np.ndarray]) -> TensorMap:
    """Per-atom forces (eV/Å) as a TensorMap: samples ``(system, atom)``,
    components ``xyz``, property ``forces``."""
    samples = np.array(
        [[s, a] for s, f in enumerate(forces) for a in range(len(f))], dtype=np.int32
    ).reshape(-1, 2)
    values = np.concatenate([np.asarray(f, dtype=np.float64) for f in forces]).reshape(-1, 3, 1)
    block = TensorBlock(
        values,
        Labels(["system", "atom"], samples),
        [Labels.range("xyz", 3)],
        Labels.range("forces", 1),
    )
    return TensorMap(Labels.single(), [block])


def trained_description(trained: Any, **sections: Any) -> ModelDescription:
    """The description of a model trained by equilens: it has ``hypers`` (its
    descriptor's featomic hypers) and ``metadata`` (its training
    configuration and metrics); ``sections`` describe its architecture."""
    return ModelDescription(
        trained.kind,
        trained.species,
        float(trained.hypers["cutoff"]["radius"]),
        tuple(trained.layer_names),
        trained.outputs,
        {"descriptor": to_plain(trained.hypers), **sections},
        {"config": trained.metadata.get("config", {}), "metrics": trained.metadata.get("metrics")},
    )


def prediction_maps(
    energies: np.ndarray, forces: Optional[Sequence[np.ndarray]], wanted: Sequence[str]
) -> Dict[str, TensorMap]:
    """The ``energy`` and ``forces`` TensorMaps of the names in ``wanted``."""
    result = {}
    if "energy" in wanted:
        result["energy"] = energy_map(energies)
    if "forces" in wanted and forces is not None:
        result["forces"] = forces_map(forces)
    return result


def energies_and_forces(
    prediction: Dict[str, TensorMap],
) -> Tuple[np.ndarray, Optional[List[np.ndarray]]]:
    """``(energies, forces per frame or None)`` as numpy arrays from a prediction."""
    energies = np.asarray(prediction["energy"].block().values)[:, 0]
    if "forces" not in prediction:
        return energies, None
    block = prediction["forces"].block()
    systems = np.asarray(block.samples.column("system"))
    values = np.asarray(block.values)[:, :, 0]
    bounds = np.searchsorted(systems, np.arange(len(energies) + 1))
    return energies, [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
