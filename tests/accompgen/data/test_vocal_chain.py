"""The recording chain training vocals go through."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accompgen.data.vocal_chain import GAIN_DB, NOISE_SNR_DB, REVERB, RT60_S, TILT_DB, VocalChain, noise_at, room, shelf

RATE = 24000


def tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(round(seconds * RATE)) / RATE)


@pytest.mark.parametrize("tilt_db", [-6.0, 3.0, 6.0])
def test_the_shelf_moves_the_highs_by_the_tilt_and_leaves_the_lows(tilt_db):
    def level_db(audio):
        return 10 * np.log10(np.mean(audio[RATE // 2 :] ** 2) / 0.5)

    assert level_db(shelf(tone(10_000.0), RATE, tilt_db)) == pytest.approx(tilt_db, abs=0.5)
    assert level_db(shelf(tone(100.0), RATE, tilt_db)) == pytest.approx(0.0, abs=0.5)


def test_noise_sits_at_the_asked_distance_below_the_signal():
    audio = tone(440.0)
    noise = noise_at(audio, 30.0, np.random.default_rng(0))
    assert 10 * np.log10(np.mean(audio**2) / np.mean(noise**2)) == pytest.approx(30.0, abs=1e-6)


def test_a_dry_room_leaves_the_sound_and_a_wet_one_lets_it_ring_on():
    audio = np.concatenate([tone(440.0, 0.5), np.zeros(RATE // 2)])
    assert np.array_equal(room(audio, RATE, 0.0, 0.5, np.random.default_rng(0)), audio)
    wet = room(audio, RATE, 0.5, 0.5, np.random.default_rng(0))
    assert np.sqrt(np.mean(wet[RATE // 2 + RATE // 10 :] ** 2)) > 0.01


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_drawn_chain_lies_in_its_ranges_and_keeps_the_length(seed):
    chain = VocalChain.draw(np.random.default_rng(seed))
    spans = (GAIN_DB, TILT_DB, REVERB, RT60_S, NOISE_SNR_DB)
    values = (chain.gain_db, chain.tilt_db, chain.reverb, chain.rt60_s, chain.noise_snr_db)
    assert all(low <= value <= high for (low, high), value in zip(spans, values, strict=True))
    out = chain.apply(tone(440.0, 0.3), RATE, np.random.default_rng(seed))
    assert out.dtype == np.float32 and len(out) == round(0.3 * RATE) and np.isfinite(out).all()
