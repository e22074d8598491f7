"""``equilens.models.load``: one entry point for every model file or spec.

It reads the header of an equilens model file (:mod:`equilens.models.base`)
and builds the family it names. The families are listed here by import path
and imported only when a file of that kind is opened, so that loading one
kind never imports the dependencies of another.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Dict, Optional, Type, Union

from ..errors import ModelError
from .base import Model, read_model_file

PathLike = Union[str, "os.PathLike[str]"]

#: header ``kind`` -> ``module:class`` of the equilens model families
FAMILIES: Dict[str, str] = {
    "equilens.potential": "equilens.models.potential:Potential",
    "equilens.tensor_model": "equilens.models.tensor_model:TensorModel",
}


def _family(kind: str) -> Type[Model]:
    module, _, name = FAMILIES[kind].partition(":")
    return getattr(importlib.import_module(module), name)


#: spec prefix -> what it names
PREFIXES = {
    "metatomic:": "a metatomic model file (.pt)",
    "sevenn:": "a SevenNet checkpoint or shipped model, e.g. sevenn:7net-0",
    "mace:": "a MACE .model file",
}


def load(spec: PathLike, expect: Optional[Type[Model]] = None) -> Model:
    """The model at ``spec``: an equilens model file (``model.pt`` from
    ``equilens train``), a metatomic model file (TorchScript ``.pt``, read by
    :class:`~equilens.models.adapters.metatomic.MetatomicModel`), a MACE
    ``.model`` file, or a spec ``metatomic:PATH``, ``mace:PATH``,
    ``sevenn:NAME_OR_PATH``.

    :param expect: a model class; a file of another kind is an error naming
        both kinds
    :raises FileFormatError: for a missing, corrupt, foreign or unsafe file
    :raises ModelError: for a file of an unknown or unexpected kind
    """
    text = os.fspath(spec)
    if text.startswith("metatomic:") or (text.endswith(".pt") and _is_torchscript(Path(text))):
        from .adapters.metatomic import MetatomicModel

        model: Model = MetatomicModel(text.removeprefix("metatomic:"))
        return _expected(model, expect, text)
    if text.startswith("mace:") or (text.endswith(".model") and not text.startswith("sevenn:")):
        from .adapters.mace import MaceModel

        return _expected(MaceModel(text.removeprefix("mace:")), expect, text)
    if text.startswith("sevenn:"):
        from .adapters.sevenn import SevenNetModel

        return _expected(SevenNetModel(text.removeprefix("sevenn:")), expect, text)
    prefix = text.split(":", 1)[0] + ":"
    if ":" in text and not Path(text).exists() and len(prefix) > 2:
        raise ModelError(
            f"{text}: unknown model spec '{prefix}'; known: "
            + ", ".join(f"{p} ({what})" for p, what in PREFIXES.items())
            + ", or a model file"
        )
    path = Path(text)
    header, payload = read_model_file(path)
    kind = header["kind"]
    if kind not in FAMILIES:
        raise ModelError(
            f"{path}: unknown model kind '{kind}' (this equilens reads {', '.join(FAMILIES)})"
        )
    if expect is not None and kind != expect.kind:
        raise ModelError(f"{path}: holds a {kind} model, not a {expect.kind} model")
    try:
        return _family(kind).from_file(payload, path)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ModelError(
            f"{path}: the {kind} model file is incomplete or inconsistent "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''})"
        ) from None


def _is_torchscript(path: Path) -> bool:
    from .adapters.metatomic import is_metatomic_file

    return path.is_file() and is_metatomic_file(path)


def _expected(model: Model, expect: Optional[Type[Model]], where: str) -> Model:
    if expect is not None and not isinstance(model, expect):
        raise ModelError(f"{where}: holds a {model.kind} model, not a {expect.kind} model")
    return model
