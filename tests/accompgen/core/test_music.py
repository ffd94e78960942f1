import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from accompgen.core.music import (
    CHROMA_RATE,
    chroma,
    chroma_correlation,
    consonance_kernel,
    log_mel_distance,
    pitch_class_filters,
    si_snr,
    unit_rows,
    vac,
)

RATE = 24000


def tones(midi_pitches: list[int], seconds: float = 2.0, rate: int = RATE) -> np.ndarray:
    """A sum of harmonic tones (3 partials each) at the given MIDI pitches."""
    t = np.arange(round(seconds * rate)) / rate
    out = np.zeros_like(t)
    for pitch in midi_pitches:
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        out += sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3))
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


@given(st.integers(min_value=-35, max_value=24))  # inside the 55-2000 Hz band; A1 = 55 Hz is its edge
def test_every_equal_tempered_pitch_lands_in_its_pitch_class(semitones):
    frequency = 440.0 * 2 ** (semitones / 12)
    filters = pitch_class_filters(CHROMA_RATE, 4096 * 16, (55.0, 2000.0))
    freqs = np.fft.rfftfreq(4096 * 16, 1 / CHROMA_RATE)
    nearest = int(np.argmin(np.abs(freqs - frequency)))
    assert filters[nearest].argmax() == (9 + semitones) % 12  # A = 9 when C = 0


def test_a_tone_has_the_chroma_of_its_pitch_class():
    for pitch in (57, 60, 64, 71):
        assert chroma(tones([pitch]), RATE).vectors.mean(axis=0).argmax() == pitch % 12


def test_the_kernel_calls_unisons_thirds_fourths_and_fifths_consonant():
    kernel = consonance_kernel()
    assert kernel[0, 0] == kernel[0, 4] == kernel[0, 3] == kernel[0, 7] == kernel[0, 5] == 1  # fifth = ic 5
    assert kernel[0, 1] == kernel[0, 2] == kernel[0, 6] == kernel[0, 11] == -1
    assert (kernel == kernel.T).all()


def test_a_vocal_over_its_own_triad_is_more_consonant_than_over_a_clashing_one():
    vocal = tones([72])  # C5
    c_major = tones([48, 52, 55])  # C E G
    c_sharp_major = tones([49, 53, 56])  # C# F G#
    assert vac(vocal, c_major, RATE) > 0.5
    assert vac(vocal, c_sharp_major, RATE) < vac(vocal, c_major, RATE) - 0.5


def test_vac_is_nan_when_the_two_never_sound_together():
    silent = np.zeros(2 * RATE, dtype=np.float32)
    assert np.isnan(vac(tones([60]), silent, RATE))


def test_reconstruction_scores_rank_a_copy_above_noise():
    audio = tones([60, 64, 67])
    noise = np.random.default_rng(0).standard_normal(len(audio)).astype(np.float32)
    assert si_snr(audio, audio) > 60
    assert si_snr(audio, 3.0 * audio) > 60  # scale-invariant
    assert abs(si_snr(audio, noise)) > 10 and si_snr(audio, noise) < 0
    assert chroma_correlation(audio, audio, RATE) == pytest.approx(1.0)
    assert chroma_correlation(audio, tones([61, 65, 68]), RATE) < 0.5
    assert log_mel_distance(audio, audio, RATE) == pytest.approx(0.0, abs=1e-6)
    assert log_mel_distance(audio, noise, RATE) > 0.5


@given(hnp.arrays(np.float64, (5, 12), elements=st.just(0.0) | st.floats(1e-3, 1e3)))
def test_unit_rows_have_norm_one_and_keep_direction_unless_all_zero(vectors):
    rows = unit_rows(vectors)
    norms = np.linalg.norm(vectors, axis=1)
    sounding = norms > 0
    assert np.allclose(np.linalg.norm(rows[sounding], axis=1), 1.0)
    assert np.allclose(rows[sounding] * norms[sounding, None], vectors[sounding])
    assert not rows[~sounding].any()
