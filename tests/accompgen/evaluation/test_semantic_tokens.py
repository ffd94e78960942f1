"""How much pitch semantic tokens carry: the frame labels and the token -> pitch class guess."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from accompgen.core.tokens import SEMANTIC_RATE_HZ
from accompgen.evaluation.semantic_tokens import frame_chroma, token_pitch_accuracy

RATE = 24000


def test_every_sounding_frame_of_a_tone_is_labelled_with_its_pitch_class():
    t = np.arange(RATE) / RATE
    tone = np.concatenate([0.3 * np.sin(2 * np.pi * 392.0 * t), np.zeros(RATE)])  # G4, then a second of silence
    chroma, active = frame_chroma(tone, RATE)
    classes = chroma.argmax(axis=1)
    assert len(classes) == 2 * SEMANTIC_RATE_HZ
    inner = slice(5, SEMANTIC_RATE_HZ - 5)  # frames whose window lies inside the tone
    assert active[inner].all() and not active[SEMANTIC_RATE_HZ + 10 :].any()  # past the window of the tone
    assert (classes[inner] == 7).all()


labels = st.lists(st.integers(0, 11), min_size=1, max_size=200).map(np.array)


@given(labels)
def test_tokens_that_are_the_pitch_classes_guess_every_frame(classes):
    assert token_pitch_accuracy(classes, classes, classes, classes)["accuracy"] == 1.0


@given(labels)
def test_one_token_for_everything_guesses_no_better_than_chance(classes):
    tokens = np.zeros_like(classes)
    result = token_pitch_accuracy(tokens, classes, tokens, classes)
    assert result["accuracy"] == result["chance"] and result["frames"] == len(classes)


def test_a_token_never_seen_in_training_guesses_wrong():
    train_tokens, train_labels = np.array([0, 2, 2]), np.array([0, 7, 7])
    result = token_pitch_accuracy(train_tokens, train_labels, np.array([0, 1, 2, 5]), np.array([0, 0, 7, 0]))
    assert result["accuracy"] == 0.5  # tokens 0 and 2 right; 1 (inside the seen range) and 5 (past it) wrong
