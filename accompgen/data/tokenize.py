"""Audio at any rate -> 50 Hz semantic ids and 75 Hz EnCodec codes, exactly ceil(50 d) and ceil(75 d) frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from accompgen.audio import fit_length, resample
from accompgen.codec import CODEC_SAMPLE_RATE, Codec
from accompgen.framing import SEMANTIC_SAMPLE_RATE, semantic_chunks
from accompgen.semantic import SemanticEncoder
from accompgen.tokens import ACOUSTIC_RATE_HZ, SEMANTIC_RATE_HZ, frames_for

CHUNK_FRAMES = 500  # 10 s per HuBERT call, as in the bridge


@torch.no_grad()
def semantic_frames(module: nn.Module, audio: np.ndarray, rate: int) -> np.ndarray:
    """Run a HuBERT-based module (features, or features + k-means) over audio in chunks -> (F50, ...)."""
    frames = frames_for(len(audio) / rate, SEMANTIC_RATE_HZ)
    audio_16k = resample(audio, rate, SEMANTIC_SAMPLE_RATE)
    device = next(module.parameters()).device
    chunks = semantic_chunks(audio_16k, frames, CHUNK_FRAMES)
    return np.concatenate([module(torch.from_numpy(chunk)[None].to(device))[0].cpu().numpy() for *_, chunk in chunks])


@dataclass
class Tokenizer:
    semantic: SemanticEncoder
    codec: Codec

    def semantic_ids(self, audio: np.ndarray, rate: int) -> np.ndarray:
        """(F50,) cluster ids in [0, K)."""
        return semantic_frames(self.semantic, audio, rate)

    @torch.no_grad()
    def codes(self, audio: np.ndarray, rate: int) -> np.ndarray:
        """(K, F75) codes."""
        frames = frames_for(len(audio) / rate, ACOUSTIC_RATE_HZ)
        audio_24k = fit_length(resample(audio, rate, CODEC_SAMPLE_RATE), frames * self.codec.hop)
        device = next(self.codec.parameters()).device
        return self.codec.encode(torch.from_numpy(audio_24k)[None].to(device))[0].cpu().numpy()[:, :frames]
