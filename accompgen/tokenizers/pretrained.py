"""Loading transformers models by hub id or local directory, with an error a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers.utils import logging as hf_logging

from accompgen.core.errors import UserError


def load_pretrained(model_class: Any, name_or_dir: str | Path, what: str) -> Any:
    """`model_class.from_pretrained(name_or_dir)`: a hub id (downloaded once into the cache) or a directory
    written by `save_pretrained`."""
    hf_logging.disable_progress_bar()  # our own progress display owns the terminal
    try:
        return model_class.from_pretrained(str(name_or_dir))
    except OSError as err:
        raise UserError(f"cannot load {what} from {name_or_dir}: {err}") from err


def save_pretrained(model: Any, directory: Path) -> None:
    """`model.save_pretrained(directory)`, quietly: our own progress display owns the terminal."""
    hf_logging.disable_progress_bar()
    model.save_pretrained(directory)
