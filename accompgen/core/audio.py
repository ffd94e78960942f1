"""Sample-rate conversion and exact lengths, shared by training and the bridge (numpy and soxr only)."""

from __future__ import annotations

import numpy as np
import soxr


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample along the last axis (soxr, high quality)."""
    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    if audio.ndim == 1:
        return np.asarray(soxr.resample(audio, rate_in, rate_out, quality="HQ"), dtype=np.float32)
    # soxr takes (samples, channels): rows become channels
    return np.asarray(soxr.resample(audio.T, rate_in, rate_out, quality="HQ").T, dtype=np.float32)


def fit_length(audio: np.ndarray, frames: int) -> np.ndarray:
    """Trim or pad with silence along the last axis to exactly `frames` samples."""
    if audio.shape[-1] >= frames:
        return audio[..., :frames]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, frames - audio.shape[-1])])
