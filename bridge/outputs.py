"""Where a job's WAVs may go, writing them all or none, and forgetting old ones.

A network peer chooses `output_dir`, so the bridge confines it: the state directory's outputs/ folder, or a folder
inside one the user allowed when starting the bridge (`--allow-output-dir`). A request that carries the bridge's
local key (written to bridge.json, readable by the user who started the bridge only) comes from that user on this
machine, such as the ReaScripts through `accompgen-bridge submit`: it may name any folder, a REAPER project's media
folder for one. The check follows symlinks, and is made again when the job writes, so a link swapped in meanwhile
cannot lead elsewhere. Folders are created when the job writes, not when it is submitted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accompgen_bridge.audio import write_wav
from accompgen_bridge.errors import OUTPUT, JobError, shown

OUTPUT_PATTERN = "*-accomp-*.wav"  # what the bridge writes; retention never touches anything else


@dataclass(frozen=True)
class OutputPolicy:
    default: Path  # the state directory's outputs/
    allowed: tuple[Path, ...] = ()  # folders given with --allow-output-dir

    @classmethod
    def create(cls, default: Path, allowed: Iterable[Path] = ()) -> OutputPolicy:
        return cls(default.resolve(), tuple(Path(p).expanduser().resolve() for p in allowed))

    def directory(self, requested: str | None, local: bool = False) -> Path:
        """The folder a job writes into, checked; raises JobError(output) for one outside the allowed roots, unless
        the request came from this machine's user (`local`: it carried the key only they can read)."""
        if requested is None:
            return self.default
        path = Path(requested)
        if not path.is_absolute():
            raise JobError(OUTPUT, f"output_dir must be an absolute path, got {shown(requested)}")
        resolved = path.resolve()
        roots = (self.default, *self.allowed)
        if not local and not any(resolved == root or root in resolved.parents for root in roots):
            raise JobError(
                OUTPUT,
                f"output_dir {shown(requested)} lies outside the folders this bridge writes to; start it with "
                "--allow-output-dir FOLDER to allow one",
            )
        existing = next(p for p in (resolved, *resolved.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise JobError(
                OUTPUT, f"output_dir {shown(requested)} cannot be written ({existing} is not a writable folder)"
            )
        return resolved


def write_outputs(
    directory: Path, stem: str, job_id: str, audio: np.ndarray, rate: int, seeds: tuple[int, ...]
) -> list[str]:
    """One WAV per variation, named by job and seed; all of them or, after an error, none."""
    paths: list[str] = []
    try:
        for row, seed in zip(audio, seeds, strict=True):
            paths.append(str(write_wav(directory / f"{stem}-accomp-{job_id[:8]}-seed{seed}.wav", row, rate)))
    except JobError:
        for path in paths:
            Path(path).unlink(missing_ok=True)
        raise
    return paths


def remove_old_outputs(folder: Path, keep_days: float) -> int:
    """Delete the bridge's own WAVs in `folder` older than `keep_days`; returns how many."""
    cutoff = time.time() - keep_days * 86400
    removed = 0
    for path in folder.glob(OUTPUT_PATTERN) if folder.is_dir() else ():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:  # in use by a DAW (Windows) or gone meanwhile: try again next time
            continue
    return removed
