"""`--set KEY=VALUE`: one field of a nested settings dataclass changed from the command line.

Keys are dotted paths through dataclass fields and dict keys (`codec.semantic_weight`, `stages.coarse.steps`);
values are YAML (`1.0`, `2500`, `[52, 53]`, `null`) and keep the type of the value they replace, so a run's
recorded settings read the same whichever way a number was typed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import yaml

from accompgen.core.errors import UserError

T = TypeVar("T")


def override(settings: T, assignment: str) -> T:
    """`settings` with the field that `assignment` ("a.b.c=VALUE") names set to VALUE."""
    key, equals, text = assignment.partition("=")
    key = key.strip()
    if not equals or not key:
        raise UserError(f"--set takes KEY=VALUE (e.g. codec.semantic_weight=1.0), not {assignment!r}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"--set {key}: {text!r} is not a value ({err.__class__.__name__})") from err
    result: T = _replaced(settings, key.split("."), value, key)
    return result


def _replaced(node: Any, path: list[str], value: Any, key: str) -> Any:
    name, rest = path[0], path[1:]
    if isinstance(node, dict):
        names = list(node)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        names = [f.name for f in dataclasses.fields(node)]
    else:
        raise UserError(f"--set {key}: {name!r} is inside a plain value, which has no fields")
    if name not in names:
        raise UserError(f"--set {key}: no {name!r} here; choose one of {', '.join(names)}")
    current = node[name] if isinstance(node, dict) else getattr(node, name)
    new = _replaced(current, rest, value, key) if rest else _as_type_of(current, value, key)
    if isinstance(node, dict):
        return {**node, name: new}
    try:
        return dataclasses.replace(node, **{name: new})
    except (TypeError, ValueError) as err:
        raise UserError(f"--set {key}: {err}") from err


def _as_type_of(current: Any, value: Any, key: str) -> Any:
    """`value` in the type of `current`: an int becomes a float where a float was, a list a tuple."""
    if isinstance(current, dict) or (dataclasses.is_dataclass(current) and not isinstance(current, type)):
        raise UserError(f"--set {key}: a group of settings; set its fields one at a time ({key}.FIELD=VALUE)")
    if current is None or value is None or type(value) is type(current):
        return value
    if isinstance(current, float) and type(value) is int:
        return float(value)
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    raise UserError(f"--set {key}: {value!r} is not a {type(current).__name__} like {current!r}")
