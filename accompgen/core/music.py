"""Listening proxies in numpy: chroma, vocal-accompaniment consonance (VAC), log-mel distance and SI-SNR.

VAC asks whether the accompaniment's pitch classes agree with the vocal's, moment by moment: 12-bin chroma per
frame (STFT 4096 / hop 2048 at 24 kHz, 55-2000 Hz), L2-normalised; over the frames where both signals sound, the
mean of sum_ij v_i^2 K_ij a_j^2 with K = +1 for the consonant interval classes {0, 3, 4, 5} (unison/octave,
thirds/sixths, fourths/fifths) and -1 for the dissonant {1, 2, 6} (seconds/sevenths, tritone). It lies in
[-1, 1]: a matched real pair scores high, the same vocal over another song's accompaniment lower.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accompgen.core.audio import resample

CHROMA_RATE = 24000
CHROMA_N_FFT = 4096
CHROMA_HOP = 2048
CHROMA_BAND_HZ = (55.0, 2000.0)
CONSONANT = (0, 3, 4, 5)  # interval classes, in semitones
DISSONANT = (1, 2, 6)
ACTIVE_DB = -30.0  # a frame sounds when its band energy lies within this of the signal's loudest frame


def pitch_class_filters(rate: int, n_fft: int, band_hz: tuple[float, float]) -> np.ndarray:
    """(n_fft // 2 + 1, 12) 0/1 matrix: which pitch class (C = 0) every STFT bin inside the band belongs to."""
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    inside = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    classes = np.round(12 * np.log2(np.where(inside, freqs, 440.0) / 440.0)).astype(int) % 12
    classes = (classes + 9) % 12  # A = 9 when C = 0
    filters = np.zeros((len(freqs), 12), dtype=np.float32)
    filters[np.nonzero(inside)[0], classes[inside]] = 1.0
    return filters


def mel_filters(rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular filters on the HTK mel scale."""
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    mel = 2595 * np.log10(1 + freqs / 700)
    lo_mel, hi_mel = 2595 * np.log10(1 + np.array([fmin, fmax or rate / 2]) / 700)
    edges = np.linspace(lo_mel, hi_mel, n_mels + 2)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    triangles = np.clip(np.minimum((mel - lo) / (mid - lo), (hi - mel) / (hi - mid)), 0, None)
    return np.asarray(triangles.T, dtype=np.float32)


def power_spectrogram(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(frames, n_fft // 2 + 1) |STFT|^2 with a Hann window, frames starting every `hop` samples."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < n_fft:
        audio = np.pad(audio, (0, n_fft - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop] * np.hanning(n_fft).astype(np.float32)
    return np.abs(np.fft.rfft(frames, axis=-1)) ** 2


@dataclass(frozen=True)
class Chroma:
    vectors: np.ndarray  # (frames, 12) L2-normalised pitch-class energy
    active: np.ndarray  # (frames,) bool: the frame sounds


def chroma(audio: np.ndarray, rate: int) -> Chroma:
    """VAC's chroma of mono audio at any rate."""
    power = power_spectrogram(resample(audio, rate, CHROMA_RATE), CHROMA_N_FFT, CHROMA_HOP)
    classes = power @ pitch_class_filters(CHROMA_RATE, CHROMA_N_FFT, CHROMA_BAND_HZ)
    energy = classes.sum(axis=1)
    active = energy > max(float(energy.max()), 1e-12) * 10 ** (ACTIVE_DB / 10)
    return Chroma(unit_rows(classes), active)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(..., D) -> the same vectors scaled to unit L2 norm along the last axis; all-zero vectors stay zero."""
    return np.asarray(vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12))


def consonance_kernel() -> np.ndarray:
    """(12, 12) K_ij: +1 consonant, -1 dissonant interval class between pitch classes i and j."""
    steps = np.abs(np.arange(12)[:, None] - np.arange(12)[None, :]) % 12
    interval_class = np.minimum(steps, 12 - steps)
    return np.where(np.isin(interval_class, CONSONANT), 1.0, -1.0)


def vac(vocal: np.ndarray, accompaniment: np.ndarray, rate: int) -> float:
    """Vocal-accompaniment consonance of two equally long signals; NaN when they never sound together."""
    v, a = chroma(vocal, rate), chroma(accompaniment, rate)
    n = min(len(v.vectors), len(a.vectors))
    both = v.active[:n] & a.active[:n]
    if not both.any():
        return float("nan")
    scores = np.einsum("fi,ij,fj->f", v.vectors[:n][both] ** 2, consonance_kernel(), a.vectors[:n][both] ** 2)
    return float(scores.mean())


def chroma_correlation(reference: np.ndarray, estimate: np.ndarray, rate: int) -> float:
    """Pearson correlation of two signals' chroma over the reference's sounding frames: 1 = the same harmony."""
    return correlation_of_chroma(chroma(reference, rate), chroma(estimate, rate))


def correlation_of_chroma(reference: Chroma, estimate: Chroma) -> float:
    """`chroma_correlation` of chroma already computed; NaN when the reference sounds in fewer than two frames."""
    n = min(len(reference.vectors), len(estimate.vectors))
    keep = reference.active[:n]
    if keep.sum() < 2:
        return float("nan")
    return float(np.corrcoef(reference.vectors[:n][keep].ravel(), estimate.vectors[:n][keep].ravel())[0, 1])


def si_snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-noise ratio in dB (Le Roux et al., 2019)."""
    n = min(len(reference), len(estimate))
    ref = reference[:n].astype(np.float64) - reference[:n].mean()
    est = estimate[:n].astype(np.float64) - estimate[:n].mean()
    target = ref * (est @ ref) / max(ref @ ref, 1e-20)
    noise = est - target
    return float(10 * np.log10(max(target @ target, 1e-20) / max(noise @ noise, 1e-20)))


def log_mel_distance(reference: np.ndarray, estimate: np.ndarray, rate: int, n_mels: int = 80) -> float:
    """Mean absolute difference of log10 mel spectra (n_fft 1024, hop 256), each signal scaled to unit RMS."""
    filters = mel_filters(rate, 1024, n_mels)
    n = min(len(reference), len(estimate))
    spectra = []
    for signal in (reference[:n], estimate[:n]):
        signal = signal / max(float(np.sqrt(np.mean(signal.astype(np.float64) ** 2))), 1e-9)
        spectra.append(np.log10(power_spectrogram(signal, 1024, 256) @ filters + 1e-5))
    return float(np.abs(spectra[0] - spectra[1]).mean())
