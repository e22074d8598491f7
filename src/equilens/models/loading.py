"""``equilens.models.load``: one entry point for every model file or spec.

It looks the spec up in the registry (:mod:`equilens.models.registry`): a
prefix (``sevenn:7net-0``, ``mace:PATH``, ``metatomic:PATH``), a file suffix
recognised by an adapter (a MACE ``.model``, a TorchScript metatomic
``.pt``), else the header of an equilens model file, whose ``kind`` names
the family that rebuilds it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Type, Union

from ..errors import ModelError
from .base import Model, read_model_file
from .registry import FAMILIES, Family, family, resolve, task_family

PathLike = Union[str, "os.PathLike[str]"]


def load(spec: PathLike, expect: Optional[Type[Model]] = None) -> Model:
    """The model at ``spec``: an equilens model file (``model.pt`` from
    ``equilens train``), a metatomic model file (TorchScript ``.pt``), a MACE
    ``.model`` file, or a spec ``metatomic:PATH``, ``mace:PATH``,
    ``sevenn:NAME_OR_PATH``.

    :param expect: a model class; a file of another kind is an error naming
        both kinds
    :raises FileFormatError: for a missing, corrupt, foreign or unsafe file
    :raises ModelError: for a file of an unknown or unexpected kind
    """
    text = os.fspath(spec)
    adapter = _adapter(text)
    if adapter is not None:
        entry, argument = adapter
        assert entry.model is not None
        return _expected(resolve(entry.model)(argument), expect, text)
    prefix = text.split(":", 1)[0] + ":"
    if ":" in text and not Path(text).exists() and len(prefix) > 2:
        known = [f"{f.prefix} ({f.description})" for f in FAMILIES if f.prefix]
        raise ModelError(
            f"{text}: unknown model spec '{prefix}'; known: "
            + ", ".join(known)
            + ", or a model file"
        )
    path = Path(text)
    header, payload = read_model_file(path)
    kind = header["kind"]
    try:
        entry = family(kind)
        if entry.model is None:
            raise ModelError(f"unknown model kind '{kind}'")
    except ModelError as error:
        raise ModelError(f"{path}: {error}") from None
    if expect is not None and kind != expect.kind:
        raise ModelError(f"{path}: holds a {kind} model, not a {expect.kind} model")
    try:
        return resolve(entry.model).from_file(payload, path)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ModelError(
            f"{path}: the {kind} model file is incomplete or inconsistent "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''})"
        ) from None


def _adapter(text: str) -> Optional[tuple]:
    """``(family, argument)`` of a spec opened by an adapter, or None."""
    for entry in FAMILIES:
        if entry.prefix and text.startswith(entry.prefix):
            return entry, text[len(entry.prefix) :]
    if ":" in text.split("/", 1)[0] and not Path(text).exists():
        return None  # an unknown prefix
    for entry in FAMILIES:
        if entry.suffixes and text.endswith(entry.suffixes) and _sniffed(entry, Path(text)):
            return entry, text
    return None


def _sniffed(entry: Family, path: Path) -> bool:
    """Whether ``path`` passes ``entry``'s content check (if it has one)."""
    return entry.sniff is None or (path.is_file() and resolve(entry.sniff)(path))


def _expected(model: Model, expect: Optional[Type[Model]], where: str) -> Model:
    if expect is not None and not isinstance(model, expect):
        raise ModelError(f"{where}: holds a {model.kind} model, not a {expect.kind} model")
    return model


def trained_model(config):
    """The model a finished run of ``config`` wrote, opened from its folder
    (the registry's ``trained`` spec of its task)."""
    entry = task_family(getattr(config, "task", None))
    return load(entry.trained.format(folder=config.output))
