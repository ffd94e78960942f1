import numpy as np
import pytest

from accompgen.core.listening import chord_movement, harmonic_share, spectral_flatness
from tests.accompgen.core.test_music import RATE, tones

NOISE = np.random.default_rng(0).standard_normal(2 * RATE).astype(np.float32)


def test_a_chord_of_harmonic_tones_is_tone_and_white_noise_is_not():
    chord = tones([48, 52, 55], 2.0)
    assert harmonic_share(chord, RATE) > 0.9
    assert harmonic_share(NOISE, RATE) == pytest.approx(0.2, abs=0.05)  # 60 of 100 cents, 3 of 12 classes, leakage
    assert spectral_flatness(chord, RATE) < 0.01
    assert spectral_flatness(NOISE, RATE) == pytest.approx(0.56, abs=0.05)  # the flatness of a Gaussian spectrum


def test_a_chord_between_the_grid_is_not_harmonic():
    t = np.arange(2 * RATE) / RATE
    quarter_tones = sum(np.sin(2 * np.pi * 440 * 2 ** ((k + 0.5) / 12) * t) for k in (0, 4, 7))
    assert harmonic_share(quarter_tones, RATE) < 0.2


def test_silence_has_no_share_and_no_flatness():
    silence = np.zeros(RATE, np.float32)
    assert np.isnan(harmonic_share(silence, RATE)) and np.isnan(spectral_flatness(silence, RATE))


def progression(roots: list[int], melody: bool, seconds_each: float = 0.8) -> np.ndarray:
    """One tone (melody) or one major triad per root, each `seconds_each` long."""
    return np.concatenate([tones([r + 24] if melody else [r, r + 4, r + 7], seconds_each) for r in roots])


def test_an_accompaniment_that_changes_chord_with_the_melody_moves_with_it():
    songs = [[48, 53, 55, 48, 57, 53], [50, 55, 57, 50, 52, 55], [52, 57, 59, 52, 48, 57]]
    following = [(progression(r, True), progression(r, False)) for r in songs]
    drone = [(progression(r, True), tones([48, 52, 55], 0.8 * len(r))) for r in songs]
    # its own changes every 1.2 s, the melody's every 0.8 s: they meet once in 4.8 s
    elsewhere = [(progression(r, True), progression(r[:4], False, seconds_each=1.2)) for r in songs]
    moves = chord_movement(following, RATE)
    assert moves > 0.6
    assert chord_movement(drone, RATE) < moves - 0.3  # a drone's chroma changes only by the segments' edges
    assert chord_movement(elsewhere, RATE) < moves - 0.3
