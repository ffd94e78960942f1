"""Songs -> clips -> tokens, one shard per song, with an index that makes re-runs skip finished songs.

Clips have the length of the model's longest stage window, so every training sequence of a stage has the same
layout. Clips whose vocal is silent are dropped; the vocals get the small white noise SingSong adds, so the model
cannot lean on the artefact-free silence of isolated stems. A song that cannot be read is skipped, counted and
reported; it never stops the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accompgen.data.stems import Song, SongError, SongSource
from accompgen.data.tokenize import Tokenizer
from accompgen.errors import UserError
from accompgen.tokens import TokenLayout

INDEX = "index.json"


@dataclass(frozen=True)
class ClipSettings:
    clip_s: float  # length of every clip: the longest stage window
    hop_s: float  # clips start this far apart
    min_vocal_db: float = -40.0  # clips whose vocal RMS (dBFS) lies below this are dropped
    vocal_noise_snr_db: float = 30.0  # white noise added to the vocals, this far below their RMS
    val_every: int = 20  # about one song in val_every is held out for evaluation (by a hash of its name)
    seed: int = 0


@dataclass
class PrepareReport:
    prepared: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # finished by an earlier run
    skipped: dict[str, str] = field(default_factory=dict)  # song -> why
    clips: int = 0


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


def make_clips(
    song: Song, settings: ClipSettings, rng: np.random.Generator
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(start sample, noisy vocals, accompaniment) of every clip with an audible vocal."""
    length, hop = round(settings.clip_s * song.sample_rate), round(settings.hop_s * song.sample_rate)
    clips = []
    for start in range(0, len(song.vocals) - length + 1, hop):
        vocals = song.vocals[start : start + length]
        level = rms_db(vocals)
        if level < settings.min_vocal_db:
            continue
        noise_std = 10 ** ((level - settings.vocal_noise_snr_db) / 20)
        noisy = (vocals + rng.normal(0.0, noise_std, length)).astype(np.float32)
        clips.append((start, noisy, song.accompaniment[start : start + length]))
    return clips


def tokenize_clips(clips: list, rate: int, tokenizer: Tokenizer) -> dict[str, np.ndarray]:
    """Shard arrays: vocal and instrumental semantic ids (C, F50), codes (C, K, F75), start samples (C,)."""
    return {
        "vocal_semantic": np.stack([tokenizer.semantic_ids(vocals, rate) for _, vocals, _ in clips]),
        "inst_semantic": np.stack([tokenizer.semantic_ids(accompaniment, rate) for _, _, accompaniment in clips]),
        "codes": np.stack([tokenizer.codes(accompaniment, rate) for _, _, accompaniment in clips]),
        "starts": np.array([start for start, _, _ in clips], dtype=np.int64),
    }


def _shard_name(song: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", song).strip("-")[:40] or "song"
    return f"{slug}-{hashlib.sha1(song.encode()).hexdigest()[:10]}.npz"


def _write_atomic(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_index(tokens_dir: Path) -> dict[str, Any]:
    path = Path(tokens_dir) / INDEX
    if not path.is_file():
        raise UserError(f"{tokens_dir} holds no {INDEX}: prepare it with `accompgen prepare`")
    return json.loads(path.read_text())


def _open_index(out: Path, layout: TokenLayout, settings: ClipSettings, kmeans_digest: str) -> dict[str, Any]:
    header = {"layout": layout.to_dict(), "clips": asdict(settings), "kmeans_sha256": kmeans_digest}
    if not (out / INDEX).is_file():
        return {**header, "songs": {}, "skipped": {}}
    index = read_index(out)
    for key, value in header.items():
        if index.get(key) != value:
            raise UserError(
                f"{out} was prepared with another {key.replace('_', ' ')}: use a new --out folder, "
                "or the model and settings it was made with"
            )
    return index


def prepare(
    sources: Iterable[SongSource],
    tokenizer: Tokenizer,
    layout: TokenLayout,
    out: Path,
    settings: ClipSettings,
    progress: Callable[[str], None] | None = None,
) -> PrepareReport:
    """Tokenize every song into `out/shards/`; songs already in `out/index.json` are left as they are."""
    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(tokenizer.semantic.centroids.cpu().numpy().tobytes()).hexdigest()
    index = _open_index(out, layout, settings, digest)
    report = PrepareReport()
    for number, source in enumerate(sources):
        if progress:
            progress(source.name)
        if source.name in index["songs"]:
            report.reused.append(source.name)
            continue
        try:
            song = source.load()
            clips = make_clips(song, settings, np.random.default_rng([settings.seed, number]))
            if not clips:
                raise SongError(f"{source.name}: no {settings.clip_s:g} s clip has an audible vocal")
        except SongError as err:
            index["skipped"][source.name] = report.skipped[source.name] = str(err)
            _write_atomic(out / INDEX, lambda f: f.write(json.dumps(index, indent=1)), "w")
            continue
        shard = _shard_name(source.name)
        arrays = tokenize_clips(clips, song.sample_rate, tokenizer)
        _write_atomic(out / "shards" / shard, lambda f, arrays=arrays: np.savez(f, **arrays))
        index["songs"][source.name] = {"shard": shard, "clips": len(clips)}
        index["skipped"].pop(source.name, None)
        _write_atomic(out / INDEX, lambda f: f.write(json.dumps(index, indent=1)), "w")
        report.prepared.append(source.name)
        report.clips += len(clips)
    return report


def collect_features(
    sources: Iterable[SongSource],
    extract: Callable[[np.ndarray, int], np.ndarray],
    seconds_per_song: float,
    progress: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, dict[str, str]]:
    """HuBERT features of the first `seconds_per_song` of every song's vocals and accompaniment, for k-means;
    returns (N, D) features and the songs skipped with why."""
    features, skipped = [], {}
    for source in sources:
        if progress:
            progress(source.name)
        try:
            song = source.load()
        except SongError as err:
            skipped[source.name] = str(err)
            continue
        n = round(seconds_per_song * song.sample_rate)
        for audio in (song.vocals[:n], song.accompaniment[:n]):
            features.append(extract(audio, song.sample_rate))
    if not features:
        raise UserError("no song could be read for k-means: " + "; ".join(skipped.values()))
    return np.concatenate(features), skipped
