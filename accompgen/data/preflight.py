"""Checks of a folder of songs before hours of training: what it holds, and every problem by song with what to do.

Each song is read once. Problems that make a song unusable (unreadable, stems that do not line up, no clip with an
audible vocal) leave it out; the others are reported and the song is kept: clipped stems, an accompaniment that
holds the vocal (a mix given as the instrumental), sample rates below the codec's. Across the split a song held out
and a song trained on that sound the same are named, since the held-out scores would then measure memory. A corpus
too small to learn from is refused, with the minimum and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from accompgen.core.music import Chroma, chroma, correlation_of_chroma
from accompgen.data.clips import ClipSettings, audible_clips, held_out_songs
from accompgen.data.stems import Song, SongError, SongSource, audio_files

CODEC_RATE_HZ = 24000  # the rate the codec hears: lower rates lack the top octave
CLIPPED_LEVEL = 0.999
MAX_CLIPPED_SHARE = 1e-3  # of the samples
MAX_BLEED_SHARE = 0.1  # of the accompaniment's energy that the vocal explains
BLEED_LAG_S = 0.02  # a microphone's bleed arrives a little late
ENVELOPE_HOP_S = 0.5
# Two songs are one when their accompaniments' loudness envelopes (dB) and chroma both follow each other. Loudness
# alone is not enough: rendered chorales with a steady level and a similar fade correlate at 0.98-0.997 (38 pairs of
# different chorales across their split) while their chroma correlates at 0.32 at most; the same song re-encoded: 1.0.
DUPLICATE_CORRELATION = 0.98
DUPLICATE_CHROMA_CORRELATION = 0.9


@dataclass(frozen=True)
class CorpusMinimum:
    """Below these, training is refused: eval-music scores at least 4 held-out songs, and fewer than about 8 songs
    or 20 minutes teach the stages only to repeat them (the chorale corpus has about 700 renditions, 10 hours)."""

    test_songs: int = 4
    train_songs: int = 8
    train_minutes: float = 20.0


@dataclass
class SongCheck:
    name: str
    split: str  # train or test
    seconds: float = 0.0
    sample_rate: int = 0
    channels: tuple[int, ...] = ()  # of each audio file of the song
    clips: int = 0  # clips with an audible vocal: what training gets
    unusable: str | None = None  # why the song is left out
    problems: list[str] = field(default_factory=list)  # each says what is wrong and what to do
    envelope: np.ndarray | None = field(default=None, repr=False)
    harmony: Chroma | None = field(default=None, repr=False)  # of the accompaniment

    @property
    def usable(self) -> bool:
        return self.unusable is None


@dataclass
class PreflightReport:
    songs: list[SongCheck]
    duplicates: list[tuple[str, str, float, float]]  # (train song, test song, loudness and chroma correlation)
    notes: list[str]  # about the corpus as a whole
    refusal: str | None  # why training must not start, or None

    def usable(self, split: str) -> list[SongCheck]:
        return [song for song in self.songs if song.split == split and song.usable]

    def minutes(self, split: str) -> float:
        return sum(song.seconds for song in self.usable(split)) / 60

    def to_dict(self) -> dict[str, Any]:
        fields = ("name", "split", "seconds", "sample_rate", "channels", "clips", "unusable", "problems")
        return {
            "songs": [{name: getattr(song, name) for name in fields} for song in self.songs],
            "duplicates": self.duplicates,
            "notes": self.notes,
            "refusal": self.refusal,
        }


def preflight(
    train: list[SongSource],
    test: list[SongSource] | None,
    clips: ClipSettings,
    progress: Callable[[str], None] | None = None,
    minimum: CorpusMinimum = CorpusMinimum(),
) -> PreflightReport:
    """Check every song; without `test`, the songs held out are the ones `held_out_songs` picks from `train`."""
    if test is None:
        held = set(held_out_songs([source.name for source in train], minimum=minimum.test_songs))
        sources = [(source, "test" if source.name in held else "train") for source in train]
    else:
        sources = [(source, "train") for source in train] + [(source, "test") for source in test]
    songs = []
    for source, split in sources:
        if progress:
            progress(source.name)
        songs.append(check_song(source, split, clips))
    duplicates = find_duplicates(songs)
    notes = corpus_notes(songs)
    report = PreflightReport(songs, duplicates, notes, None)
    report.refusal = refusal(report, minimum)
    return report


def check_song(source: SongSource, split: str, clips: ClipSettings) -> SongCheck:
    check = SongCheck(source.name, split)
    if source.folder is not None:
        check.channels = _channels(source.folder)
    try:
        song = source.load()
    except SongError as err:
        check.unusable = str(err)
        return check
    check.seconds, check.sample_rate = song.seconds, song.sample_rate
    check.clips = len(audible_clips(song, clips))
    if not check.clips:
        check.unusable = (
            f"no {clips.clip_s:g} s stretch of the vocals is louder than {clips.min_vocal_db:g} dBFS: "
            "check that vocals.* holds the singing"
        )
        return check
    check.problems = song_problems(song)
    check.envelope = loudness_envelope(song.accompaniment, song.sample_rate)
    check.harmony = chroma(song.accompaniment, song.sample_rate)
    return check


def _channels(folder: Path) -> tuple[int, ...]:
    channels = []
    for path in audio_files(folder).values():
        try:
            channels.append(sf.info(str(path)).channels)
        except (sf.LibsndfileError, RuntimeError, OSError):
            continue  # reading the song names the file
    return tuple(channels)


def song_problems(song: Song) -> list[str]:
    problems = []
    if song.sample_rate < CODEC_RATE_HZ:
        problems.append(
            f"recorded at {song.sample_rate} Hz, below the codec's {CODEC_RATE_HZ} Hz: its top octave is missing; "
            "use the original recording if you have it"
        )
    for name, audio in (("vocals", song.vocals), ("accompaniment", song.accompaniment)):
        share = float(np.mean(np.abs(audio) >= CLIPPED_LEVEL))
        if share > MAX_CLIPPED_SHARE:
            problems.append(f"the {name} clip ({share:.1%} of the samples at full scale): export them quieter")
    bleed = bleed_share(song.vocals, song.accompaniment, song.sample_rate)
    if bleed > MAX_BLEED_SHARE:
        problems.append(
            f"the accompaniment holds the vocal ({bleed:.0%} of its energy follows the vocals): give the "
            "instrumental stems, not the mix, or the model learns to sing along"
        )
    return problems


def bleed_share(vocals: np.ndarray, accompaniment: np.ndarray, rate: int) -> float:
    """The largest share of the accompaniment's energy a scaled copy of the vocals explains, over lags up to
    BLEED_LAG_S either way: the squared correlation (0 for independent parts, 1 for a copy)."""
    n = len(vocals)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    v, a = vocals - vocals.mean(), accompaniment - accompaniment.mean()
    correlation = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(v, size)), size)
    lags = round(BLEED_LAG_S * rate)
    near = np.concatenate([correlation[: lags + 1], correlation[-lags:]])
    energy = float(np.dot(v, v) * np.dot(a, a))
    return float(np.max(near**2) / energy) if energy > 0 else 0.0


def loudness_envelope(audio: np.ndarray, rate: int) -> np.ndarray:
    """RMS in dB every ENVELOPE_HOP_S: what two renderings or encodings of one song share."""
    hop = round(ENVELOPE_HOP_S * rate)
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-10)


def find_duplicates(songs: list[SongCheck]) -> list[tuple[str, str, float, float]]:
    """(train, test, loudness and chroma correlation) for every held-out song whose accompaniment follows a
    training song's."""
    train = [s for s in songs if s.split == "train" and s.envelope is not None]
    test = [s for s in songs if s.split == "test" and s.envelope is not None]
    found = []
    for held in test:
        for trained in train:
            loudness = _envelope_correlation(held.envelope, trained.envelope)
            if loudness < DUPLICATE_CORRELATION:
                continue
            assert held.harmony is not None and trained.harmony is not None
            harmony = correlation_of_chroma(held.harmony, trained.harmony)  # NaN: silent, no duplicate
            if harmony >= DUPLICATE_CHROMA_CORRELATION:
                found.append((trained.name, held.name, loudness, harmony))
    return found


def _envelope_correlation(a: np.ndarray | None, b: np.ndarray | None) -> float:
    assert a is not None and b is not None
    if min(len(a), len(b)) < 8 or abs(len(a) - len(b)) > 0.02 * max(len(a), len(b)) + 1:
        return 0.0  # too short to tell, or of another length: another song
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def corpus_notes(songs: list[SongCheck]) -> list[str]:
    notes = []
    rates = sorted({s.sample_rate for s in songs if s.usable})
    if len(rates) > 1:
        notes.append(f"sample rates differ ({', '.join(f'{r} Hz' for r in rates)}): each song is resampled as read")
    layouts = {"mono" if max(s.channels) == 1 else "stereo" for s in songs if s.usable and s.channels}
    if len(layouts) > 1:
        notes.append("mono and stereo files are mixed: every stereo file is mixed down to mono as read")
    return notes


def refusal(report: PreflightReport, minimum: CorpusMinimum) -> str | None:
    train, test = report.usable("train"), report.usable("test")
    minutes = report.minutes("train")
    if len(test) < minimum.test_songs:
        return (
            f"only {len(test)} usable held-out song(s): the evaluation needs at least {minimum.test_songs}. Give "
            "more songs, or a --test folder of at least that many"
        )
    if len(train) < minimum.train_songs or minutes < minimum.train_minutes:
        return (
            f"{len(train)} usable song(s), {minutes:.1f} minutes to train on: at least {minimum.train_songs} songs "
            f"and {minimum.train_minutes:g} minutes are needed, or the stages learn only to repeat them. Add songs"
        )
    return None
