"""Where the bridge keeps its state, and how clients find a running bridge (its `bridge.json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import platformdirs

DEFAULT_OSC_PORT = 9000
DEFAULT_TCP_PORT = 9001
ADDRESS_FILE = "bridge.json"
LOG_FILE = "bridge.log"  # what `serve` logs, also when a DAW started it without a console


def default_state_dir() -> Path:
    return Path(platformdirs.user_state_dir("accompgen", appauthor=False))


def read_address(state_dir: Path) -> dict[str, Any] | None:
    """{pid, host, osc_port, tcp_port, version} of the bridge serving `state_dir`, if one wrote it."""
    try:
        address: dict[str, Any] = json.loads((state_dir / ADDRESS_FILE).read_text())
        return address
    except (OSError, ValueError):
        return None
