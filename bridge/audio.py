"""Audio in and out: check and read a region as mono, write WAV files that appear whole or not at all."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import soundfile as sf

from accompgen.core.files import write_atomic
from accompgen_bridge.errors import (
    BAD_AUDIO,
    BAD_REGION,
    EMPTY_AUDIO,
    MISSING_FILE,
    OUTPUT,
    UNREADABLE,
    JobError,
    shown,
)

REGION_TOLERANCE_S = 0.001  # a region may end this much past the file's end (rounding of item lengths)
MIN_DURATION_S = 0.05  # shorter regions hold less than four acoustic frames: nothing to accompany


def probe(path: str | Path) -> tuple[int, float]:
    """(sample rate, duration in seconds) of an audio file, with the error a user can act on."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as err:
        raise JobError(MISSING_FILE, f"{shown(str(path))} does not exist") from err
    except OSError as err:  # a name too long, a folder without permission, ...
        raise JobError(MISSING_FILE, f"{shown(str(path))} cannot be opened: {err.strerror}") from err
    if stat.S_ISDIR(mode):
        raise JobError(UNREADABLE, f"{shown(str(path))} is a folder, not an audio file")
    if not stat.S_ISREG(mode):
        raise JobError(UNREADABLE, f"{shown(str(path))} is not a regular file (a device or a pipe): give an audio file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise JobError(UNREADABLE, f"{path} is not audio this bridge can read ({err})") from err
    if info.frames == 0:
        raise JobError(EMPTY_AUDIO, f"{path} holds no samples")
    return info.samplerate, info.frames / info.samplerate


def check_region(path: str | Path, start_s: float, duration_s: float) -> tuple[int, float]:
    """Validate a region against the file; returns (sample rate, file duration)."""
    rate, length = probe(path)
    if duration_s < MIN_DURATION_S:
        raise JobError(BAD_REGION, f"duration must be at least {MIN_DURATION_S:g} s, got {duration_s:g} s")
    if start_s < 0:
        raise JobError(BAD_REGION, f"start must not be negative, got {start_s:g} s")
    if start_s + duration_s > length + REGION_TOLERANCE_S:
        raise JobError(
            BAD_REGION,
            f"region {start_s:g}-{start_s + duration_s:g} s lies outside {Path(path).name}, which is {length:g} s long",
        )
    return rate, length


def read_region(path: str | Path, start_s: float, duration_s: float) -> tuple[np.ndarray, int]:
    """(round(duration_s * rate),) float32 mono samples of the region, and the file's sample rate."""
    rate, _ = check_region(path, start_s, duration_s)
    start = round(start_s * rate)
    frames = round(duration_s * rate)
    try:
        audio, _ = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise JobError(UNREADABLE, f"{path} could not be read ({err})") from err
    mono = audio.mean(axis=1)
    if not np.isfinite(mono).all():
        raise JobError(BAD_AUDIO, f"{path} holds NaN or infinite samples in the region")
    if not np.any(mono):
        raise JobError(EMPTY_AUDIO, f"the region of {path} is digital silence: select the vocal")
    # samples may lie past the file's end by the rounding tolerance: pad them with silence
    return np.pad(mono, (0, frames - len(mono))), rate


def write_wav(path: str | Path, audio: np.ndarray, rate: int) -> Path:
    """Write 24-bit WAV through a temporary file in the same directory and rename it into place, so a reader
    sees the whole file or none; on failure nothing is left behind. (Float WAV would carry libsndfile's PEAK
    chunk, whose timestamp makes the same audio differ byte for byte.)"""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda f: sf.write(f, np.clip(audio, -1.0, 1.0), rate, subtype="PCM_24", format="WAV"))
    except (OSError, sf.LibsndfileError, RuntimeError) as err:
        raise JobError(OUTPUT, f"cannot write {path}: {getattr(err, 'strerror', None) or err}") from err
    return path
