"""Which clips of a song are trained on, and which songs are held out: light enough (numpy) for checks that run
before any model is loaded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from accompgen.core.errors import UserError
from accompgen.core.tokens import on_frame_grid
from accompgen.data.stems import Song


@dataclass(frozen=True)
class ClipSettings:
    clip_s: float  # length of every clip: the longest stage window
    hop_s: float  # clips start this far apart
    min_vocal_db: float = -40.0  # clips whose vocal RMS (dBFS) lies below this are dropped
    vocal_noise_snr_db: float = 30.0  # white noise added to the vocals, this far below their RMS
    val_every: int = 20  # about one song in val_every is held out for evaluation (by a hash of its name)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("clip_s", "hop_s"):
            if not on_frame_grid(getattr(self, name)) or getattr(self, name) <= 0:
                raise UserError(f"{name} must be a positive multiple of 0.04 s (whole 50 Hz and 75 Hz frames)")


def rms_db(audio: np.ndarray) -> float:
    return 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-20)


def song_splits(songs: list[str], val_every: int) -> dict[str, str]:
    """train or val for every song: about one in val_every by a hash of its name (so adding songs moves none),
    and at least one val song once there are two songs."""
    digests = {name: int(hashlib.sha1(name.encode()).hexdigest(), 16) for name in songs}
    splits = {name: "val" if digest % val_every == 0 else "train" for name, digest in digests.items()}
    if len(songs) >= 2 and "val" not in splits.values():
        splits[min(digests, key=digests.get)] = "val"
    return splits


def audible_clips(song: Song, settings: ClipSettings) -> list[int]:
    """Start samples of every clip whose vocal is audible."""
    length, hop = round(settings.clip_s * song.sample_rate), round(settings.hop_s * song.sample_rate)
    return [
        start
        for start in range(0, len(song.vocals) - length + 1, hop)
        if rms_db(song.vocals[start : start + length]) >= settings.min_vocal_db
    ]


def noisy_vocals(song: Song, starts: list[int], settings: ClipSettings, rng: np.random.Generator) -> np.ndarray:
    """The vocals with white noise `vocal_noise_snr_db` below their level in the audible clips."""
    length = round(settings.clip_s * song.sample_rate)
    level = rms_db(np.concatenate([song.vocals[start : start + length] for start in starts]))
    noise = rng.normal(0.0, 10 ** ((level - settings.vocal_noise_snr_db) / 20), len(song.vocals))
    return (song.vocals + noise).astype(np.float32)


def held_out_songs(songs: list[str], every: int = 10, minimum: int = 4) -> list[str]:
    """The songs a run holds out from training, to evaluate on: about one in `every` by a hash of its name (drawn
    apart from song_splits' validation songs, so both sides keep some), and at least `minimum` while there are more
    than twice as many songs; in the order given."""
    digests = {name: int(hashlib.sha1(f"test:{name}".encode()).hexdigest(), 16) for name in songs}
    chosen = {name for name, digest in digests.items() if digest % every == 0}
    wanted = min(minimum, len(songs) // 2)
    for name in sorted(digests, key=digests.__getitem__):
        if len(chosen) >= wanted:
            break
        chosen.add(name)
    return [name for name in songs if name in chosen]
