"""One generate request, typed, from the wire to the job store to the engine.

`/accompgen/generate <input_path> <start_s> <duration_s> [key value]...` is checked one argument at a time; every
problem becomes a JobError that names the argument, what it got (shortened) and what it takes. The seed is drawn
here, once, when the request gives none, so that every job can be reproduced from what the store holds.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from accompgen.core.decoding import REQUEST_LIMITS
from accompgen_bridge.errors import BAD_ARGUMENT, JobError, shown

QUALITIES = ("full", "preview")
MAX_PATH_BYTES = 4096  # longer than any path a file system takes


@dataclass(frozen=True)
class GenerateRequest:
    """A checked request; None leaves the choice to the bundle's defaults."""

    input_path: str
    start_s: float
    duration_s: float
    seed: int
    cfg_scale: float | None = None
    temperature: float | None = None
    top_k: int | None = None
    variations: int = 1
    quality: str = "full"
    sample_rate: int | None = None
    output_dir: str | None = None
    reply_port: int | None = None
    bundle: str | None = None  # a served bundle's name; None: the bridge's default (the job store holds the name)
    local: bool = False  # sent with the bridge's local key (bridge.json): this machine's user, output_dir not confined

    @property
    def preview(self) -> bool:
        return self.quality == "preview"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> GenerateRequest:
        return cls(**json.loads(text))


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JobError(BAD_ARGUMENT, f"{name} must be a number, got {shown(value)}")
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
        raise JobError(BAD_ARGUMENT, f"{name} must be a non-empty string, got {shown(value)}")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise JobError(BAD_ARGUMENT, f"{name} is longer than {MAX_PATH_BYTES} bytes: {shown(value)}")
    return value


def _ranged(convert: Callable[[str, Any], Any], low: float, high: float) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        converted = convert(name, value)
        if not low <= converted <= high:
            raise JobError(BAD_ARGUMENT, f"{name} must lie in [{low:g}, {high:g}], got {converted:g}")
        return converted

    return check


def _limited(name: str, convert: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return _ranged(convert, *REQUEST_LIMITS[name])


def _quality(name: str, value: Any) -> str:
    text = _text(name, value)
    if text not in QUALITIES:
        raise JobError(BAD_ARGUMENT, f"{name} must be one of {', '.join(QUALITIES)}, got {shown(text)}")
    return text


KEYS: dict[str, Callable[[str, Any], Any]] = {
    "seed": _limited("seed", _integer),
    "cfg_scale": _limited("cfg_scale", _number),
    "temperature": _limited("temperature", _number),
    "top_k": _limited("top_k", _integer),
    "variations": _limited("variations", _integer),
    "quality": _quality,
    "sample_rate": _ranged(_integer, 8000, 384000),
    "output_dir": _text,
    "reply_port": _ranged(_integer, 1, 65535),
    "bundle": _text,
}


def draw_seed() -> int:
    low, high = REQUEST_LIMITS["seed"]
    return random.randint(int(low), int(high))


def parse_generate(args: list[Any]) -> GenerateRequest:
    if len(args) < 3:
        raise JobError(BAD_ARGUMENT, "generate takes <input_path> <start_s> <duration_s> [key value]...")
    path, start, duration, *pairs = args
    if len(pairs) % 2:
        raise JobError(BAD_ARGUMENT, f"key {shown(pairs[-1])} has no value: options come as key value pairs")
    options: dict[str, Any] = {}
    for key, value in zip(pairs[0::2], pairs[1::2], strict=True):
        if not isinstance(key, str) or key not in KEYS:  # an OSC array or blob is no key either
            raise JobError(BAD_ARGUMENT, f"unknown key {shown(key)}: use {', '.join(KEYS)}")
        if key in options:
            raise JobError(BAD_ARGUMENT, f"key {key} is given twice")
        options[key] = KEYS[key](key, value)
    options.setdefault("seed", draw_seed())
    return GenerateRequest(
        input_path=_text("input_path", path),
        start_s=_number("start_s", start),
        duration_s=_number("duration_s", duration),
        **options,
    )
