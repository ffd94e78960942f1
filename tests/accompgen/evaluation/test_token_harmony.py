"""Whether instrumental tokens mark chord changes: chord movement of the chroma the tokens stand for."""

import dataclasses
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from accompgen.evaluation.token_harmony import (
    SEGMENT_FRAMES,
    SongFrames,
    chord_movements,
    segments,
    token_chroma,
    vocal_pitch_accuracy,
)

CHORDS = np.array(
    [[1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]]
)
CHORDS = CHORDS / np.linalg.norm(CHORDS, axis=1, keepdims=True)


def song(chord_lengths: list[tuple[int, int]], token_of=lambda chord: chord) -> SongFrames:
    """Melody notes and chords that change together: (chord, frames) runs; the melody sings the chord's root, and
    its token is that root's pitch class."""
    chords = np.concatenate([np.full(length, chord) for chord, length in chord_lengths])
    roots = CHORDS[chords].argmax(axis=1)
    on = np.ones(len(chords), bool)
    return SongFrames(np.eye(12)[roots], on, CHORDS[chords], on, np.array([token_of(c) for c in chords]), roots)


runs = st.lists(st.tuples(st.integers(0, 2), st.integers(5, 60)), min_size=4, max_size=20)


@settings(max_examples=30)
@given(runs, runs)
def test_tokens_that_name_each_chord_move_exactly_as_the_accompaniment(train_runs, test_runs):
    result = chord_movements([song([*train_runs, (0, 5), (1, 5), (2, 5)])], [song(test_runs)], size=3)
    assert math.isclose(result["tokens"], result["accompaniment"]) or all(math.isnan(v) for v in result.values())


def test_one_token_for_every_chord_never_moves():
    runs = [(0, 40), (1, 30), (2, 50), (0, 20), (1, 40)]
    result = chord_movements([song(runs, lambda c: 0)], [song(runs, lambda c: 0)], size=1)
    assert math.isnan(result["tokens"]) and result["accompaniment"] > 0.5


def test_a_token_stands_for_the_mean_chroma_of_the_sounding_frames_it_was_given():
    tokens = np.array([0, 0, 0])
    frames = SongFrames(
        np.zeros((3, 12)), np.ones(3, bool), CHORDS[[0, 1, 2]], np.array([True, True, False]), tokens, tokens
    )
    mean = CHORDS[0] + CHORDS[1]
    np.testing.assert_allclose(token_chroma([frames], size=2), [mean / np.linalg.norm(mean), np.zeros(12)])


def test_segments_sum_their_frames_and_sound_when_most_frames_do():
    frames = np.tile(CHORDS[0], (2 * SEGMENT_FRAMES + 3, 1))
    sounding = np.arange(len(frames)) < SEGMENT_FRAMES // 2 + 1
    chroma, on = segments(frames, sounding)
    assert chroma.shape == (2, 12) and on.tolist() == [True, False]
    np.testing.assert_allclose(chroma, CHORDS[[0, 0]])


def test_vocal_tokens_that_name_the_sung_pitch_class_guess_every_sounding_frame():
    runs = [(0, 40), (1, 30), (2, 50)]
    result = vocal_pitch_accuracy([song(runs)], [song(runs[::-1])])
    assert result["accuracy"] == 1.0 and result["frames"] == 120


def test_a_vocal_token_guesses_the_pitch_class_it_most_often_sang_with():
    train = song([(0, 40), (1, 30)])
    train = dataclasses.replace(train, vocal_tokens=np.zeros_like(train.vocal_tokens))  # one token for both roots
    result = vocal_pitch_accuracy([train], [song([(0, 10), (1, 30)])])
    assert result["accuracy"] == 10 / 40  # it guesses the root of chord 0, sung longer in training
