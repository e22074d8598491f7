"""The BPNN family's metatomic export.

:func:`metatomic_model` wraps the potential's
:class:`~equilens.models.bpnn.module.BPNNModule` (featomic-torch SOAP, the
fixed compression as a linear map, the networks) in a metatomic
``AtomisticModel``:

- outputs ``energy`` (eV, per structure and per atom: forces and stress come
  from autograd in the engine), ``feature`` (the last hidden layer) and
  ``feature/<layer>`` for every layer (``input``, ``hidden_1``, ...,
  ``output``), per atom or per structure (mean over atoms);
- capabilities and metadata of :func:`equilens.models.atomistic.atomistic_model`.

Use it with ``metatomic_ase.MetatomicCalculator(path,
extensions_directory=...)``, ``pair_style metatomic path extensions ...`` in
LAMMPS, or ``chemiscope.metatomic_featurizer(path, extensions_directory=...,
variant="hidden_1")``.
"""

from __future__ import annotations

from ..atomistic import atomistic_model, export_dtype
from .model import Potential


def metatomic_model(model: Potential, dtype: str = "float64"):
    """The ``AtomisticModel`` of an equilens potential, in ``dtype``."""
    from metatomic.torch import ModelOutput

    module = model.torch_module(export_dtype(dtype))
    last_hidden = model.layer_names[-2]
    outputs = {
        "energy": ModelOutput(
            unit="eV", sample_kind="atom", description="sum of the atomic energies"
        ),
        "feature": ModelOutput(
            sample_kind="atom",
            description=f"last hidden layer ({last_hidden}); per structure: mean over atoms",
        ),
    }
    for layer in model.layer_names:
        outputs[f"feature/{layer}"] = ModelOutput(
            sample_kind="atom",
            description=f"layer '{layer}' of the equilens potential; per structure: mean",
        )
    description = (
        "Behler-Parrinello network on SOAP (featomic-torch), one network per species, "
        f"species {list(model.species)}; layers {model.layer_names}."
    )
    return atomistic_model(model, module, outputs, dtype, "equilens potential", description)
