"""The evaluation singer: a different voice, singing the same notes."""

import numpy as np

from accompgen.core.music import chroma
from accompgen.data.singer import Singer, sing

RATE = 24000
NOTES = [(0.0, 2.0, 60), (2.0, 2.0, 64), (4.0, 2.0, 67), (6.0, 1.0, 65), (7.0, 3.0, 62)]  # (onset, quarters, MIDI)
SPQ = 0.5  # seconds per quarter


def test_every_note_sounds_at_its_pitch_class():
    audio = sing(NOTES, SPQ, RATE, Singer.for_song("bwv1.6"), seed=0)
    for onset, length, pitch in NOTES:
        middle = audio[round((onset + 0.3 * length) * SPQ * RATE) : round((onset + 0.8 * length) * SPQ * RATE)]
        assert chroma(middle, RATE).vectors.mean(axis=0).argmax() == pitch % 12


def test_the_voice_rings_out_after_the_last_note_and_peaks_at_half_scale():
    audio = sing(NOTES, SPQ, RATE, Singer.for_song("bwv1.6"), seed=0)
    last = (7.0 + 3.0) * SPQ
    assert audio.dtype == np.float32 and len(audio) > (last + 0.5) * RATE
    assert np.abs(audio).max() == np.float32(0.5)
    assert np.sqrt(np.mean(audio[round((last + 0.3) * RATE) :] ** 2)) < 0.1 * np.sqrt(np.mean(audio**2))


def test_each_song_has_its_own_singer_and_the_same_one_every_time():
    assert Singer.for_song("bwv1.6") == Singer.for_song("bwv1.6") != Singer.for_song("bwv2.6")
    first = sing(NOTES, SPQ, RATE, Singer.for_song("bwv1.6"), seed=3)
    assert np.array_equal(first, sing(NOTES, SPQ, RATE, Singer.for_song("bwv1.6"), seed=3))
    assert not np.array_equal(first, sing(NOTES, SPQ, RATE, Singer.for_song("bwv2.6"), seed=3))
