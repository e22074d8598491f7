"""Every configuration field is documented once, in its dataclass; the
reference (docs/configuration.md) and `equilens config show` come from there."""

from pathlib import Path

import pytest
import yaml

from equilens.cli import main
from equilens.cli.config import config_class, sections
from equilens.config import builtin_configs, from_mapping, load_yaml
from equilens.config_reference import markdown_reference, stale_docs, undocumented_fields

ROOT = Path(__file__).resolve().parents[1]


def test_every_field_of_every_configuration_is_documented():
    missing = {cls.__name__: undocumented_fields(cls) for _, _, cls in sections()}
    assert not {name: fields for name, fields in missing.items() if fields}
    stale = [doc for _, _, cls in sections() for doc in stale_docs(cls)]
    assert not stale, stale


def test_the_reference_is_up_to_date():
    written = (ROOT / "docs" / "configuration.md").read_text()
    assert written == markdown_reference(sections()), (
        "docs/configuration.md is stale: run `equilens config reference --output "
        "docs/configuration.md`"
    )


@pytest.mark.parametrize("name", sorted(builtin_configs()))
def test_config_show_resolves_every_default_and_reads_back(name, capsys):
    assert main(["config", "show", name]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# {name}: ")
    shown = yaml.safe_load(text)
    cls = config_class(name, load_yaml(name))
    # every field is written out, and the text is a configuration equal to the file's
    assert from_mapping(cls, shown, "shown") == from_mapping(cls, load_yaml(name), name)
    assert "# " in text.split("\n", 2)[1]  # each value comes with its documentation


def test_config_list_names_every_builtin(capsys):
    assert main(["config", "list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(builtin_configs())


def test_a_file_of_no_known_kind_is_named(tmp_path, capsys):
    path = tmp_path / "mystery.yaml"
    path.write_text("name: x\n")
    assert main(["config", "show", str(path)]) == 2
    assert "not a training configuration" in capsys.readouterr().err
