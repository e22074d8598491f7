"""Fine-tuning an equilens potential: start the ``potential`` task from a model.

A ``finetune:`` section in a potential configuration (or ``equilens
finetune CONFIG``) makes the trainer start from a trained potential instead
of random weights. Everything else is the ordinary task: the same loop,
checkpoints, resume, logs, metrics and plots.

- **Descriptor and architecture** are the base model's (SOAP hypers, the
  number of components, the network widths); the configuration's
  ``descriptor`` and ``model`` sections are not used, and setting hypers that
  differ from the base model's is an error.
- **Compression**: ``keep`` (default) keeps the base model's per-species
  projection, so its networks see the coordinates they were trained on;
  ``refit`` fits a new one on the new training frames. A species absent from
  the base model always gets its own projection, fitted on the new frames;
  the base projections are extended with zero weights on the SOAP channels
  the new species adds (environments without it keep their coordinates).
- **Energy offsets**: two levels of theory differ by large per-species
  constants, so the per-species energies are refitted on the new data by
  default (``refit_offsets``); the output scale stays the base model's.
- **Trainable weights**: ``full`` (all), ``frozen`` (the first
  ``frozen_layers`` hidden layers of every base species network kept), or
  ``last_layer`` (only the output layer of each network trained). Networks of
  new species start from seeded random weights and are always trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...descriptors.compression import SpeciesPCA
from ...errors import ConfigError
from ...storage import file_sha256
from .config import FinetuneConfig
from .model import Potential
from .module import BPNNModule


def load_base(config: FinetuneConfig) -> Potential:
    """The base potential named by ``finetune.base_model``."""
    path = Path(config.base_model)
    if not path.is_file():
        raise ConfigError(f"finetune.base_model: no such model file: {path}")
    base = Potential.load(path)
    if base.module.shared:
        raise ConfigError(
            f"finetune.base_model: {path} has one network shared by its elements; fine-tuning "
            "starts from per-element networks only (model.network: per_species)"
        )
    first: Any = base.module.nets[0]
    hidden = len(first.hidden)
    if config.mode == "frozen" and config.frozen_layers > hidden:
        raise ConfigError(
            f"finetune.frozen_layers: {config.frozen_layers}, but {path} has {hidden} hidden layers"
        )
    return base


def base_fingerprint(config: FinetuneConfig) -> dict:
    """What of the base model decides the run (its content, not its name)."""
    return {"base_model_sha256": file_sha256(Path(config.base_model))}


def check_hypers(hypers: dict, base: Potential, default: dict) -> None:
    """The configuration's SOAP hypers must be the defaults or the base's."""
    if hypers not in (base.hypers, default):
        different = sorted(k for k in hypers if hypers.get(k) != base.hypers.get(k))
        raise ConfigError(
            "descriptor: a fine-tuned model keeps its base model's SOAP; "
            f"differs in {', '.join(different[:4])} (remove the descriptor section)"
        )


def compression(base: Potential, fitted: SpeciesPCA, mode: str) -> SpeciesPCA:
    """The projection of the fine-tuned model: ``fitted`` (on the new frames)
    for new species and with ``refit``; the base's, extended to the new SOAP
    channels, for the base species with ``keep``."""
    if mode == "refit":
        return fitted
    state = fitted.state()
    old = base.pca.state()
    if list(old["properties_names"]) != list(state["properties_names"]):
        raise ConfigError("finetune: the base model's SOAP channels differ from the new ones")
    where = {tuple(row): index for index, row in enumerate(np.asarray(state["properties"]))}
    try:
        rows = np.array([where[tuple(row)] for row in np.asarray(old["properties"])])
    except KeyError:
        raise ConfigError(
            "finetune: the new species list drops SOAP channels of the base model"
        ) from None
    n_properties = len(np.asarray(state["properties"]))
    for z in old["species"]:
        z = int(z)
        if z not in state["components"]:  # not in the new training frames
            state["species"] = sorted([*state["species"], z])
        components = np.zeros((n_properties, fitted.n_components))
        components[rows] = old["components"][z]
        mean = np.zeros(n_properties)
        mean[rows] = old["mean"][z]
        state["components"][z], state["mean"][z] = components, mean
        state["scale"][z] = np.asarray(old["scale"][z]).copy()
    return SpeciesPCA.from_state(state)


def start_from_base(
    model: BPNNModule, base: Potential, config: FinetuneConfig, baseline: np.ndarray
) -> None:
    """Copy the base networks into ``model`` (same architecture, a superset of
    species), set its offsets and scale, and freeze what ``config.mode`` keeps."""
    old_species: Sequence[int] = base.module.species
    for index, z in enumerate(model.species):
        if z not in old_species:
            continue
        net: Any = model.nets[index]
        net.load_state_dict(base.module.nets[old_species.index(z)].state_dict())
        kept = {"full": [], "frozen": list(net.hidden)[: config.frozen_layers]}.get(
            config.mode, list(net.hidden)
        )
        for layer in kept:
            layer.requires_grad_(False)
    with torch.no_grad():
        model.scale.copy_(base.module.scale)
        offsets = torch.as_tensor(baseline, dtype=model.baseline.dtype)
        if not config.refit_offsets:
            missing = [z for z in model.species if z not in old_species]
            if missing:
                raise ConfigError(
                    f"finetune.refit_offsets: new species {missing} need fitted offsets"
                )
            rows = [old_species.index(z) for z in model.species]
            offsets = base.module.baseline[rows]
        model.baseline.copy_(offsets.to(model.baseline.dtype))
