"""Export equilens models as metatomic models (ASE, LAMMPS, chemiscope).

:func:`export_metatomic` asks the model's family (the registry,
:func:`equilens.models.metatomic_model`) for its metatomic
``AtomisticModel`` (the family's TorchScript module: descriptor computed
inside with featomic-torch, the networks, the outputs it declares) and
saves it as TorchScript, with the compiled extensions it needs collected
next to it. Use it with ``metatomic_ase.MetatomicCalculator(path,
extensions_directory=...)``, ``pair_style metatomic path extensions ...`` in
LAMMPS, or ``chemiscope.metatomic_featurizer(path, extensions_directory=...,
variant="hidden_1")``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from ..models import metatomic_model
from ..models.atomistic import save_atomistic

PathLike = Union[str, "os.PathLike[str]"]


def export_metatomic(
    model,
    path: PathLike,
    extensions: Optional[PathLike] = None,
    dtype: str = "float64",
) -> Path:
    """Save ``model`` (an equilens potential or tensor model) as a metatomic
    TorchScript file.

    :param extensions: folder for the compiled extensions the file needs
        (default: ``extensions/`` next to ``path``)
    :returns: ``path``
    """
    from ..errors import ModelError

    if Path(path).suffix != ".pt":
        raise ModelError(f"{path}: a metatomic model file ends in .pt")
    return save_atomistic(metatomic_model(model, dtype), path, extensions)
