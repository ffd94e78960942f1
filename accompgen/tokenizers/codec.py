"""The acoustic tokenizer: EnCodec 24 kHz from transformers, audio <-> (B, K, F) codes at 75 Hz.

Only the encoder, the residual quantizer and the decoder are used, called directly rather than through
`EncodecModel.encode/decode`, so the same few tensor ops run in training, export and verification. Decoding
looks all codebooks up in one table, so one decoder graph takes any number of leading codebooks: all 8 for
full quality, the 4 coarse ones for a quick preview.

An EnCodec trained with `normalize=True` (our own, see accompgen.train.codec) encodes audio scaled to unit RMS
and needs the scale back when decoding. Generated codes come with no scale, so such a codec decodes at the fixed
level NORMALIZED_OUTPUT_RMS: an accompaniment at a sensible level, which the user can fade as they like.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import EncodecConfig, EncodecModel

from accompgen.core.errors import UserError
from accompgen.core.tokens import ACOUSTIC_RATE_HZ, TokenLayout
from accompgen.tokenizers.pretrained import load_pretrained

CODEC_SAMPLE_RATE = 24000
NORMALIZED_OUTPUT_RMS = 0.1  # -20 dBFS


class Codec(nn.Module):
    """EnCodec limited to the first K codebooks of its residual quantizer."""

    def __init__(self, model: EncodecModel, num_codebooks: int):
        super().__init__()
        self.model = model.eval()
        self.num_codebooks = num_codebooks
        self.hop = math.prod(model.config.upsampling_ratios)
        bits = math.log2(model.config.codebook_size)
        self.bandwidth_kbps = num_codebooks * ACOUSTIC_RATE_HZ * bits / 1000  # exactly K quantizers
        layers = model.quantizer.layers[:num_codebooks]
        self.table = nn.Buffer(torch.cat([layer.codebook.embed for layer in layers]))  # (K * card, dim)
        self.offsets = nn.Buffer(torch.arange(num_codebooks) * model.config.codebook_size)  # (K,)
        self.normalize = bool(model.config.normalize)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path, layout: TokenLayout) -> Codec:
        """Hub id (facebook/encodec_24khz) or a local directory written by `save_pretrained`."""
        model = load_pretrained(EncodecModel, name_or_dir, "EnCodec")
        check_codec(model.config, layout, str(name_or_dir))
        return cls(model, layout.num_codebooks)

    @property
    def sample_rate(self) -> int:
        return self.model.config.sampling_rate

    @torch.no_grad()
    def encode(self, audio: Tensor) -> Tensor:
        """(B, n) audio at 24 kHz -> (B, K, ceil(n / hop)) codes."""
        if self.normalize:
            audio = audio / (audio.pow(2).mean(-1, keepdim=True).sqrt() + 1e-8)
        embeddings = self.model.encoder(audio[:, None, :])
        return self.model.quantizer.encode(embeddings, self.bandwidth_kbps).transpose(0, 1)

    def decode(self, codes: Tensor) -> Tensor:
        """(B, k, F) codes of the first k <= K codebooks -> (B, F * hop) audio at 24 kHz."""
        k = codes.shape[1]
        embeddings = nn.functional.embedding(codes + self.offsets[:k, None], self.table).sum(1)  # (B, F, dim)
        audio = self.model.decoder(embeddings.transpose(1, 2))[:, 0, :]
        return audio * NORMALIZED_OUTPUT_RMS if self.normalize else audio

    forward = decode  # what the codec_decoder graph runs


def check_codec(config: EncodecConfig, layout: TokenLayout, source: str) -> None:
    """EnCodec must match the token layout: 24 kHz, 75 Hz frames, enough codebooks of the right size."""
    problems = []
    if config.sampling_rate != CODEC_SAMPLE_RATE:
        problems.append(f"samples at {config.sampling_rate} Hz, not {CODEC_SAMPLE_RATE}")
    if config.frame_rate != ACOUSTIC_RATE_HZ:
        problems.append(f"runs at {config.frame_rate} frames/s, not {ACOUSTIC_RATE_HZ}")
    if config.codebook_size != layout.codebook_size:
        problems.append(f"has codebooks of {config.codebook_size} entries, the layout {layout.codebook_size}")
    if config.num_quantizers < layout.num_codebooks:
        problems.append(f"has {config.num_quantizers} codebooks, the layout needs {layout.num_codebooks}")
    if problems:
        raise UserError(f"EnCodec from {source} does not fit this model: it " + "; it ".join(problems))


def random_codec(layout: TokenLayout, tiny: bool, seed: int = 0) -> Codec:
    """A randomly initialised EnCodec shaped for the layout: the real 24 kHz architecture, or a tiny one."""
    config = EncodecConfig(
        codebook_size=layout.codebook_size,
        # EncodecConfig derives its quantizer count from the bandwidth: log2(size) bits per codebook per frame
        target_bandwidths=[layout.num_codebooks * ACOUSTIC_RATE_HZ * math.log2(layout.codebook_size) / 1000],
        **({"num_filters": 4, "hidden_size": 16, "codebook_dim": 16, "num_lstm_layers": 1} if tiny else {}),
    )
    torch.manual_seed(seed)
    model = EncodecModel(config)
    for layer in model.quantizer.layers:  # transformers leaves the codebooks at zero
        nn.init.normal_(layer.codebook.embed)
    return Codec(model, layout.num_codebooks)
