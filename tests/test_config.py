"""Config dataclasses from YAML: unknown keys and wrong types are named."""

from dataclasses import dataclass, field
from typing import Dict, Literal, Optional, Tuple

import pytest

from equilens.config import from_mapping, from_yaml, to_mapping
from equilens.descriptors import DescriptorConfig
from equilens.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    width: int = 4
    activation: Literal["silu", "tanh"] = "silu"


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    rates: Tuple[float, ...] = (1e-3,)
    seed: Optional[int] = None
    extra: Dict[str, float] = field(default_factory=dict)


def test_valid_mapping_builds_nested_dataclasses():
    cfg = from_mapping(Outer, {"name": "a", "inner": {"width": 8}, "rates": [1, 0.5], "seed": 3})
    assert cfg == Outer("a", Inner(8), (1.0, 0.5), 3)
    assert to_mapping(cfg)["inner"] == {"width": 8, "activation": "silu"}


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"name": "a", "nmae": 1}, r"unknown key 'nmae' in Outer; accepted keys are: extra, inner"),
        ({"name": "a", "inner": {"widht": 2}}, r"config.inner: unknown key 'widht' in Inner"),
        ({}, "missing required key 'name'"),
        ({"name": 3}, r"config.name: expected a string, got 3"),
        ({"name": "a", "inner": {"width": 2.5}}, r"config.inner.width: expected an integer"),
        ({"name": "a", "inner": {"activation": "relu"}}, r"expected one of 'silu', 'tanh'"),
        ({"name": "a", "rates": 0.1}, r"config.rates: expected a list"),
        ({"name": "a", "seed": "x"}, r"config.seed: expected int or null, got 'x'"),
        ({"name": "a", "inner": {"width": True}}, r"expected an integer, got True"),
    ],
)
def test_invalid_mappings_are_named(mapping, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(Outer, mapping)


def test_yaml_file(tmp_path):
    path = tmp_path / "descriptors.yaml"
    path.write_text("kind: lambda_soap\npreset: small\nlambda_max: 2\nspecies: [8, 1]\n")
    cfg = from_yaml(DescriptorConfig, path)
    assert cfg.kind == "lambda_soap" and cfg.species == (1, 8)
    path.write_text("kind: soap\ncutof: 4.0\n")
    with pytest.raises(ConfigError, match=r"descriptors.yaml: unknown key 'cutof'"):
        from_yaml(DescriptorConfig, path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        from_yaml(DescriptorConfig, path)
    with pytest.raises(ConfigError, match="does not exist"):
        from_yaml(DescriptorConfig, tmp_path / "missing.yaml")


def test_equivariant_features_take_one_width_or_one_per_lambda():
    from equilens.models.equivariant.config import FeaturesConfig

    assert from_mapping(FeaturesConfig, {"n_components": 16}).components() == (16, 16, 16)
    wide = from_mapping(FeaturesConfig, {"n_components": [64, 16, 8]})
    assert wide.n_components == (64, 16, 8) and wide.components() == (64, 16, 8)
    assert to_mapping(wide)["n_components"] == [64, 16, 8]
    with pytest.raises(ConfigError, match=r"one number per o3_lambda 0..2 \(3\), got \[64, 16\]"):
        from_mapping(FeaturesConfig, {"n_components": [64, 16]})
    with pytest.raises(ConfigError, match=r"n_components must be >= 1, got \(8, 0, 4\)"):
        from_mapping(FeaturesConfig, {"n_components": [8, 0, 4]})
    with pytest.raises(ConfigError, match="expected int or a list"):
        from_mapping(FeaturesConfig, {"n_components": "many"})
