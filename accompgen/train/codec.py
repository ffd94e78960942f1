"""Training a compact EnCodec (transformers' `EncodecModel`), which ships no training step of its own.

What the training adds to the transformers model, as in EnCodec and SoundStream:
- a residual VQ trained with EMA codebooks, a commitment loss and a straight-through estimator; the codebooks are
  the model's own buffers (`embed`, `embed_avg`, `cluster_size`), so `save_pretrained` writes the trained state;
- a plain autoencoder warm-up, then k-means initialisation of every codebook on the residuals it will see, and
  restarts of codes that fall out of use (without these the codebooks collapsed to a handful of codes);
- quantizer dropout: some steps use only the first n codebooks, so the coarse codebooks alone already sound right;
- a waveform MSE plus multi-resolution STFT and mel losses, on RMS-normalised audio (`normalize=True`);
- optionally, semantic distillation as SpeechTokenizer and Mimi do it: the first codebook's vectors, through a
  linear head used only in training, predict each frame's log-chroma and log-mel (the semantic encoder's targets),
  so that the first codes the coarse stage writes carry what the semantic tokens carry.

The result loads with `EncodecModel.from_pretrained(DIR)` exactly like facebook/encodec_24khz. Checkpoints hold
every tensor and RNG state the loop uses, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import EncodecConfig, EncodecModel

from accompgen.core.audio import resample
from accompgen.core.errors import UserError
from accompgen.core.listening import harmonic_share, spectral_flatness
from accompgen.core.music import chroma_correlation, log_mel_distance, mel_filters, si_snr
from accompgen.core.tokens import ACOUSTIC_RATE_HZ
from accompgen.data.stems import SongSource, spread_over
from accompgen.tokenizers.codec import CODEC_SAMPLE_RATE, Codec
from accompgen.tokenizers.pretrained import load_pretrained
from accompgen.train.frame_features import FEATURES, ChromaMel
from accompgen.train.schedule import warmup_cosine
from accompgen.train.tokenizer_loop import TokenizerTrainer


@dataclass(frozen=True)
class CodecShape:
    """The architecture: EnCodec 24 kHz's graph at a size that trains on a CPU."""

    num_filters: int = 16
    hidden_size: int = 128  # also the codebook dimension
    num_lstm_layers: int = 1
    upsampling_ratios: tuple[int, ...] = (8, 5, 4, 2)  # product 320: 75 frames/s at 24 kHz
    codebook_size: int = 256
    num_codebooks: int = 8

    def encodec_config(self) -> EncodecConfig:
        return EncodecConfig(
            sampling_rate=CODEC_SAMPLE_RATE,
            audio_channels=1,
            num_filters=self.num_filters,
            hidden_size=self.hidden_size,
            codebook_dim=self.hidden_size,
            num_lstm_layers=self.num_lstm_layers,
            upsampling_ratios=list(self.upsampling_ratios),
            codebook_size=self.codebook_size,
            # EncodecConfig derives its quantizer count from the bandwidth: log2(size) bits per codebook per frame
            target_bandwidths=[self.num_codebooks * ACOUSTIC_RATE_HZ * math.log2(self.codebook_size) / 1000],
            normalize=True,
        )


@dataclass(frozen=True)
class CodecTrainSettings:
    steps: int = 3000
    batch_size: int = 8
    crop_s: float = 1.0
    lr: float = 3e-3  # 1e-3 and 3e-4 trained worse
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    autoencoder_steps: int = 300  # no quantizer yet: the encoder settles before k-means sees its outputs
    kmeans_batches: int = 16
    ema_decay: float = 0.99
    commitment_weight: float = 1.0
    dead_code_fraction: float = 0.1  # a code used less than this share of a uniform code's use is restarted
    quantizer_dropout: float = 0.5  # share of steps that keep only the first n codebooks (n uniform)
    # The waveform term carries the reconstruction: with the spectral terms alone training settled on one average
    # spectrum for every input (those losses are as low for noise of the right colour as for the signal itself).
    wave_weight: float = 1.0
    spectral_weight: float = 0.1
    min_crop_db: float = -45.0  # quieter crops are drawn again: normalising them would amplify noise
    # Weight of the semantic distillation loss on the first codebook (0: none). Through the straight-through
    # estimator it moves the encoder, so that the first code of a frame says its pitch classes and spectral shape.
    semantic_weight: float = 0.0
    max_songs: int = 200
    checkpoint_every: int = 250
    seed: int = 0
    precision: str = "auto"  # of the convolutions and the LSTM: auto (bf16 where native), bf16 or fp32


@dataclass
class CodecReport:
    songs: int
    seconds: float
    per_codebooks: dict[int, dict[str, float]] = field(default_factory=dict)  # n codebooks -> metrics
    original: dict[str, float] = field(default_factory=dict)  # the sound proxies of the held-out audio itself


class SpectralLoss(nn.Module):
    """Multi-resolution STFT losses: spectral convergence and log magnitude on linear frequencies (they resolve
    pitch, which a coarse mel scale blurs), plus L1 on log mel spectra for the perceptual weighting."""

    def __init__(self, rate: int, sizes: Iterable[int] = (256, 512, 1024, 2048)):
        super().__init__()
        self.sizes = tuple(sizes)
        for n_fft in self.sizes:
            filters = mel_filters(rate, n_fft, n_fft // 8)
            self.register_buffer(f"mel_{n_fft}", torch.from_numpy(filters), persistent=False)
            self.register_buffer(f"window_{n_fft}", torch.hann_window(n_fft), persistent=False)

    def forward(self, estimate: Tensor, target: Tensor) -> Tensor:
        loss = estimate.new_zeros(())
        for n_fft in self.sizes:
            window = getattr(self, f"window_{n_fft}")
            est, ref = (
                torch.stft(audio, n_fft, n_fft // 4, window=window, return_complex=True).abs().transpose(1, 2)
                for audio in (estimate, target)
            )
            convergence = torch.linalg.norm(ref - est) / torch.linalg.norm(ref).clamp(min=1e-5)
            log_magnitude = F.l1_loss(torch.log(est + 1e-5), torch.log(ref + 1e-5))
            mel = getattr(self, f"mel_{n_fft}")
            log_mel = F.l1_loss(torch.log(est @ mel + 1e-5), torch.log(ref @ mel + 1e-5))
            loss = loss + convergence + log_magnitude + log_mel
        return loss / len(self.sizes)


class FrameFeatures(ChromaMel):
    """(B, n) 24 kHz audio -> (B, F, FEATURES) log-chroma and log-mel per codec frame, standardised over the batch:
    what the semantic encoder learns to predict, at the codec's frame rate."""

    def __init__(self, rate: int, hop: int):
        super().__init__(rate)
        self.hop = hop

    def forward(self, audio: Tensor, frames: int) -> Tensor:
        features = self.features(audio, frames)
        return (features - features.mean((0, 1))) / (features.std((0, 1)) + 1e-5)

    def frame_power(self, audio: Tensor, n_fft: int, window: Tensor, frames: int) -> Tensor:
        padded = F.pad(audio, (0, n_fft))  # centred STFT frames land on the codec's frames; the tail is padding
        spec = torch.stft(padded, n_fft, self.hop, window=window, return_complex=True)
        return spec.abs().pow(2).transpose(1, 2)[:, :frames]


class TrainingQuantizer:
    """The model's residual quantizer in training mode: EMA codebooks, commitment, straight-through, restarts."""

    def __init__(self, model: EncodecModel, settings: CodecTrainSettings, vectors_per_step: int):
        self.codebooks = [layer.codebook for layer in model.quantizer.layers]
        self.settings = settings
        size = model.config.codebook_size
        self.dead_below = settings.dead_code_fraction * vectors_per_step / size

    def __call__(self, x: Tensor, n_q: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, D, F) -> quantized with the first n_q codebooks, the first codebook's vectors alone (both
        straight-through, (B, D, F)), commitment loss."""
        flat = x.transpose(1, 2).reshape(-1, x.shape[1])
        residual, quantized, commitment = flat, torch.zeros_like(flat), flat.new_zeros(())
        first = flat
        for book in self.codebooks[:n_q]:
            codes = nearest(residual.detach(), book.embed)
            chosen = book.embed[codes]  # a copy: the EMA update below does not change it
            commitment = commitment + F.mse_loss(residual, chosen)  # pulls the encoder towards its codes
            self._update(book, residual.detach(), codes, generator)
            if book is self.codebooks[0]:
                first = flat + (chosen - flat).detach()
            quantized = quantized + chosen
            residual = residual - chosen
        straight = flat + (quantized - flat).detach()

        def frames(vectors: Tensor) -> Tensor:
            return vectors.reshape(x.shape[0], x.shape[2], -1).transpose(1, 2)

        return frames(straight), frames(first), commitment

    @torch.no_grad()
    def _update(self, book: nn.Module, vectors: Tensor, codes: Tensor, generator: torch.Generator) -> None:
        decay, size = self.settings.ema_decay, book.embed.shape[0]
        counts = torch.bincount(codes, minlength=size).to(vectors.dtype)
        sums = torch.zeros_like(book.embed).index_add_(0, codes, vectors)
        book.cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        book.embed_avg.mul_(decay).add_(sums, alpha=1 - decay)
        total = book.cluster_size.sum()
        smoothed = (book.cluster_size + 1e-5) / (total + size * 1e-5) * total  # Laplace smoothing
        book.embed.copy_(book.embed_avg / smoothed[:, None])
        dead = book.cluster_size < self.dead_below
        if dead.any():
            picks = torch.randint(len(vectors), (int(dead.sum()),), generator=generator)
            book.embed[dead] = vectors[picks]
            book.embed_avg[dead] = vectors[picks] * self.dead_below
            book.cluster_size[dead] = self.dead_below


def nearest(vectors: Tensor, embed: Tensor) -> Tensor:
    """(N, D), (K, D) -> (N,) index of the closest codebook entry."""
    return (embed.pow(2).sum(-1) - 2 * vectors @ embed.T).argmin(-1)


@torch.no_grad()
def kmeans_init(model: EncodecModel, embeddings: Tensor, iterations: int, generator: torch.Generator) -> None:
    """Residual k-means: codebook q is fitted to what codebooks 1..q-1 leave over. embeddings (N, D)."""
    residual = embeddings
    for layer in model.quantizer.layers:
        book = layer.codebook
        size = book.embed.shape[0]
        centroids = residual[torch.randperm(len(residual), generator=generator)[:size]].clone()
        for _ in range(iterations):
            codes = nearest(residual, centroids)
            counts = torch.bincount(codes, minlength=size).to(residual.dtype)
            sums = torch.zeros_like(centroids).index_add_(0, codes, residual)
            used = counts > 0
            centroids[used] = sums[used] / counts[used, None]
        codes = nearest(residual, centroids)
        counts = torch.bincount(codes, minlength=size).to(residual.dtype).clamp(min=1.0)
        book.embed.copy_(centroids)
        book.cluster_size.copy_(counts)
        book.embed_avg.copy_(centroids * counts[:, None])
        residual = residual - centroids[codes]


@torch.no_grad()
def signal_preserving_init(model: EncodecModel) -> None:
    """Every weight-normed convolution: a random direction of unit norm per channel, zero bias.

    transformers initialises the parametrized weights so that each layer shrinks the signal: after the encoder
    two different inputs differed by 1/1000 of the output, the decoder's biases dominated, and training sat in
    the minimum that ignores the input (the same average spectrum for every clip). With unit norms the signal
    keeps its scale through both halves."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)) and hasattr(module, "parametrizations"):
            weight = module.parametrizations.weight
            weight.original1.normal_()
            weight.original0.fill_(1.0)
            if module.bias is not None:
                module.bias.zero_()


def unit_rms(audio: Tensor) -> Tensor:
    """(B, n) -> every row at RMS 1, as `normalize=True` EnCodec sees it."""
    return audio / (audio.pow(2).mean(-1, keepdim=True).sqrt() + 1e-8)


class CropSampler:
    """Random crops of songs held in memory at 24 kHz, drawn reproducibly from (seed, step)."""

    def __init__(self, audio: list[np.ndarray], settings: CodecTrainSettings):
        self.audio = [a for a in audio if len(a) > settings.crop_s * CODEC_SAMPLE_RATE]
        if not self.audio:
            raise UserError(f"no song is longer than a {settings.crop_s:g} s crop: give the codec more audio")
        self.length = round(settings.crop_s * CODEC_SAMPLE_RATE)
        self.settings = settings

    def batch(self, step: int, stream: int = 0) -> Tensor:
        """The crops of one training step; other streams give other crops (k-means initialisation)."""
        rng = np.random.default_rng([self.settings.seed, step, stream])
        crops = []
        while len(crops) < self.settings.batch_size:
            song = self.audio[rng.integers(len(self.audio))]
            start = rng.integers(len(song) - self.length)
            crop = song[start : start + self.length]
            if 10 * np.log10(np.mean(crop.astype(np.float64) ** 2) + 1e-20) >= self.settings.min_crop_db:
                crops.append(crop)
        return torch.from_numpy(np.stack(crops))


def read_accompaniments(sources: list[SongSource], max_songs: int) -> list[np.ndarray]:
    """The accompaniments of up to `max_songs` songs (spread over the list), mono at 24 kHz."""
    out = []
    for source in spread_over(sources, max_songs):
        song = source.load()
        out.append(resample(song.accompaniment, song.sample_rate, CODEC_SAMPLE_RATE))
    return out


class CodecTrainer(TokenizerTrainer):
    """Trains the codec into `out`: checkpoint.pt while training, then config.json + model.safetensors."""

    what = "codec"
    settings: CodecTrainSettings

    def __init__(self, out: Path, audio: list[np.ndarray], shape: CodecShape, settings: CodecTrainSettings):
        super().__init__(out, shape, settings)
        self.sampler = CropSampler(audio, settings)
        torch.manual_seed(settings.seed)
        self.model = EncodecModel(shape.encodec_config())
        signal_preserving_init(self.model)
        self.spectral = SpectralLoss(CODEC_SAMPLE_RATE)
        self.features = FrameFeatures(CODEC_SAMPLE_RATE, math.prod(shape.upsampling_ratios))
        self.semantic_head = nn.Linear(shape.hidden_size, FEATURES)  # trained here, never exported
        parameters = [*self.model.parameters(), *self.semantic_head.parameters()]
        self.optimizer = torch.optim.Adam(parameters, lr=settings.lr, betas=(0.5, 0.9))
        frames = math.ceil(self.sampler.length / math.prod(shape.upsampling_ratios))
        self.quantizer = TrainingQuantizer(self.model, settings, settings.batch_size * frames)
        self.generator = torch.Generator().manual_seed(settings.seed)

    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "semantic_head": self.semantic_head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.semantic_head.load_state_dict(state["semantic_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])

    def _train_step(self) -> dict[str, Any]:
        if self.step == self.settings.autoencoder_steps:
            self._init_codebooks()
        for group in self.optimizer.param_groups:
            group["lr"] = self.settings.lr * warmup_cosine(
                self.step, self.settings.warmup_steps, self.settings.steps, self.settings.min_lr_ratio
            )
        audio = unit_rms(self.sampler.batch(self.step))
        with self.precision.autocast():
            embeddings = self.model.encoder(audio[:, None]).float()  # the codebooks and their updates stay fp32
        quantizing = self.step >= self.settings.autoencoder_steps
        n_q, commitment, first = self.shape.num_codebooks, embeddings.new_zeros(()), embeddings
        if quantizing:
            rng = np.random.default_rng([self.settings.seed, self.step, 2])
            if rng.random() < self.settings.quantizer_dropout:
                n_q = int(rng.integers(1, self.shape.num_codebooks + 1))
            embeddings, first, commitment = self.quantizer(embeddings, n_q, self.generator)
        with self.precision.autocast():
            decoded = self.model.decoder(embeddings)[:, 0, : audio.shape[-1]].float()
        spectral = self.spectral(decoded, audio)
        wave = F.mse_loss(decoded, audio)
        semantic = self._semantic_loss(first, audio) if self.settings.semantic_weight else wave.new_zeros(())
        loss = self.settings.spectral_weight * spectral + self.settings.wave_weight * wave
        loss = loss + self.settings.commitment_weight * commitment + self.settings.semantic_weight * semantic
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return {
            "step": self.step + 1,
            "loss": loss.item(),
            "spectral": spectral.item(),
            "wave": wave.item(),
            "commitment": commitment.item(),
            "semantic": semantic.item(),
            "codebooks": n_q if quantizing else 0,
            "perplexity_1": self._perplexity(0),
        }

    def _semantic_loss(self, first: Tensor, audio: Tensor) -> Tensor:
        """How far the first codebook's vectors (in the warm-up, the encoder's own) are from predicting the frames'
        log-chroma and log-mel through the head."""
        with torch.no_grad():
            targets = self.features(audio, first.shape[-1])
        return F.mse_loss(self.semantic_head(first.transpose(1, 2)), targets)

    def _perplexity(self, layer: int) -> float:
        sizes = self.model.quantizer.layers[layer].codebook.cluster_size
        p = sizes / sizes.sum().clamp(min=1e-9)
        return float(torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum()))

    @torch.no_grad()
    def _init_codebooks(self) -> None:
        batches = [self.sampler.batch(i, stream=1) for i in range(self.settings.kmeans_batches)]
        embeddings = torch.cat([self.model.encoder(unit_rms(b)[:, None]) for b in batches])  # (B, D, F)
        kmeans_init(self.model, embeddings.transpose(1, 2).reshape(-1, embeddings.shape[1]), 10, self.generator)


def evaluate_codec(codec_dir: Path, sources: list[SongSource], seconds: float = 10.0) -> CodecReport:
    """Reconstruction of held-out accompaniments with all, half and a quarter of the codebooks: fidelity (chroma
    correlation, SI-SNR, log-mel distance) and how much of the sound stays tone (harmonic share, flatness;
    accompgen.core.listening), beside the same proxies of the originals."""
    model = load_pretrained(EncodecModel, codec_dir, "EnCodec").eval()
    total = model.config.num_quantizers
    codec = Codec(model, total)
    names = ("chroma_correlation", "si_snr_db", "log_mel_distance", "harmonic_share", "flatness")
    metrics: dict[int, list[tuple[float, ...]]] = {n: [] for n in sorted({total, total // 2, total // 4})}
    originals, used = [], 0.0
    for source in sources:
        song = source.load()
        audio = resample(song.accompaniment, song.sample_rate, CODEC_SAMPLE_RATE)[: round(seconds * CODEC_SAMPLE_RATE)]
        used += len(audio) / CODEC_SAMPLE_RATE
        originals.append((harmonic_share(audio, CODEC_SAMPLE_RATE), spectral_flatness(audio, CODEC_SAMPLE_RATE)))
        codes = codec.encode(torch.from_numpy(audio)[None])
        for n in metrics:
            with torch.no_grad():
                decoded = codec.decode(codes[:, :n])[0, : len(audio)].numpy()
            metrics[n].append(
                (
                    chroma_correlation(audio, decoded, CODEC_SAMPLE_RATE),
                    si_snr(audio, decoded),
                    log_mel_distance(audio, decoded, CODEC_SAMPLE_RATE),
                    harmonic_share(decoded, CODEC_SAMPLE_RATE),
                    spectral_flatness(decoded, CODEC_SAMPLE_RATE),
                )
            )
    report = CodecReport(songs=len(sources), seconds=used)
    for n, rows in metrics.items():
        report.per_codebooks[n] = dict(zip(names, np.nanmean(rows, axis=0).tolist(), strict=True))
    report.original = dict(zip(names[3:], np.nanmean(originals, axis=0).tolist(), strict=True))
    return report
