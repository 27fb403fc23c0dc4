"""Configuration defined once: dataclasses, loaded from YAML, overridden from the command line.

`load_config(Config, "configs/x.yaml", ["a.b=3", "c=text"])` builds a (possibly nested) dataclass: the YAML gives
values, each override `dotted.name=value` replaces one (parsed as YAML, so `3`, `0.5`, `true`, `[a, b]` have their
types), and the dataclass defaults fill the rest. Unknown names are errors that list the known ones.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigLoader(yaml.SafeLoader):
    """YAML with YAML 1.2's booleans: only true/false. YAML 1.1 also reads yes/no/on/off as booleans, which turns
    `mixed_precision=no` into False."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=ConfigLoader)  # a SafeLoader: no arbitrary objects


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _nested_dataclass(annotation: Any) -> type | None:
    if dataclasses.is_dataclass(annotation):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        inner = [a for a in typing.get_args(annotation) if dataclasses.is_dataclass(a)]
        return inner[0] if inner else None
    return None


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    """Bring YAML scalars to the field's type where the conversion is unambiguous (int -> float, str -> Path)."""
    if value is None:
        return None
    nested = _nested_dataclass(annotation)
    if nested is not None and isinstance(value, dict):
        return from_dict(nested, value, prefix=f"{name}.")
    if annotation in (float, float | None) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (float, float | None) and isinstance(value, str):
        # YAML 1.1 reads `1e-3` (no dot) as a string; people write learning rates that way.
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} must be a number") from None
    if annotation in (Path, Path | None) and isinstance(value, str):
        return Path(value)
    origin = typing.get_origin(annotation)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin is dict and isinstance(value, dict):
        return dict(value)
    return value


def from_dict(cls: type[T], values: dict, prefix: str = "") -> T:
    """Build dataclass `cls` from a nested dict; unknown keys are an error naming the known ones."""
    if not isinstance(values, dict):
        raise ValueError(f"{prefix or 'config'} must be a mapping, got {values!r}")
    types_ = _field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise ValueError(f"unknown config keys {[prefix + k for k in unknown]}; known: {sorted(types_)}")
    kwargs = {name: _coerce(value, types_[name], prefix + name) for name, value in values.items()}
    return cls(**kwargs)


def to_dict(config: Any) -> dict:
    """The config as plain YAML-able data (paths as strings)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Apply `dotted.name=value` overrides to a nested dict (values parsed as YAML)."""
    values = dict(values)
    for override in overrides:
        name, sep, raw = override.partition("=")
        if not sep or not name:
            raise ValueError(f"override {override!r} must look like name=value")
        keys = name.split(".")
        node = values
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[keys[-1]] = parse_yaml(raw)
    return values


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Dataclass `cls` from an optional YAML file and `name=value` overrides."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        values = parse_yaml(path.read_text()) or {}
    return from_dict(cls, apply_overrides(values, overrides or []))
