import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from accompgen.data.sung_notes import TAIL_S, SungNotes, wander

RATE = 8000


@st.composite
def melodies(draw) -> list[tuple[float, float, int]]:
    lengths = draw(st.lists(st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0]), min_size=1, max_size=12))
    onsets = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    return [(float(o), length, draw(st.integers(40, 90))) for o, length in zip(onsets, lengths, strict=True)]


@given(melodies(), st.floats(0.3, 1.2), st.sampled_from([0.0, 0.05]))
def test_every_sample_knows_the_note_that_sounds(notes, seconds_per_quarter, min_length_s):
    sung = SungNotes.of(notes, seconds_per_quarter, RATE, gap_s=0.02, min_length_s=min_length_s)
    assert sung.samples == round((sung.ends.max() + TAIL_S) * RATE)
    assert np.all(sung.ends >= sung.onsets + min_length_s)
    assert np.all(sung.ends < sung.onsets + np.array([length for _, length, _ in notes]) * seconds_per_quarter)
    for i, onset in enumerate(sung.onsets):
        start = int(np.ceil(onset * RATE))
        assert sung.note[start] == i and sung.pitches[sung.note[start]] == notes[i][2]
    assert np.all(np.diff(sung.note) >= 0)


def test_wander_is_slow_unit_noise():
    drift = wander(np.random.default_rng(0), 4 * RATE, RATE, hz=4.0)
    assert np.isclose(drift.std(), 1.0)
    spectrum = np.abs(np.fft.rfft(drift)) ** 2
    hz = np.fft.rfftfreq(len(drift), 1 / RATE)
    assert spectrum[hz > 100].sum() < 0.01 * spectrum.sum()
