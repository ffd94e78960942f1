"""`/accompgen/generate` arguments: `<input_path> <start_s> <duration_s> [key value]...`, checked one by one.

Every problem becomes a JobError naming the argument, what it got and what it takes; nothing here touches
the file system beyond what the checks need.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from accompgen_bridge.errors import BAD_ARGUMENT, JobError

MAX_VARIATIONS = 8
QUALITIES = ("full", "preview")


@dataclass(frozen=True)
class GenerateArgs:
    """A generate request as received and checked; None leaves the choice to the bundle's defaults."""

    input_path: str
    start_s: float
    duration_s: float
    seed: int  # drawn at random when the request gives none, so every job can be reproduced
    cfg_scale: float | None = None
    temperature: float | None = None
    top_k: int | None = None
    variations: int = 1
    quality: str = "full"
    sample_rate: int | None = None
    output_dir: str | None = None
    reply_port: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JobError(BAD_ARGUMENT, f"{name} must be a number, got {_show(value)}")
    if value != value or value in (float("inf"), float("-inf")):
        raise JobError(BAD_ARGUMENT, f"{name} must be a finite number, got {value}")
    return float(value)


def _integer(name: str, value: Any) -> int:
    number = _number(name, value)
    if not number.is_integer():  # Max and some DAWs send every number as a float
        raise JobError(BAD_ARGUMENT, f"{name} must be a whole number, got {value}")
    return int(number)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise JobError(BAD_ARGUMENT, f"{name} must be a non-empty string, got {_show(value)}")
    return value


def _ranged(convert: Callable[[str, Any], Any], low: float, high: float) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        converted = convert(name, value)
        if not low <= converted <= high:
            raise JobError(BAD_ARGUMENT, f"{name} must lie in [{low:g}, {high:g}], got {converted:g}")
        return converted

    return check


def _quality(name: str, value: Any) -> str:
    text = _text(name, value)
    if text not in QUALITIES:
        raise JobError(BAD_ARGUMENT, f"{name} must be one of {', '.join(QUALITIES)}, got {text!r}")
    return text


KEYS: dict[str, Callable[[str, Any], Any]] = {
    "seed": _ranged(_integer, 0, 2**31 - 1),
    "cfg_scale": _ranged(_number, 0.0, 20.0),
    "temperature": _ranged(_number, 0.0, 5.0),
    "top_k": _ranged(_integer, 0, 1 << 20),
    "variations": _ranged(_integer, 1, MAX_VARIATIONS),
    "quality": _quality,
    "sample_rate": _ranged(_integer, 8000, 384000),
    "output_dir": _text,
    "reply_port": _ranged(_integer, 1, 65535),
}


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def parse_generate(args: list[Any]) -> GenerateArgs:
    if len(args) < 3:
        raise JobError(BAD_ARGUMENT, "generate takes <input_path> <start_s> <duration_s> [key value]...")
    path, start, duration, *pairs = args
    if len(pairs) % 2:
        raise JobError(BAD_ARGUMENT, f"key {_show(pairs[-1])} has no value: options come as key value pairs")
    options: dict[str, Any] = {}
    for key, value in zip(pairs[0::2], pairs[1::2], strict=True):
        if key not in KEYS:
            raise JobError(BAD_ARGUMENT, f"unknown key {_show(key)}: use {', '.join(KEYS)}")
        if key in options:
            raise JobError(BAD_ARGUMENT, f"key {key} is given twice")
        options[key] = KEYS[key](key, value)
    options.setdefault("seed", random.randrange(2**31))
    return GenerateArgs(
        input_path=_text("input_path", path),
        start_s=_number("start_s", start),
        duration_s=_number("duration_s", duration),
        **options,
    )
