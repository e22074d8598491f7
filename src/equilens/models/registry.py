"""The one registry of model families and adapters.

Every place that needs to know which models exist looks here:
:func:`equilens.models.load` (opening a file or spec), :func:`train` and
:func:`load_run_config` (``equilens train``, ``equilens finetune``, the
study), ``metatomic_model`` (``equilens export-metatomic``) and the list
printed by ``equilens --help``. A family is one line of :data:`FAMILIES`:
what it is called, where its model class, task configuration, training
function and exporter live. They are named as ``"module:attribute"`` and
imported only when used, so that opening a model of one kind never imports
the (optional) dependencies of another.

Adding a family: write its package (``config.py``, ``module.py``,
``model.py``, ``task.py``, ``export.py``) and add one :class:`Family` line.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

from ..config import from_mapping, load_yaml
from ..errors import ConfigError, ModelError

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Family:
    """One model family (trained by equilens or driven through its package)
    or adapter (models of other packages opened on the protocol).

    :param kind: the name in model file headers and messages
    :param description: one line for listings
    :param model: ``module:Class`` of its :class:`~equilens.models.base.Model`
        (``None``: its trained models are opened by another family)
    :param task: the ``task:`` of its training configurations (``None``: not
        trained by ``equilens train``)
    :param config: ``module:Class`` of the task's configuration dataclass
    :param train: ``module:function`` training a configuration:
        ``(config, progress, stop_after, overwrite) -> (model, summary)``
    :param export: ``module:function`` giving the metatomic
        ``AtomisticModel`` of a model: ``(model, dtype) -> AtomisticModel``
    :param prefix: the spec prefix that opens a model (``sevenn:7net-0``);
        the class is called with what follows it
    :param suffixes: file suffixes that open a model of this family
    :param sniff: ``module:function`` deciding from a file's content whether
        a file with one of ``suffixes`` is of this family
    :param finetune: the configuration field naming the starting model when
        the task fine-tunes (``equilens finetune`` requires it set)
    :param potential: the task trains a potential (energies and forces) on
        labelled frames: it can be an entry of a study's sweep
    :param requires: the package its task needs in equilens's environment and
        the command that installs it (checked before anything is trained)
    :param trained: what :func:`equilens.models.load` opens to get the model
        a finished run of the task wrote (``{folder}``: its output folder)
    :param shares: ``module:function`` giving the key of the cached work
        (features) a training configuration shares with other runs, or
        ``None``: on a cluster, runs with equal keys wait for that work
        instead of computing the same cache entries side by side
    :param prepare: ``module:function`` computing and caching that shared
        work without training, ``(config, progress) -> None`` (required with
        ``shares``): on a cluster it runs once, then the runs that share it
    """

    kind: str
    description: str
    model: Optional[str] = None
    task: Optional[str] = None
    config: Optional[str] = None
    train: Optional[str] = None
    export: Optional[str] = None
    prefix: Optional[str] = None
    suffixes: Tuple[str, ...] = ()
    sniff: Optional[str] = None
    finetune: Optional[str] = None
    potential: bool = False
    requires: Tuple[str, ...] = ()
    trained: str = "{folder}/model.pt"
    shares: Optional[str] = None
    prepare: Optional[str] = None

    def check_requirements(self) -> None:
        """A one-line :class:`ConfigError` naming the install command when the
        package the task needs is missing."""
        import importlib.util

        if self.requires and importlib.util.find_spec(self.requires[0]) is None:
            raise ConfigError(
                f"task {self.task} needs the {self.requires[0]} package: {self.requires[1]}"
            )


#: every family and adapter equilens knows, one line each
FAMILIES: Tuple[Family, ...] = (
    Family(
        "equilens.potential",
        "Behler-Parrinello networks on compressed SOAP: energies, forces, stress",
        model="equilens.models.bpnn.model:Potential",
        task="potential",
        config="equilens.models.bpnn.config:PotentialConfig",
        train="equilens.models.bpnn.task:train_potential",
        export="equilens.models.bpnn.export:metatomic_model",
        finetune="finetune",
        potential=True,
        shares="equilens.models.bpnn.task:shared_work",
        prepare="equilens.models.bpnn.task:prepare_shared",
    ),
    Family(
        "equilens.tensor_model",
        "equivariant networks on lambda-SOAP: dipoles, polarizabilities, densities",
        model="equilens.models.tensor.model:TensorModel",
        task="tensor",
        config="equilens.models.tensor.config:TensorConfig",
        train="equilens.models.tensor.task:train_tensor_model",
        export="equilens.models.tensor.export:metatomic_model",
    ),
    Family(
        "equilens.equivariant_potential",
        "equivariant networks on lambda-SOAP: energies, forces, stress",
        model="equilens.models.equivariant.model:EquivariantPotential",
        task="equivariant_potential",
        config="equilens.models.equivariant.config:EquivariantPotentialConfig",
        train="equilens.models.equivariant.task:train_equivariant_potential",
        export="equilens.models.equivariant.export:metatomic_model",
        potential=True,
        shares="equilens.models.equivariant.task:shared_work",
        prepare="equilens.models.equivariant.task:prepare_shared",
    ),
    Family(
        "sevenn",
        "SevenNet (NequIP-type) models (sevenn:7net-0), fine-tuned or trained from scratch "
        "by sevenn's trainer",
        model="equilens.models.sevenn.model:SevenNetModel",
        task="sevenn",
        config="equilens.models.sevenn.config:SevennConfig",
        train="equilens.models.sevenn.task:train_sevenn",
        prefix="sevenn:",
        finetune="base_model",
        potential=True,
        requires=("sevenn", "pip install 'equilens[sevenn]'"),
        trained="sevenn:{folder}/model.pth",
    ),
    Family(
        "mace",
        "MACE models (mace:PATH, .model files), trained from scratch by mace-torch's trainer",
        model="equilens.models.mace.model:MaceModel",
        task="mace",
        config="equilens.models.mace.config:MaceConfig",
        train="equilens.models.mace.task:train_mace",
        prefix="mace:",
        suffixes=(".model",),
        potential=True,
        requires=("mace", "pip install 'equilens[mace]' (in an environment without sevenn)"),
        trained="{folder}/model.model",
    ),
    Family(
        "metatomic",
        "metatomic model files (.pt, exported AtomisticModels)",
        model="equilens.models.metatomic.model:MetatomicModel",
        prefix="metatomic:",
        suffixes=(".pt",),
        sniff="equilens.models.metatomic.model:is_metatomic_file",
    ),
    Family(
        "metatrain",
        "metatrain architectures trained or fine-tuned by `mtt train`",
        task="metatrain",
        config="equilens.models.metatrain.config:MetatrainConfig",
        train="equilens.models.metatrain.task:train_metatrain",
        finetune="base_checkpoint",
        potential=True,
    ),
)


def resolve(reference: str) -> Any:
    """The object a ``module:attribute`` reference names (imported now)."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def family(kind: str) -> Family:
    """The family of a model ``kind``; a :class:`ModelError` lists the known ones."""
    for entry in FAMILIES:
        if entry.kind == kind:
            return entry
    known = ", ".join(f.kind for f in FAMILIES if f.model)
    raise ModelError(f"unknown model kind '{kind}' (this equilens reads {known})")


def tasks() -> Tuple[str, ...]:
    """The training tasks, in registry order."""
    return tuple(f.task for f in FAMILIES if f.task)


def task_family(task: Any, where: str = "task") -> Family:
    """The family that trains ``task``; a :class:`ConfigError` lists the tasks."""
    for entry in FAMILIES:
        if entry.task is not None and entry.task == task:
            return entry
    raise ConfigError(f"{where}: expected one of {', '.join(tasks())}, got {task!r}")


def load_run_config(path: PathLike):
    """Read a training YAML file (or a built-in configuration name) and
    validate it against the configuration dataclass of its ``task``."""
    mapping = load_yaml(path)
    task = mapping.get("task")
    if task is None:
        raise ConfigError(
            f"{path}: missing key 'task' (one of: {', '.join(tasks())}); e.g. 'task: potential'"
        )
    entry = task_family(task, where=f"{path}.task")
    assert entry.config is not None
    return from_mapping(resolve(entry.config), mapping, where=str(path))


def train(config, progress: bool = True, stop_after: Optional[int] = None, overwrite: bool = False):
    """Train the task of ``config``; returns ``(model, summary)``.

    :param config: a task configuration (e.g. from :func:`load_run_config`)
    :param stop_after: stop (as if interrupted) after this epoch
    :param overwrite: replace the outputs of another run in the output folder
    """
    entry = task_family(getattr(config, "task", None))
    assert entry.train is not None
    return resolve(entry.train)(config, progress, stop_after, overwrite)


def shared_work(config) -> Optional[str]:
    """The key of the cached work ``config``'s run shares with other runs
    (its family's ``shares``), ``None`` when it shares nothing."""
    entry = task_family(getattr(config, "task", None))
    return None if entry.shares is None else resolve(entry.shares)(config)


def prepare_shared(config, progress: bool = False) -> None:
    """Compute and cache the work ``config``'s run shares with others
    (:func:`shared_work`; its family's ``prepare``), training nothing and
    writing nothing in the run's output folder: a study on a cluster runs it
    once, then every run of the group side by side."""
    entry = task_family(getattr(config, "task", None))
    if entry.prepare is None:
        raise ModelError(f"task {entry.task} has no shared work to prepare")
    resolve(entry.prepare)(config, progress)


def metatomic_model(model, dtype: str = "float64"):
    """The metatomic ``AtomisticModel`` of ``model`` (its family's exporter);
    a :class:`ModelError` for families that have none."""
    entry = family(model.kind)
    if entry.export is None:
        exportable = ", ".join(f.kind for f in FAMILIES if f.export)
        raise ModelError(
            f"metatomic export supports {exportable} models; this is a {model.kind} model"
        )
    return resolve(entry.export)(model, dtype)


def check_finetune(config, where: str = "config") -> None:
    """Refuse, in one line, a configuration that does not fine-tune (its
    task cannot, or the field naming the starting model is not set)."""
    entry = task_family(config.task)
    tunable = [f for f in FAMILIES if f.finetune]
    choices = ", ".join(f"task: {f.task} with {f.finetune}" for f in tunable)
    if entry.finetune is None:
        raise ConfigError(f"{where}: fine-tuning takes {choices}")
    if getattr(config, entry.finetune, None) is None:
        raise ConfigError(
            f"{where}: no '{entry.finetune}' section or key to start from ({choices}; e.g. "
            "finetune: {base_model: MODEL.pt, mode: full | frozen | last_layer})"
        )
