"""Checkpoint files: written atomically, read back with a clear message when damaged; the training log trimmed back
to the checkpoint a run resumes from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from accompgen.core.errors import UserError
from accompgen.core.files import write_atomic, write_text_atomic


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """A crash mid-save leaves the previous checkpoint whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: torch.save(state, f))


def load_checkpoint(
    path: Path, made_with: dict[str, Any], mismatch: str, map_location: str | torch.device | None = None
) -> dict[str, Any] | None:
    """The checkpoint's state, or None when there is none yet. `made_with` holds what the run depends on, keyed as
    saved in the state: a checkpoint made with anything else is refused with "PATH `mismatch`"."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for a damaged file
        raise UserError(f"{path} is not a readable checkpoint ({err}); delete it to start over") from err
    if any(state.get(key) != value for key, value in made_with.items()):
        raise UserError(f"{path} {mismatch}")
    return state


def forget_steps_after(log: Path, step: int) -> None:
    """A run starting at `step` (0, or its checkpoint's) runs again the steps an earlier run logged after it: drop
    those records (and a line cut off mid-write) so that every step is logged once."""
    if not log.is_file():
        return
    lines = log.read_text().splitlines(keepends=True)
    kept = [line for line in lines if _logged_step(line) <= step]
    if len(kept) < len(lines):
        write_text_atomic(log, "".join(kept))


def _logged_step(line: str) -> float:
    try:
        return json.loads(line).get("step", 0)
    except json.JSONDecodeError:
        return float("inf")
