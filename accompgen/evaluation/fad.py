"""Frechet Audio Distance: Gaussians fitted to embeddings of two sets of audio, and the distance between them.

FAD = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Kilgour et al., 2019). The embedding model plugs in:
`spectral` (log-mel frames, needs no weights: a baseline for comparing runs with each other) or `clap:PATH_OR_ID`
(LAION CLAP through transformers, for numbers comparable with the literature, when you have the weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.linalg
import soundfile as sf

from accompgen.core.audio import resample
from accompgen.core.errors import UserError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")


def frechet_distance(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    covmean = scipy.linalg.sqrtm(sigma_a @ sigma_b)
    if not np.isfinite(covmean).all():  # a singular product: regularise as the reference implementation does
        offset = np.eye(len(sigma_a)) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    covmean = covmean.real  # sqrtm leaves tiny imaginary parts from rounding
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covmean))


def gaussian(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) -> mean (D,), covariance (D, D)."""
    if len(embeddings) < 2:
        raise UserError("FAD needs at least two embedding frames per set")
    return embeddings.mean(axis=0), np.cov(embeddings, rowvar=False)


def fad(embeddings_a: np.ndarray, embeddings_b: np.ndarray) -> float:
    return frechet_distance(*gaussian(embeddings_a), *gaussian(embeddings_b))


class EmbeddingModel(Protocol):
    sample_rate: int

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """(samples,) mono at sample_rate -> (frames, D)."""
        ...


class SpectralEmbedding:
    """Log-mel spectra, one 64-band frame per 100 ms: no weights, deterministic, numpy only."""

    sample_rate = 16000

    def __init__(self, bands: int = 64, n_fft: int = 1024, hop: int = 1600):
        self.n_fft, self.hop = n_fft, hop
        freqs = np.fft.rfftfreq(n_fft, 1 / self.sample_rate)
        mel = 2595 * np.log10(1 + freqs / 700)
        edges = np.linspace(mel[1], mel[-1], bands + 2)
        lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
        self.filters = np.clip(np.minimum((mel - lo) / (mid - lo), (hi - mel) / (hi - mid)), 0, None)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        if len(audio) < self.n_fft:
            audio = np.pad(audio, (0, self.n_fft - len(audio)))
        frames = np.lib.stride_tricks.sliding_window_view(audio, self.n_fft)[:: self.hop] * np.hanning(self.n_fft)
        power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
        return np.log(power @ self.filters.T + 1e-10)


class ClapEmbedding:
    """CLAP audio embeddings, one per 10 s window, from transformers' ClapModel."""

    sample_rate = 48000

    def __init__(self, name_or_dir: str):
        import torch
        from transformers import ClapFeatureExtractor, ClapModel

        from accompgen.tokenizers.pretrained import load_pretrained

        self.model = load_pretrained(ClapModel, name_or_dir, "CLAP").eval()
        self.extractor = load_pretrained(ClapFeatureExtractor, name_or_dir, "CLAP's feature extractor")
        self.torch = torch

    def embed(self, audio: np.ndarray) -> np.ndarray:
        window = 10 * self.sample_rate
        pieces = [audio[i : i + window] for i in range(0, max(1, len(audio) - window // 2), window)]
        inputs = self.extractor(pieces, sampling_rate=self.sample_rate, return_tensors="pt")
        with self.torch.no_grad():
            return self.model.get_audio_features(**inputs).numpy()


def load_embedding(spec: str) -> EmbeddingModel:
    """`spectral` or `clap:PATH_OR_ID`."""
    if spec == "spectral":
        return SpectralEmbedding()
    if spec.startswith("clap:"):
        return ClapEmbedding(spec.removeprefix("clap:"))
    raise UserError(f"unknown embedding {spec!r}: use spectral or clap:PATH_OR_ID")


def embed_folder(model: EmbeddingModel, folder: str | Path) -> np.ndarray:
    """(N, D) embeddings of every audio file in a folder, mono, at the model's rate."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not paths:
        raise UserError(f"no audio files in {folder}")
    embeddings = []
    for path in paths:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        embeddings.append(model.embed(resample(audio.mean(axis=1), rate, model.sample_rate)))
    return np.concatenate(embeddings)
