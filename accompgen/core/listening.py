"""Listening proxies of sound, in numpy: how much of it is tone (harmonic share, spectral flatness) and whether its
harmony moves when a melody's does (chord movement).

- Harmonic share: per frame (STFT 8192 / hop 4096 at 24 kHz, 60 Hz-4 kHz), the energy of the bins within +-30 cents
  of the equal-tempered grid whose pitch class is among the frame's 3 strongest, over all the band's energy; the
  energy-weighted mean over frames that sound. Instruments playing a chord score near 1; white noise about 0.15
  (60 of every 100 cents, 3 of 12 pitch classes).
- Spectral flatness: per frame (STFT 2048 / hop 1024 at 24 kHz, 60 Hz-4 kHz), the geometric over the arithmetic
  mean of the power spectrum; the mean over frames that sound. Partials score near 0, white noise about 0.56.
- Chord movement: chroma (as VAC's, accompgen.core.music) summed over 0.2 s segments; each signal's change from one
  segment to the next (1 - cosine similarity); the Pearson correlation of the two change series over segments
  where both sound, pooled over songs. An accompaniment that changes chords where the melody moves scores high; a
  drone near 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from accompgen.core.audio import resample
from accompgen.core.music import (
    ACTIVE_DB,
    CHROMA_BAND_HZ,
    CHROMA_HOP,
    CHROMA_N_FFT,
    CHROMA_RATE,
    pitch_class_filters,
    power_spectrogram,
    unit_rows,
)

RATE = 24000
BAND_HZ = (60.0, 4000.0)
HARMONIC_N_FFT, HARMONIC_HOP = 8192, 4096  # 2.9 Hz bins: a semitone is 3.6 Hz wide at 60 Hz
GRID_CENTS = 30.0
STRONGEST_CLASSES = 3
FLATNESS_N_FFT, FLATNESS_HOP = 2048, 1024
SEGMENT_S = 0.2


def _sounding(energy: np.ndarray) -> np.ndarray:
    """Frames within ACTIVE_DB of the loudest one."""
    return energy > max(float(energy.max(initial=0.0)), 1e-12) * 10 ** (ACTIVE_DB / 10)


def _band(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """The STFT bins inside BAND_HZ: (mask over all bins, their frequencies)."""
    freqs = np.fft.rfftfreq(n_fft, 1 / RATE)
    inside = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    return inside, freqs[inside]


def harmonic_share(audio: np.ndarray, rate: int) -> float:
    """The share of the band's energy on the semitone grid of each frame's strongest pitch classes; NaN if silent."""
    inside, freqs = _band(HARMONIC_N_FFT)
    power = power_spectrogram(resample(audio, rate, RATE), HARMONIC_N_FFT, HARMONIC_HOP)[:, inside].astype(np.float64)
    midi = 69 + 12 * np.log2(freqs / 440.0)
    nearest = np.round(midi)
    on_grid = 100 * np.abs(midi - nearest) <= GRID_CENTS
    classes = np.zeros((len(freqs), 12))
    classes[np.flatnonzero(on_grid), nearest[on_grid].astype(int) % 12] = 1.0
    per_class = power @ classes  # (frames, 12) on-grid energy
    strongest = np.sort(per_class, axis=1)[:, -STRONGEST_CLASSES:].sum(axis=1)
    total = power.sum(axis=1)
    sounding = _sounding(total)
    if not sounding.any():
        return float("nan")
    return float(strongest[sounding].sum() / total[sounding].sum())


def spectral_flatness(audio: np.ndarray, rate: int) -> float:
    """Mean flatness of the frames that sound, in [0, 1]: 0 for pure partials, 1 for a flat spectrum; NaN if silent."""
    inside, _ = _band(FLATNESS_N_FFT)
    power = power_spectrogram(resample(audio, rate, RATE), FLATNESS_N_FFT, FLATNESS_HOP)[:, inside].astype(np.float64)
    mean = power.mean(axis=1)
    sounding = _sounding(mean)
    if not sounding.any():
        return float("nan")
    power = power[sounding] + 1e-20
    return float((np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)).mean())


def segment_chroma(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(segments, 12) L2-normalised chroma of every 0.2 s segment, and which segments sound."""
    power = power_spectrogram(resample(audio, rate, CHROMA_RATE), CHROMA_N_FFT, CHROMA_HOP // 2)
    frames = power @ pitch_class_filters(CHROMA_RATE, CHROMA_N_FFT, CHROMA_BAND_HZ)
    per_segment = round(SEGMENT_S * CHROMA_RATE / (CHROMA_HOP // 2))
    n = len(frames) // per_segment
    segments = frames[: n * per_segment].reshape(n, per_segment, 12).sum(axis=1)
    sounding = _sounding(segments.sum(axis=1))
    return unit_rows(segments), sounding


def chroma_change(segments: np.ndarray) -> np.ndarray:
    """(segments - 1,) 1 - cosine similarity of consecutive L2-normalised chroma vectors."""
    return np.asarray(1.0 - (segments[1:] * segments[:-1]).sum(axis=1))


def chord_movement(pairs: Sequence[tuple[np.ndarray, np.ndarray]], rate: int) -> float:
    """Correlation of melody and accompaniment chroma change between consecutive segments where both sound, pooled
    over (melody, accompaniment) pairs (one song's few segments give a noisy figure); NaN when either never
    changes."""
    return segment_chord_movement(
        [(*segment_chroma(melody, rate), *segment_chroma(accompaniment, rate)) for melody, accompaniment in pairs]
    )


def segment_chord_movement(songs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> float:
    """`chord_movement` of segments already computed: per song (melody segments, which sound, accompaniment
    segments, which sound), L2-normalised (segments, 12) chroma."""
    melody_changes, accompaniment_changes = [], []
    for m, m_on, a, a_on in songs:
        n = min(len(m), len(a))
        both = m_on[1:n] & m_on[: n - 1] & a_on[1:n] & a_on[: n - 1]
        melody_changes.append(chroma_change(m[:n])[both])
        accompaniment_changes.append(chroma_change(a[:n])[both])
    changes = np.concatenate(melody_changes), np.concatenate(accompaniment_changes)
    if len(changes[0]) < 3 or min(float(np.std(c)) for c in changes) < 1e-9:
        return float("nan")
    return float(np.corrcoef(*changes)[0, 1])
