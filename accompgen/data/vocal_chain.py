"""What stands between a singer and the file: level, a microphone's tilt, a room, the noise of the place.

Training vocals go through a chain drawn per rendition, so that the models learn the melody rather than one
recording; the held-out songs keep a clean chain, so their scores stay comparable from run to run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve, lfilter

GAIN_DB = (-12.0, 0.0)
TILT_DB = (-6.0, 6.0)  # gain at high frequencies against low, through a first-order shelf
REVERB = (0.0, 0.3)  # share of the reverberant sound
RT60_S = (0.2, 0.8)
NOISE_SNR_DB = (20.0, 45.0)


@dataclass(frozen=True)
class VocalChain:
    gain_db: float
    tilt_db: float
    reverb: float
    rt60_s: float
    noise_snr_db: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> VocalChain:
        return cls(*(float(rng.uniform(*span)) for span in (GAIN_DB, TILT_DB, REVERB, RT60_S, NOISE_SNR_DB)))

    def apply(self, audio: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        """The vocal as recorded through this chain; as long as `audio`, float32."""
        out = shelf(audio, rate, self.tilt_db)
        out = room(out, rate, self.reverb, self.rt60_s, rng)
        out = out + noise_at(out, self.noise_snr_db, rng)
        return np.asarray(out * 10 ** (self.gain_db / 20), dtype=np.float32)


def shelf(audio: np.ndarray, rate: int, tilt_db: float, corner_hz: float = 1500.0) -> np.ndarray:
    """A first-order high shelf: frequencies well above the corner raised (or cut) by tilt_db."""
    gain = 10 ** (tilt_db / 20)
    k = np.tan(np.pi * corner_hz / rate)
    # bilinear transform of (s + k) -> (gain s + k) over (s + k), normalised
    b = np.array([gain + k, k - gain]) / (1 + k)
    a = np.array([1.0, (k - 1) / (1 + k)])
    return np.asarray(lfilter(b, a, audio))


def room(audio: np.ndarray, rate: int, wet: float, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A room: exponentially decaying noise as the impulse response, mixed in at `wet`."""
    length = round(1.25 * rt60_s * rate)
    decay = np.exp(-6.9 * np.arange(length) / (rt60_s * rate))
    response = rng.standard_normal(length) * decay
    reverberant = fftconvolve(audio, response / np.sqrt((response**2).sum()))[: len(audio)]
    return (1 - wet) * audio + wet * reverberant


def noise_at(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Pink noise (a 1/f power spectrum, as rooms and preamps have) at snr_db below the audio's power."""
    spectrum = np.fft.rfft(rng.standard_normal(len(audio)))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    spectrum[0] = 0.0
    pink = np.fft.irfft(spectrum, len(audio))
    power = float(np.mean(audio**2))
    return pink * np.sqrt(power / max(float(np.mean(pink**2)), 1e-20) * 10 ** (-snr_db / 10))
