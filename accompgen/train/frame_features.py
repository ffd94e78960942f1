"""Per-frame log-chroma and log-mel: what the semantic encoder learns to predict from audio, and what the codec's
first codebook can be taught to carry. One definition, framed two ways: HuBERT's frames at 16 kHz, the codec's at
24 kHz."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from accompgen.core.music import mel_filters, pitch_class_filters

CHROMA_WINDOW_S = 0.128  # enough frequency resolution for low notes
MEL_WINDOW_S = 0.032
N_MELS = 40
CHROMA_BAND_HZ = (55.0, 2000.0)
MEL_BAND_HZ = (30.0, 7600.0)
FEATURES = 12 + N_MELS


class ChromaMel(nn.Module):
    """(B, n) audio at `rate` -> (B, frames, FEATURES): log-chroma, then log-mel. Subclasses say where each frame
    lies (`frame_power`)."""

    def __init__(self, rate: int):
        super().__init__()
        self.chroma_n_fft, self.mel_n_fft = round(CHROMA_WINDOW_S * rate), round(MEL_WINDOW_S * rate)
        chroma = pitch_class_filters(rate, self.chroma_n_fft, CHROMA_BAND_HZ)
        mel = mel_filters(rate, self.mel_n_fft, N_MELS, *MEL_BAND_HZ)
        self.register_buffer("chroma", torch.from_numpy(chroma), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel), persistent=False)
        self.register_buffer("chroma_window", torch.hann_window(self.chroma_n_fft), persistent=False)
        self.register_buffer("mel_window", torch.hann_window(self.mel_n_fft), persistent=False)

    def features(self, audio: Tensor, frames: int) -> Tensor:
        chroma = self.frame_power(audio, self.chroma_n_fft, self.chroma_window, frames) @ self.chroma
        mel = self.frame_power(audio, self.mel_n_fft, self.mel_window, frames) @ self.mel
        return torch.cat([torch.log(chroma + 1e-6), torch.log(mel + 1e-6)], dim=-1)

    def frame_power(self, audio: Tensor, n_fft: int, window: Tensor, frames: int) -> Tensor:
        """(B, n) -> (B, frames, n_fft // 2 + 1) power spectra, one per frame."""
        raise NotImplementedError
