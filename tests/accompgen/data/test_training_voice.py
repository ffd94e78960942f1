"""The additive singer of the training corpus."""

import numpy as np

from accompgen.core.music import chroma
from accompgen.data.training_voice import sing_additive

RATE = 24000
NOTES = [(0.0, 2.0, 62), (2.0, 2.0, 66), (4.0, 2.0, 69), (6.0, 2.0, 71)]  # (onset, quarters, MIDI)
SPQ = 0.5


def test_every_note_sounds_at_its_pitch_class():
    audio = sing_additive(NOTES, SPQ, RATE, np.random.default_rng(0))
    for onset, length, pitch in NOTES:
        middle = audio[round((onset + 0.3 * length) * SPQ * RATE) : round((onset + 0.8 * length) * SPQ * RATE)]
        assert chroma(middle, RATE).vectors.mean(axis=0).argmax() == pitch % 12


def test_a_generator_gives_one_singer_and_another_a_different_one():
    first = sing_additive(NOTES, SPQ, RATE, np.random.default_rng(1))
    assert np.array_equal(first, sing_additive(NOTES, SPQ, RATE, np.random.default_rng(1)))
    assert not np.array_equal(first, sing_additive(NOTES, SPQ, RATE, np.random.default_rng(2)))
    assert first.dtype == np.float32 and np.abs(first).max() == np.float32(0.5)
    assert len(first) == round((8 * SPQ - 0.02 + 1.0) * RATE)
