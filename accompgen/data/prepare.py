"""Songs -> clips -> tokens, one shard per song, with an index that makes re-runs skip finished songs.

Clips have the length of the model's longest stage window, so every training sequence of a stage has the same
layout. Clips whose vocal is silent are dropped; the vocals get the small white noise SingSong adds, so the model
cannot lean on the artefact-free silence of isolated stems. A song that cannot be read is skipped, counted and
reported; it never stops the run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import EncodecConfig

from accompgen.core.errors import UserError
from accompgen.core.files import write_atomic, write_text_atomic
from accompgen.core.tokens import ACOUSTIC_RATE_HZ, SEMANTIC_RATE_HZ, TokenLayout, frames_for
from accompgen.data.clips import ClipSettings, audible_clips, noisy_vocals
from accompgen.data.stems import Song, SongError, SongSource
from accompgen.model.config import ModelConfig
from accompgen.model.model_dir import KMEANS_FILE, save_config
from accompgen.tokenizers.codec import check_codec
from accompgen.tokenizers.pretrained import load_pretrained
from accompgen.tokenizers.semantic import HubertFeatures, fit_kmeans
from accompgen.tokenizers.tokenizer import Tokenizer, semantic_frames

INDEX = "index.json"


@dataclass
class PrepareReport:
    prepared: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # finished by an earlier run
    skipped: dict[str, str] = field(default_factory=dict)  # song -> why
    clips: int = 0


def tokenize_song(song: Song, starts: list[int], vocals: np.ndarray, clip_s: float, tokenizer: Tokenizer) -> dict:
    """Shard arrays: vocal and instrumental semantic ids (C, F50), codes (C, K, F75), start samples (C,).

    The whole song is tokenized once and the clips are cut from its tokens: clips start on the 0.04 s grid, a whole
    number of frames at both rates, so a clip's tokens are exactly the song's tokens at its frames."""
    rate = song.sample_rate
    whole = {
        "vocal_semantic": tokenizer.semantic_ids(vocals, rate)[None],
        "inst_semantic": tokenizer.semantic_ids(song.accompaniment, rate)[None],
        "codes": tokenizer.codes(song.accompaniment, rate),
    }
    rates = {"vocal_semantic": SEMANTIC_RATE_HZ, "inst_semantic": SEMANTIC_RATE_HZ, "codes": ACOUSTIC_RATE_HZ}
    arrays = {}
    for name, tokens in whole.items():
        frames = frames_for(clip_s, rates[name])
        firsts = [round(start / rate * rates[name]) for start in starts]
        clips = np.stack([tokens[:, first : first + frames] for first in firsts])
        arrays[name] = clips[:, 0] if name != "codes" else clips
    return {**arrays, "starts": np.array(starts, dtype=np.int64)}


def _shard_name(song: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", song).strip("-")[:40] or "song"
    return f"{slug}-{hashlib.sha1(song.encode()).hexdigest()[:10]}.npz"


def read_index(tokens_dir: Path) -> dict[str, Any]:
    path = Path(tokens_dir) / INDEX
    if not path.is_file():
        raise UserError(f"{tokens_dir} holds no {INDEX}: prepare it with `accompgen prepare`")
    return json.loads(path.read_text())


def tokenizer_digest(tokenizer: Tokenizer) -> str:
    """SHA-256 of every weight and centroid of the tokenizer: another codec or HuBERT under the same k-means
    centroids gives other tokens."""
    digest = hashlib.sha256()
    for part in (tokenizer.semantic, tokenizer.codec):
        for name, tensor in sorted(part.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _open_index(out: Path, layout: TokenLayout, settings: ClipSettings, tokenizer_sha256: str) -> dict[str, Any]:
    header = {"layout": layout.to_dict(), "clips": asdict(settings), "tokenizer_sha256": tokenizer_sha256}
    if not (out / INDEX).is_file():
        return {**header, "songs": {}, "skipped": {}}
    index = read_index(out)
    if "tokenizer_sha256" not in index:
        raise UserError(
            f"{out} was prepared by an earlier version, which did not record its tokenizer: use a new --out folder"
        )
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
    index = _open_index(out, layout, settings, tokenizer_digest(tokenizer))
    report = PrepareReport()
    for number, source in enumerate(sources):
        if progress:
            progress(source.name)
        if source.name in index["songs"]:
            report.reused.append(source.name)
            continue
        try:
            song = source.load()
            starts = audible_clips(song, settings)
            if not starts:
                raise SongError(f"{source.name}: no {settings.clip_s:g} s clip has an audible vocal")
        except SongError as err:
            index["skipped"][source.name] = report.skipped[source.name] = str(err)
            write_text_atomic(out / INDEX, json.dumps(index, indent=1))
            continue
        shard = _shard_name(source.name)
        vocals = noisy_vocals(song, starts, settings, np.random.default_rng([settings.seed, number]))
        arrays = tokenize_song(song, starts, vocals, settings.clip_s, tokenizer)
        write_atomic(out / "shards" / shard, lambda f, arrays=arrays: np.savez(f, **arrays))
        index["songs"][source.name] = {"shard": shard, "clips": len(starts)}
        index["skipped"].pop(source.name, None)
        write_text_atomic(out / INDEX, json.dumps(index, indent=1))
        report.prepared.append(source.name)
        report.clips += len(starts)
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


def start_model_dir(
    config: ModelConfig,
    sources: Iterable[SongSource],
    out: Path,
    seconds_per_song: float,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[int, dict[str, str]]:
    """A new model directory: the config, and k-means centroids of the semantic tokenizer's features of the
    songs. Checks first that both tokenizers fit the config's token layout. Returns (feature frames, skipped)."""
    check_codec(
        load_pretrained(EncodecConfig, config.tokenizer.encodec, "EnCodec's config"),
        config.tokens,
        config.tokenizer.encodec,
    )
    features_model = HubertFeatures.from_pretrained(config.tokenizer.hubert, config.tokenizer.hubert_layer)
    features, skipped = collect_features(
        sources,
        lambda audio, rate: semantic_frames(features_model, audio, rate),
        seconds_per_song,
        progress=lambda name: progress(f"HuBERT features of {name}") if progress else None,
    )
    if progress:
        progress(f"k-means with {config.tokens.semantic_clusters} clusters on {len(features)} frames")
    centroids = fit_kmeans(features, config.tokens.semantic_clusters, seed)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / KMEANS_FILE, lambda f: np.save(f, centroids))
    save_config(out, config)
    return len(features), skipped
