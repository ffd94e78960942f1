"""Whether instrumental semantic tokens mark chord changes: the chord movement (accompgen.core.listening) of the
chroma the tokens stand for.

On training songs every token stands for the mean chroma of the accompaniment frames it was given to; on held-out
songs each accompaniment frame is replaced by its token's chroma, summed into 0.2 s segments, and the changes from
segment to segment are correlated with the melody's (the vocal's chroma, the same 50 Hz frames). The measure on the
accompaniment's own frame chroma is the ceiling: tokens that keep every chord change reach it.

The same pass over the songs gives the vocal tokens' pitch-class accuracy (accompgen.evaluation.semantic_tokens).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from accompgen.core.listening import SEGMENT_S, segment_chord_movement
from accompgen.core.music import unit_rows
from accompgen.core.tokens import SEMANTIC_RATE_HZ
from accompgen.data.stems import SongSource
from accompgen.evaluation.semantic_tokens import frame_chroma, token_pitch_accuracy
from accompgen.tokenizers.tokenizer import semantic_frames

SEGMENT_FRAMES = round(SEGMENT_S * SEMANTIC_RATE_HZ)


@dataclass(frozen=True)
class SongFrames:
    """One song at 50 Hz: L2-normalised (F, 12) chroma of melody and accompaniment, which frames sound, and the
    tokens of the accompaniment and of the vocal."""

    melody: np.ndarray
    melody_on: np.ndarray
    accompaniment: np.ndarray
    accompaniment_on: np.ndarray
    tokens: np.ndarray
    vocal_tokens: np.ndarray


def segments(frames: np.ndarray, sounding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, 12) frame chroma -> (S, 12) L2-normalised 0.2 s segment chroma and whether most of each segment sounds."""
    n = len(frames) // SEGMENT_FRAMES
    summed = frames[: n * SEGMENT_FRAMES].reshape(n, SEGMENT_FRAMES, -1).sum(axis=1)
    return unit_rows(summed), sounding[: n * SEGMENT_FRAMES].reshape(n, SEGMENT_FRAMES).mean(axis=1) > 0.5


def token_chroma(songs: Iterable[SongFrames], size: int) -> np.ndarray:
    """(size, 12) mean accompaniment chroma of the sounding frames given each token; zeros for a token never given."""
    sums = np.zeros((size, 12))
    for song in songs:
        np.add.at(sums, song.tokens[song.accompaniment_on], song.accompaniment[song.accompaniment_on])
    return unit_rows(sums)


def chord_movements(train: list[SongFrames], test: list[SongFrames], size: int) -> dict[str, float]:
    """Chord movement of `test`'s tokens (as the chroma `train` gives them) and of its accompaniment itself."""
    mapping = token_chroma(train, size)

    def movement(accompaniment_of) -> float:
        return segment_chord_movement(
            [(*segments(s.melody, s.melody_on), *segments(accompaniment_of(s), s.accompaniment_on)) for s in test]
        )

    return {
        "tokens": movement(lambda s: mapping[s.tokens]),
        "accompaniment": movement(lambda s: s.accompaniment),
    }


def song_frames(encoder, source: SongSource, seconds: float) -> SongFrames:
    """`encoder`: a SemanticEncoder (audio -> ids)."""
    song = source.load()
    end = round(seconds * song.sample_rate)
    vocal, accompaniment = song.vocals[:end], song.accompaniment[:end]
    melody, melody_on = frame_chroma(vocal, song.sample_rate)
    chroma, on = frame_chroma(accompaniment, song.sample_rate)
    tokens = semantic_frames(encoder, accompaniment, song.sample_rate)
    vocal_tokens = semantic_frames(encoder, vocal, song.sample_rate)
    n = min(len(melody), len(chroma), len(tokens), len(vocal_tokens))
    return SongFrames(unit_rows(melody[:n]), melody_on[:n], unit_rows(chroma[:n]), on[:n], tokens[:n], vocal_tokens[:n])


def vocal_pitch_accuracy(train: list[SongFrames], test: list[SongFrames]) -> dict[str, float]:
    """How often a vocal token's most frequent pitch class on `train` is the sounding frame's on `test`."""

    def tokens_and_labels(songs: list[SongFrames]) -> tuple[np.ndarray, np.ndarray]:
        tokens = np.concatenate([s.vocal_tokens[s.melody_on] for s in songs])
        return tokens, np.concatenate([s.melody[s.melody_on].argmax(axis=1) for s in songs])

    return token_pitch_accuracy(*tokens_and_labels(train), *tokens_and_labels(test))


def semantic_token_measures(
    encoder, train: Iterable[SongSource], test: Iterable[SongSource], seconds: float = 30.0
) -> dict[str, Any]:
    """The vocal tokens' pitch-class accuracy on `test` and the chord movement of its accompaniments' tokens, beside
    that of the accompaniments themselves, from one pass over the songs."""
    train_frames = [song_frames(encoder, source, seconds) for source in train]
    test_frames = [song_frames(encoder, source, seconds) for source in test]
    return {
        **vocal_pitch_accuracy(train_frames, test_frames),
        "chord_movement": chord_movements(train_frames, test_frames, encoder.num_clusters),
    }
