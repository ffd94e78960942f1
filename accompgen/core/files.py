"""Files written whole or not at all: a reader, a resumed run or one after a crash sees the old file or the new one,
never half of one, and no partial file stays behind."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

REPLACE_ATTEMPTS = 50  # x REPLACE_PAUSE_S: how long a reader on Windows may hold the file
REPLACE_PAUSE_S = 0.02


def write_atomic(path: Path, write: Callable[[IO[bytes]], object], private: bool = False) -> None:
    """`write(f)` fills a binary file beside `path` that then replaces it. `private`: readable by this user only (0600),
    for files that hold a key; otherwise the permissions of a plain write (tempfile's are always 0600)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        with os.fdopen(os.open(tmp, flags, 0o600 if private else 0o666), "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str, private: bool = False) -> None:
    """UTF-8 whatever the locale: model cards and reports carry names such as Fréchet."""
    write_atomic(path, lambda f: f.write(text.encode("utf-8")), private=private)


def _replace(tmp: Path, path: Path) -> None:
    """On Windows, replacing a file that a reader holds open fails with a sharing violation (PermissionError); the
    reader (a ReaScript polling a status file) lets go within milliseconds, so the replace is tried again for up
    to a second before giving up."""
    for attempt in range(REPLACE_ATTEMPTS):
        try:
            os.replace(tmp, path)
            return
        except PermissionError:
            if attempt == REPLACE_ATTEMPTS - 1:
                raise
            time.sleep(REPLACE_PAUSE_S)
