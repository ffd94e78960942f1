"""Audio at any rate -> 50 Hz semantic ids and 75 Hz EnCodec codes, exactly ceil(50 d) and ceil(75 d) frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from accompgen.core.audio import fit_length, resample
from accompgen.core.semantic_framing import SEMANTIC_CHUNK_FRAMES, SEMANTIC_SAMPLE_RATE, semantic_chunks
from accompgen.core.tokens import ACOUSTIC_RATE_HZ, SEMANTIC_RATE_HZ, frames_for
from accompgen.tokenizers.codec import CODEC_SAMPLE_RATE, Codec
from accompgen.tokenizers.semantic import SemanticEncoder


@torch.no_grad()
def semantic_frames(module: nn.Module, audio: np.ndarray, rate: int) -> np.ndarray:
    """Run a HuBERT-based module (features, or features + k-means) over audio in chunks -> (F50, ...)."""
    frames = frames_for(len(audio) / rate, SEMANTIC_RATE_HZ)
    audio_16k = resample(audio, rate, SEMANTIC_SAMPLE_RATE)
    device = next(module.parameters()).device
    chunks = semantic_chunks(audio_16k, frames, SEMANTIC_CHUNK_FRAMES)
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
