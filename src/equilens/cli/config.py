"""``equilens config list | show NAME | reference``: the configurations and their docs."""

from __future__ import annotations

import argparse

#: configurations other than training tasks: the name prefix of their
#: built-in files -> (section title, the command that reads them, dataclass)
KINDS = {
    "study": ("Study", "`equilens study CONFIG`", "equilens.study.config:StudyConfig"),
    "relax": (
        "Relaxation benchmark",
        "`equilens relax CONFIG`",
        "equilens.relax.config:RelaxConfig",
    ),
    "descriptors": (
        "Descriptors",
        "`equilens descriptors FILE --config CONFIG`",
        "equilens.descriptors.config:DescriptorConfig",
    ),
    "filter": (
        "Data filter",
        "`equilens data filter IN OUT --config CONFIG`",
        "equilens.data.filters:FilterConfig",
    ),
    "generate_iron_water": (
        "Generator: iron/water",
        "`equilens generate iron-water --config CONFIG`",
        "equilens.data.generate.iron_water:IronWaterConfig",
    ),
    "generate_water_tensors": (
        "Generator: water tensors",
        "`equilens generate water-tensors --config CONFIG`",
        "equilens.data.generate.water_tensors:WaterTensorsConfig",
    ),
    "generate_heo": (
        "Generator: high-entropy oxides",
        "`equilens generate heo --config CONFIG`",
        "equilens.data.generate.heo:HeoConfig",
    ),
    "generate_elements": (
        "Generator: many elements",
        "`equilens generate elements --config CONFIG`",
        "equilens.data.generate.elements:ElementsConfig",
    ),
}


def register(commands) -> None:
    parser = commands.add_parser(
        "config",
        help="list the built-in configurations, show one with every default, write the reference",
        description=(
            "'list' names the built-in configurations and what reads them; 'show NAME' prints "
            "a configuration (built-in name or YAML file) with every value resolved and the "
            "documentation of each field; 'reference' writes the reference of every "
            "configuration field (docs/configuration.md)."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    actions.add_parser("list", help="the built-in configurations").set_defaults(handler=run_list)
    show = actions.add_parser("show", help="one configuration, every default resolved")
    show.add_argument("name", help="a built-in configuration name or a YAML file")
    show.set_defaults(handler=run_show)
    reference = actions.add_parser("reference", help="the reference of every configuration")
    reference.add_argument("--output", help="write it to this file (default: print it)")
    reference.set_defaults(handler=run_reference)


def config_class(name: str, mapping: dict) -> type:
    """The dataclass of a configuration file: its ``task`` (the registry), else
    the kind its built-in name starts with (:data:`KINDS`)."""
    from ..errors import ConfigError
    from ..models.registry import resolve, task_family

    if "task" in mapping:
        entry = task_family(mapping["task"], where=f"{name}.task")
        assert entry.config is not None
        return resolve(entry.config)
    stem = name.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")
    for prefix, (_, _, reference) in sorted(KINDS.items(), key=lambda item: -len(item[0])):
        if stem == prefix or stem.startswith(prefix + "_"):
            return resolve(reference)
    raise ConfigError(
        f"{name}: not a training configuration (no 'task') and not named after a kind "
        f"({', '.join(KINDS)}); name it e.g. study_<name>.yaml"
    )


def sections():
    """``(title, usage, dataclass)`` of every configuration, for the reference."""
    from ..models.registry import FAMILIES, resolve

    result = []
    for family in FAMILIES:
        if family.config is not None:
            usage = f"`equilens train CONFIG` with `task: {family.task}`"
            if family.finetune:
                usage += " (and `equilens finetune CONFIG`)"
            result.append((f"Training: task {family.task}", usage, resolve(family.config)))
    for title, usage, reference in KINDS.values():
        result.append((title, usage, resolve(reference)))
    return result


def run_list(args: argparse.Namespace) -> int:
    from ..config import builtin_configs, load_yaml

    for name, path in builtin_configs().items():
        cls = config_class(name, load_yaml(path))
        first = next((line for line in path.read_text().splitlines() if line.startswith("#")), "")
        print(f"{name:24s} {cls.__name__:18s} {first.lstrip('# ')}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ..config import from_mapping, load_yaml
    from ..config_reference import commented_yaml, summary

    mapping = load_yaml(args.name)
    cls = config_class(str(args.name), mapping)
    config: object = from_mapping(cls, mapping, where=str(args.name))
    print(f"# {args.name}: {cls.__name__}. {summary(cls)}")
    print(commented_yaml(config))
    return 0


def run_reference(args: argparse.Namespace) -> int:
    from ..config_reference import markdown_reference
    from ..storage import atomic_write

    text = markdown_reference(sections())
    if args.output:
        with atomic_write(args.output, "w") as handle:
            handle.write(text)
        print(f"configuration reference -> {args.output}")
    else:
        print(text)
    return 0
