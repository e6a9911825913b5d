"""Typed configuration: YAML files and ``key=value`` overrides into frozen dataclasses.

Every setting of the recipe lives in a frozen dataclass with a default. A YAML
file sets any subset of the fields; command-line overrides (``optim.lr=1e-3``,
dotted for nested dataclasses, values parsed as YAML) come last. Unknown keys
and values of the wrong type raise :class:`~asr_trainer.errors.UserError`
naming the key and its source, before any work starts.

Example::

    @dataclass(frozen=True)
    class Optim:
        lr: float = 1e-3

    @dataclass(frozen=True)
    class Train:
        epochs: int = 10
        optim: Optim = Optim()

    cfg = load_config(Train, "conf/train.yaml", ["optim.lr=3e-4"])
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar

import yaml

from asr_trainer.default_conf import find_config
from asr_trainer.errors import UserError

T = TypeVar("T")


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build ``cls`` from the YAML file ``path`` (optional) and ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml(path)
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(data, key, value)
    source = str(path) if path is not None else "overrides"
    return from_dict(cls, data, source)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; an empty file is an empty mapping. A relative ``conf/...`` path missing from
    the working directory is read from the package's defaults (:func:`~asr_trainer.default_conf.find_config`)."""
    p = find_config(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"cannot parse config {p}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config {p} must be a mapping of settings, got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """``"a.b=3"`` -> ``("a.b", 3)``; the value is parsed as YAML."""
    if "=" not in item:
        raise UserError(f"override {item!r} must look like key=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def from_dict(cls: type[T], data: dict[str, Any], source: str = "config", prefix: str = "") -> T:
    """Validate ``data`` against the dataclass ``cls`` and build it."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(
            f"{source}: unknown setting(s) {', '.join(prefix + k for k in unknown)}; "
            f"known: {', '.join(sorted(prefix + k for k in fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _coerce(hints[name], value, source, prefix + name) for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except (ValueError, UserError) as e:  # __post_init__ validation
        raise UserError(f"{source}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML-serialisable dict of a config dataclass (nested included)."""
    return dataclasses.asdict(cfg)


def _coerce(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source, key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, source, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[-1])
    if origin is Literal:
        if value not in args:
            raise UserError(f"{source}: {key} must be one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{source}: {key} must be a list, got {value!r}")
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise UserError(f"{source}: {key} must be true or false, got {value!r}")
    if tp is int and isinstance(value, bool):
        raise UserError(f"{source}: {key} must be an integer, got {value!r}")
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise UserError(f"{source}: {key} must be of type {tp.__name__}, got {value!r}")
    return value


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"override {key}: {part} is not a group of settings")
        node = child
    node[parts[-1]] = value
