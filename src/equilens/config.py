"""Validated configuration: dataclasses built from YAML or mappings.

The dataclasses themselves are the single source of truth for defaults and
their documentation; this module only turns untrusted mappings into them.
Unknown keys are rejected with a message that names the key and lists the
accepted ones; values are checked against the field annotations.

Example::

    @dataclass(frozen=True)
    class Training:
        epochs: int = 100
        learning_rate: float = 1e-3

    cfg = from_mapping(Training, {"epochs": 10}, where="train.yaml")
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Type, TypeVar, Union

import yaml

from .errors import ConfigError

T = TypeVar("T")


def builtin_configs() -> Dict[str, Path]:
    """The configurations that ship with equilens: ``{name: path}``
    (``equilens train tensor_dipole``, ``equilens study study_iron_water``)."""
    from importlib import resources

    root = Path(str(resources.files("equilens").joinpath("configs")))
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


def resolve_config(path: Union[str, os.PathLike[str]]) -> Path:
    """The file ``path``, or the built-in configuration of that name when no
    such file exists (``tensor_dipole`` or ``tensor_dipole.yaml``)."""
    candidate = Path(path)
    if candidate.exists() or len(candidate.parts) > 1:
        return candidate
    name = candidate.stem if candidate.suffix in (".yaml", ".yml") else candidate.name
    return builtin_configs().get(name, candidate)


def load_yaml(path: Union[str, os.PathLike[str]]) -> dict:
    """Read a YAML file (or a built-in configuration, see :func:`resolve_config`)
    that must contain a mapping at the top level."""
    path = resolve_config(path)
    try:
        with open(path, encoding="utf-8") as fd:
            content = yaml.safe_load(fd)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: configuration file does not exist (built-in configurations: "
            f"{', '.join(builtin_configs())})"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a configuration file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (YAML) file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from None
    if content is None:
        return {}
    if not isinstance(content, Mapping):
        raise ConfigError(
            f"{path}: expected a mapping at the top level, got {type(content).__name__}"
        )
    return dict(content)


def from_yaml(cls: Type[T], path: Union[str, os.PathLike[str]]) -> T:
    """Build the dataclass ``cls`` from a YAML file, validating every key."""
    return from_mapping(cls, load_yaml(path), where=str(path))


def from_mapping(cls: Type[T], mapping: Mapping[str, Any], where: str = "config") -> T:
    """Build the dataclass ``cls`` from ``mapping``.

    :param cls: a dataclass type; nested dataclass fields are built recursively
    :param mapping: the raw values, e.g. from YAML
    :param where: a name for the origin of ``mapping`` used in error messages
        (a file name, optionally followed by the key path)
    :raises ConfigError: for unknown keys, missing required keys and values of
        the wrong type
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping for {cls.__name__}, got {type(mapping).__name__}"
        )

    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [key for key in mapping if key not in fields]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{unknown[0]}' in {cls.__name__}; "
            f"accepted keys are: {', '.join(sorted(fields))}"
        )

    kwargs = {}
    for name, field in fields.items():
        if name in mapping:
            kwargs[name] = _convert(mapping[name], hints[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key '{name}'")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as error:
        message = str(error)
        if message.startswith(where):
            raise ConfigError(message) from None
        raise ConfigError(f"{where}: {message}") from None


def validate_species(species, where: str = "species") -> Tuple[int, ...]:
    """A sorted tuple of distinct atomic numbers; an empty list or a number
    that is not an element is an error naming ``where``."""
    from ase.data import chemical_symbols

    try:
        values = sorted({int(z) for z in species})
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a list of atomic numbers, got {species!r}") from None
    if not values:
        raise ConfigError(f"{where}: the species list is empty")
    bad = [z for z in values if not 0 < z < len(chemical_symbols)]
    if bad:
        raise ConfigError(
            f"{where}: {bad} are not atomic numbers (1 to {len(chemical_symbols) - 1})"
        )
    return tuple(values)


def to_mapping(instance: Any) -> dict:
    """The plain-data (YAML/JSON-ready) form of a config dataclass."""
    return _plain(dataclasses.asdict(instance))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against ``annotation``, converting where it is lossless."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)

    if annotation is Any:
        return value
    if origin is Union or origin is types.UnionType:
        errors = []
        # try None first, then the other members in order
        for member in sorted(args, key=lambda a: a is not type(None)):
            try:
                return _convert(value, member, where)
            except ConfigError as error:
                errors.append(str(error))
        others = [a for a in args if a is not type(None)]
        if value is not None and len(others) == 1 and dataclasses.is_dataclass(others[0]):
            raise ConfigError(errors[-1])  # an optional section: what is wrong inside it
        names = " or ".join(_type_name(a) for a in args)
        raise ConfigError(f"{where}: expected {names}, got {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        choices = ", ".join(repr(a) for a in args)
        raise ConfigError(f"{where}: expected one of {choices}, got {value!r}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        return from_mapping(annotation, value, where=where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
            return tuple(items)
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(
                    f"{where}: expected a list of {len(args)} items, got {len(value)}"
                )
            return tuple(
                _convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))
            )
        item_type = args[0] if args else Any
        items = [_convert(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_type, value_type = args if args else (Any, Any)
        return {
            _convert(k, key_type, f"{where}"): _convert(v, value_type, f"{where}.{k}")
            for k, v in value.items()
        }
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if annotation is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"{where}: expected a path, got {value!r}")
    raise TypeError(f"{where}: unsupported annotation {annotation!r}")


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if typing.get_origin(annotation) in (tuple, list):
        return "a list"
    return getattr(annotation, "__name__", str(annotation))
