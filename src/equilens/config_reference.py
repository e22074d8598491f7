"""The documentation of configuration dataclasses, read from the dataclasses.

Every configuration field is documented once, by a ``:param name: text``
line in its dataclass's docstring. This module reads those lines and turns
them into:

- :func:`config_fields`: every field of a configuration, nested sections
  flattened to dotted paths (``training.epochs``), with its type, default and
  documentation;
- :func:`undocumented_fields`, :func:`stale_docs`: the fields without
  documentation and the docs of fields that do not exist (a test keeps both
  empty);
- :func:`commented_yaml`: a configuration with every resolved value, each
  preceded by its documentation (``equilens config show NAME``);
- :func:`markdown_reference`: the reference in ``docs/configuration.md``
  (``equilens config reference`` writes it; a test fails when it is stale).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Type

import yaml

_PARAM = re.compile(r"^\s*:param\s+(\w+):\s*(.*)$")


class FieldDoc(NamedTuple):
    """One configuration field: its dotted ``path``, ``type``, ``default`` (as
    YAML text, ``required`` when there is none) and ``doc``."""

    path: str
    type: str
    default: str
    doc: str


def field_docs(cls: type) -> Dict[str, str]:
    """``{field: documentation}`` from the ``:param field:`` lines of
    ``cls``'s docstring (continuation lines joined)."""
    docs: Dict[str, str] = {}
    current: Optional[str] = None
    for line in inspect.cleandoc(cls.__doc__ or "").splitlines():
        match = _PARAM.match(line)
        if match:
            current = match.group(1)
            docs[current] = match.group(2).strip()
        elif current is not None and line.startswith((" ", "\t")) and line.strip():
            docs[current] += " " + line.strip()
        else:
            current = None
    return docs


def summary(cls: type) -> str:
    """The first paragraph of ``cls``'s docstring, on one line."""
    text = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
    return " ".join(text.split())


def _section(annotation: Any) -> Optional[type]:
    """The dataclass of a section annotation (``X`` or ``Optional[X]``), or None."""
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return annotation
    members = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(members) == 1 and isinstance(members[0], type) and dataclasses.is_dataclass(members[0]):
        return members[0]
    return None


def _type_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return " | ".join(_type_text(a) for a in args)
    if origin in (tuple, list):
        return f"list of {_type_text(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type_text(args[1])}" if args else "mapping"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def _yaml(value: Any) -> str:
    text = yaml.safe_dump(_plain(value), default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").strip()


def _default(field: dataclasses.Field) -> Tuple[bool, Any]:
    if field.default is not dataclasses.MISSING:
        return True, field.default
    if field.default_factory is not dataclasses.MISSING:
        return True, field.default_factory()
    return False, None


def config_fields(cls: type, prefix: str = "") -> Iterator[FieldDoc]:
    """Every field of the configuration ``cls``, sections flattened."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        path = prefix + field.name
        annotation = hints[field.name]
        has_default, default = _default(field)
        section = _section(annotation)
        doc = docs.get(field.name, "")
        if section is not None:
            text = "section" if has_default and default is not None else "null"
            if not has_default:
                text = "required"
            yield FieldDoc(path, f"section ({section.__name__})", text, doc)
            yield from config_fields(section, prefix=path + ".")
            continue
        text = _yaml(default) if has_default else "required"
        yield FieldDoc(path, _type_text(annotation), text, doc)


def undocumented_fields(cls: type) -> List[str]:
    """The dotted paths of the fields of ``cls`` (and its sections) without a doc."""
    return [f.path for f in config_fields(cls) if not f.doc]


def stale_docs(cls: type) -> List[str]:
    """``:param`` docs of ``cls`` (and its sections) that name no field."""
    stale = []
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    stale += [f"{cls.__name__}.{name}" for name in field_docs(cls) if name not in names]
    for name in names:
        section = _section(hints[name])
        if section is not None:
            stale += stale_docs(section)
    return stale


def commented_yaml(instance: Any, indent: str = "") -> str:
    """``instance`` (a configuration dataclass) as YAML with every value
    resolved, each key preceded by its documentation as a comment."""
    lines: List[str] = []
    docs = field_docs(type(instance))
    for field in dataclasses.fields(instance):
        if not field.init:
            continue
        for comment in _wrap(docs.get(field.name, ""), 96 - len(indent)):
            lines.append(f"{indent}# {comment}")
        value = getattr(instance, field.name)
        if dataclasses.is_dataclass(value):
            lines.append(f"{indent}{field.name}:")
            lines.append(commented_yaml(value, indent + "  "))
        else:
            lines.append(f"{indent}{field.name}: {_yaml(value)}")
    return "\n".join(lines)


def _wrap(text: str, width: int) -> List[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def markdown_reference(sections: Sequence[Tuple[str, str, Type[Any]]]) -> str:
    """The configuration reference: for each ``(title, how it is used,
    dataclass)``, its summary and a table of every field."""
    out = [
        "# Configuration reference",
        "",
        "Generated from the configuration dataclasses by `equilens config reference`"
        " (do not edit by hand: `tests/test_config_reference.py` fails when this file"
        " is stale). `equilens config show NAME` prints a built-in configuration with"
        " every resolved value and these docs.",
        "",
    ]
    for title, usage, cls in sections:
        out += [f"## {title}", "", f"{summary(cls)} Used by: {usage}.", ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for field in config_fields(cls):
            cells = [f"`{field.path}`", field.type, f"`{field.default}`", field.doc]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
    return "\n".join(out)
