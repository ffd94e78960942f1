"""Training a small HuBERT (transformers' `HubertModel`) whose features carry pitch, for the semantic tokens.

Features of a randomly initialised HuBERT carry almost no pitch (k-means tokens of them guessed the held-out pitch
class 26 % of the time, chance 23 %), while log-chroma tokens guessed 89 %. So, as HuBERT's own first iteration
learns from MFCC targets, this model learns to predict per-frame log-chroma and log-mel from raw 16 kHz audio;
`accompgen fit-kmeans` then clusters its last layer. The result is a plain `save_pretrained` directory that
`--hubert DIR` loads exactly like facebook/hubert-base-ls960.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import HubertConfig, HubertModel

from accompgen.core.audio import resample
from accompgen.core.errors import UserError
from accompgen.core.semantic_framing import SEMANTIC_CONTEXT, SEMANTIC_HOP, SEMANTIC_SAMPLE_RATE
from accompgen.data.stems import SongSource, spread_over
from accompgen.train.frame_features import FEATURES, ChromaMel
from accompgen.train.schedule import warmup_cosine
from accompgen.train.tokenizer_loop import TokenizerTrainer


@dataclass(frozen=True)
class HubertShape:
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 384
    conv_channels: int = 64
    num_conv_pos_embeddings: int = 32
    num_conv_pos_embedding_groups: int = 8

    def hubert_config(self) -> HubertConfig:
        return HubertConfig(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            conv_dim=(self.conv_channels,) * 7,  # HuBERT's strides (5, 2, 2, 2, 2, 2, 2): 320 samples per frame
            num_conv_pos_embeddings=self.num_conv_pos_embeddings,
            num_conv_pos_embedding_groups=self.num_conv_pos_embedding_groups,
        )


@dataclass(frozen=True)
class SemanticTrainSettings:
    # The chroma loss was still falling at 1500 steps (0.29); at 6000 (0.12) the chord movement of the chorale
    # accompaniments' tokens rose from 0.10 to 0.19 (of the accompaniments themselves 0.33), and the whole model's
    # harmonic share from 0.54 to 0.66 (README, the ladder)
    steps: int = 6000
    batch_size: int = 16
    crop_frames: int = 100  # 2 s
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.01
    chroma_weight: float = 2.0  # pitch is what the tokens are for; the mel keeps loudness and timbre apart
    max_songs: int = 200
    checkpoint_every: int = 250
    seed: int = 0
    precision: str = "auto"  # of the Transformer and its convolutions: auto (bf16 where native), bf16 or fp32


class FrameTargets(ChromaMel):
    """(B, n) 16 kHz audio framed as HuBERT frames it (accompgen.core.semantic_framing) -> (B, F, FEATURES)
    log-chroma and log-mel, each frame centred on its own 20 ms."""

    def __init__(self) -> None:
        super().__init__(SEMANTIC_SAMPLE_RATE)

    @staticmethod
    def frames_of(samples: int) -> int:
        return (samples - 2 * SEMANTIC_CONTEXT) // SEMANTIC_HOP

    def forward(self, audio: Tensor) -> Tensor:
        return self.features(audio, self.frames_of(audio.shape[-1]))

    def frame_power(self, audio: Tensor, n_fft: int, window: Tensor, frames: int) -> Tensor:
        # frame f is centred on sample SEMANTIC_CONTEXT + SEMANTIC_HOP (f + 1/2) of the chunk
        centre = SEMANTIC_CONTEXT + SEMANTIC_HOP // 2
        left = n_fft // 2 - centre
        padded = F.pad(audio, (max(left, 0), n_fft))[:, max(-left, 0) :]
        spec = torch.stft(padded, n_fft, SEMANTIC_HOP, window=window, center=False, return_complex=True)
        return spec.abs().pow(2).transpose(1, 2)[:, :frames]


class TargetHead(nn.Module):
    """HuBERT's last layer -> standardised targets."""

    def __init__(self, hidden: int, targets: int):
        super().__init__()
        self.proj = nn.Linear(hidden, targets)
        self.register_buffer("mean", torch.zeros(targets))
        self.register_buffer("std", torch.ones(targets))

    def standardise(self, targets: Tensor) -> Tensor:
        return (targets - self.mean) / self.std


class ChunkSampler:
    """Random HuBERT-framed chunks of vocals and accompaniments in memory at 16 kHz, reproducible per step."""

    def __init__(self, audio: list[np.ndarray], settings: SemanticTrainSettings):
        self.length = settings.crop_frames * SEMANTIC_HOP + 2 * SEMANTIC_CONTEXT
        self.audio = [a for a in audio if len(a) > self.length]
        if not self.audio:
            raise UserError("no song is long enough to train the semantic encoder on")
        self.settings = settings

    def batch(self, step: int, stream: int = 0) -> Tensor:
        rng = np.random.default_rng([self.settings.seed, step, stream])
        picks = rng.integers(len(self.audio), size=self.settings.batch_size)
        crops = []
        for song in (self.audio[i] for i in picks):
            start = rng.integers(len(song) - self.length)
            crops.append(song[start : start + self.length])
        return torch.from_numpy(np.stack(crops))


def read_stems(sources: list[SongSource], max_songs: int) -> list[np.ndarray]:
    """Vocals and accompaniment of up to `max_songs` songs (spread over the list), mono at 16 kHz."""
    out = []
    for source in spread_over(sources, max_songs):
        song = source.load()
        for audio in (song.vocals, song.accompaniment):
            out.append(resample(audio, song.sample_rate, SEMANTIC_SAMPLE_RATE))
    return out


class SemanticEncoderTrainer(TokenizerTrainer):
    """Trains the HuBERT into `out`: checkpoint.pt while training, then config.json + model.safetensors."""

    what = "semantic encoder"
    settings: SemanticTrainSettings

    def __init__(self, out: Path, audio: list[np.ndarray], shape: HubertShape, settings: SemanticTrainSettings):
        super().__init__(out, shape, settings)
        self.sampler = ChunkSampler(audio, settings)
        torch.manual_seed(settings.seed)
        self.model = HubertModel(shape.hubert_config())
        self.targets = FrameTargets()
        self.head = TargetHead(shape.hidden_size, FEATURES)
        self._fit_target_statistics()
        params = [*self.model.parameters(), *self.head.parameters()]
        self.optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)

    @torch.no_grad()
    def _fit_target_statistics(self) -> None:
        targets = torch.cat([self.targets(self.sampler.batch(i, stream=1)) for i in range(8)]).flatten(0, 1)
        self.head.mean.copy_(targets.mean(0))
        self.head.std.copy_(targets.std(0).clamp(min=1e-3))

    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "head": self.head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])

    def _train_step(self) -> dict[str, Any]:
        for group in self.optimizer.param_groups:
            group["lr"] = self.settings.lr * warmup_cosine(
                self.step, self.settings.warmup_steps, self.settings.steps, self.settings.min_lr_ratio
            )
        torch.manual_seed(self.settings.seed * 1_000_003 + self.step)  # SpecAugment masks, reproducible on resume
        audio = self.sampler.batch(self.step)
        with torch.no_grad():
            targets = self.head.standardise(self.targets(audio))
        with self.precision.autocast():
            predicted = self.head.proj(self.model(audio).last_hidden_state)[:, : targets.shape[1]].float()
        chroma = F.mse_loss(predicted[..., :12], targets[..., :12])
        mel = F.mse_loss(predicted[..., 12:], targets[..., 12:])
        loss = self.settings.chroma_weight * chroma + mel
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return {"step": self.step + 1, "loss": loss.item(), "chroma": chroma.item(), "mel": mel.item()}
