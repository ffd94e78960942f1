"""A synthesized sung phrase: a stand-in vocal for the demo, the tests and random-init tokenizers (numpy only)."""

from __future__ import annotations

import numpy as np

# A C-major phrase as (MIDI pitch, beats); the vowel formants alternate between "ah" and "oo".
PHRASE = [(60, 1), (64, 1), (67, 2), (65, 1), (64, 1), (62, 2), (60, 1), (62, 1), (64, 2), (60, 4)]
FORMANTS = [(730.0, 1090.0, 2440.0), (300.0, 870.0, 2240.0)]


def sung_phrase(duration_s: float, sample_rate: int = 44100, seed: int = 0) -> np.ndarray:
    """(round(duration_s * sample_rate),) float32 in [-1, 1]: harmonic notes with vibrato, vowel formants,
    note envelopes and a little breath noise, looping PHRASE at 120 bpm."""
    rng = np.random.default_rng(seed)
    n = round(duration_s * sample_rate)
    t = np.arange(n) / sample_rate
    beat = 0.5
    starts = np.cumsum([0] + [beats * beat for _, beats in PHRASE])
    position = t % starts[-1]
    index = np.searchsorted(starts, position, side="right") - 1
    pitch = np.array([p for p, _ in PHRASE])[index]
    vibrato = 0.3 * np.sin(2 * np.pi * 5.5 * t)
    f0 = 440.0 * 2 ** ((pitch + vibrato - 69) / 12)
    voice = harmonic_voice(f0, np.array(FORMANTS)[index % 2], sample_rate)
    note_time = position - starts[index]
    note_length = np.array([beats * beat for _, beats in PHRASE])[index]
    envelope = np.minimum(1.0, note_time / 0.05) * np.clip((note_length - note_time) / 0.08, 0.0, 1.0)
    audio = voice * envelope + 0.01 * rng.standard_normal(n)
    return np.asarray(0.5 * audio / max(np.abs(audio).max(), 1e-9), dtype=np.float32)


def harmonic_voice(f0: np.ndarray, formants: np.ndarray, sample_rate: int, harmonics: int = 24) -> np.ndarray:
    """An additive voice: the harmonics of f0 (n,) Hz, each at 1/h, raised near the formants (n, k) Hz."""
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = np.zeros(len(f0))
    for harmonic in range(1, harmonics + 1):
        freq = harmonic * f0
        gain = sum(np.exp(-(((freq - formants[:, i]) / 120.0) ** 2)) for i in range(formants.shape[1])) + 0.02
        voice += gain / harmonic * np.sin(harmonic * phase)
    return voice
