"""Songs as (vocals, accompaniment) pairs: stem folders (MUSDB18-HQ or your own multitracks) and MUSDB18 stems.

A song folder holds `vocals.*` and either `accompaniment.*` or the other stems (drums, bass, other, ...), which are
summed; a `mixture.*` file is ignored. Every problem with a song names the file and what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from accompgen.core.errors import UserError

AUDIO_SUFFIXES = (".wav", ".flac", ".aiff", ".aif", ".ogg")
IGNORED_STEMS = ("mixture",)
LENGTH_TOLERANCE_S = 0.1  # stems may differ by this much (export rounding); longer ones are trimmed
SILENCE_RMS = 1e-5


class SongError(UserError):
    """A song that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Song:
    name: str
    vocals: np.ndarray  # (n,) mono float32
    accompaniment: np.ndarray  # (n,) mono float32
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.vocals) / self.sample_rate


@dataclass(frozen=True)
class SongSource:
    """A song not yet read: its name and how to read it (so a bad song fails alone, when its turn comes)."""

    name: str
    load: Callable[[], Song]
    folder: Path | None = None  # where its files lie, for checks of the files themselves; None for MUSDB18 stems


def spread_over(sources: list[SongSource], count: int) -> list[SongSource]:
    """Up to `count` songs taken at even steps over the list, from its first: a sample of the whole corpus (a
    folder sorts by name, so the first `count` songs could all be one album or one composer)."""
    return sources[:: max(1, len(sources) // count)][:count]


def audio_files(folder: Path) -> dict[str, Path]:
    return {p.stem.lower(): p for p in sorted(folder.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES}


def _read_mono(path: Path) -> tuple[np.ndarray, int]:
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise SongError(f"{path} is not readable audio ({err})") from err
    if len(audio) == 0:
        raise SongError(f"{path} holds no samples")
    if not np.isfinite(audio).all():
        raise SongError(f"{path} holds NaN or infinite samples")
    return audio.mean(axis=1), rate


def load_song_folder(folder: Path) -> Song:
    files = audio_files(folder)
    if "vocals" not in files:
        raise SongError(f"{folder} has no vocals file (vocals.wav, .flac, ...)")
    if "accompaniment" in files:
        others = [files["accompaniment"]]
    else:
        others = [p for stem, p in files.items() if stem not in ("vocals", *IGNORED_STEMS)]
    if not others:
        raise SongError(f"{folder} has neither accompaniment.wav nor other stems (drums, bass, other, ...)")
    vocals, rate = _read_mono(files["vocals"])
    stems = []
    for path in others:
        audio, stem_rate = _read_mono(path)
        if stem_rate != rate:
            raise SongError(f"{path} is at {stem_rate} Hz but {files['vocals'].name} at {rate} Hz: resample one")
        if abs(len(audio) - len(vocals)) > LENGTH_TOLERANCE_S * rate:
            raise SongError(
                f"{path} lasts {len(audio) / rate:.2f} s but {files['vocals'].name} {len(vocals) / rate:.2f} s: "
                "stems of one song must line up"
            )
        stems.append(audio)
    n = min(len(vocals), *(len(s) for s in stems))
    accompaniment = np.sum([s[:n] for s in stems], axis=0).astype(np.float32)
    song = Song(folder.name, vocals[:n], accompaniment, rate)
    for name, audio in (("vocals", song.vocals), ("accompaniment", song.accompaniment)):
        if np.sqrt(np.mean(audio.astype(np.float64) ** 2)) < SILENCE_RMS:
            raise SongError(f"{folder}: the {name} are silent")
    return song


def folder_songs(root: str | Path) -> list[SongSource]:
    """Every song folder under root (a folder with a vocals file), found recursively, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder of songs")
    folders = sorted({p.parent for suffix in AUDIO_SUFFIXES for p in root.rglob(f"*{suffix}")})
    # hidden folders are staging areas of writers (a song being rendered), not songs
    folders = [f for f in folders if not any(part.startswith(".") for part in f.relative_to(root).parts)]
    folders = [f for f in folders if any(p.stem.lower() == "vocals" for p in f.iterdir())]
    if not folders:
        loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
        found = f"{root} holds {len(loose)} audio file(s) but no song folder" if loose else f"no song folders in {root}"
        raise UserError(f"{found}: give each song a folder of its own, with vocals.wav plus accompaniment.wav or stems")
    names = [str(f.relative_to(root)) if f != root else f.name for f in folders]
    return [SongSource(name, lambda f=f: load_song_folder(f), f) for name, f in zip(names, folders, strict=True)]


def musdb_songs(root: str | Path, subset: str = "train") -> Iterator[SongSource]:
    """MUSDB18 in its stem (.mp4) form through the musdb package; MUSDB18-HQ needs no package: pass its folder."""
    try:
        import musdb
    except (ImportError, RuntimeError) as err:  # stempeg raises RuntimeError without ffmpeg
        raise UserError(
            f"MUSDB18 stems need `pip install musdb` and ffmpeg ({err}). MUSDB18-HQ (wav folders) needs neither: "
            "pass its folder without --musdb"
        ) from err
    for track in musdb.DB(root=str(root), subsets=subset):

        def load(track=track) -> Song:
            vocals = track.targets["vocals"].audio.mean(axis=1).astype(np.float32)
            accompaniment = track.targets["accompaniment"].audio.mean(axis=1).astype(np.float32)
            return Song(track.name, vocals, accompaniment, int(track.rate))

        yield SongSource(track.name, load)
