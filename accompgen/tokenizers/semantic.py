"""The semantic tokenizer: HuBERT features of one layer, each assigned its nearest k-means centroid (50 Hz ids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

from accompgen.core.errors import UserError
from accompgen.core.semantic_framing import SEMANTIC_HOP, SEMANTIC_SAMPLE_RATE
from accompgen.core.tokens import SEMANTIC_RATE_HZ
from accompgen.tokenizers.pretrained import load_pretrained


class HubertFeatures(nn.Module):
    """(B, n) 16 kHz audio, padded by `framing.semantic_chunk` -> (B, F, D) features of one layer."""

    def __init__(self, model: HubertModel, layer: int, normalize: bool):
        super().__init__()
        if not 1 <= layer <= model.config.num_hidden_layers:
            raise UserError(f"HuBERT layer {layer} does not exist: the model has {model.config.num_hidden_layers}")
        # Keep one layer past the one we read: with either layer-norm variant, hidden_states[layer] is then the
        # same tensor as in the full model, and the layers after it are never run.
        model.encoder.layers = model.encoder.layers[: layer + 1]
        self.model = model.eval()
        self.layer = layer
        self.normalize = normalize  # zero mean, unit variance per row, as the model's feature extractor does

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path, layer: int) -> HubertFeatures:
        model = load_pretrained(HubertModel, name_or_dir, "HuBERT")
        try:
            normalize = Wav2Vec2FeatureExtractor.from_pretrained(str(name_or_dir)).do_normalize
        except OSError:  # no preprocessor_config.json: the model was trained on raw audio
            normalize = False
        check_hubert(model.config, str(name_or_dir))
        return cls(model, layer, normalize)

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    def forward(self, audio: Tensor) -> Tensor:
        if self.normalize:
            mean = audio.mean(dim=-1, keepdim=True)
            var = audio.var(dim=-1, keepdim=True, unbiased=False)
            audio = (audio - mean) / torch.sqrt(var + 1e-7)
        return self.model(audio, output_hidden_states=True).hidden_states[self.layer]


class SemanticEncoder(nn.Module):
    """HuBERT features -> nearest of K centroids: (B, n) padded 16 kHz audio -> (B, F) ids in [0, K)."""

    def __init__(self, features: HubertFeatures, centroids: np.ndarray):
        super().__init__()
        if centroids.ndim != 2 or centroids.shape[1] != features.dim:
            raise UserError(f"k-means centroids of shape {centroids.shape} do not fit {features.dim}-d HuBERT features")
        self.features = features
        self.centroids = nn.Buffer(torch.as_tensor(centroids, dtype=torch.float32))

    @property
    def num_clusters(self) -> int:
        return self.centroids.shape[0]

    def forward(self, audio: Tensor) -> Tensor:
        x = self.features(audio)  # (B, F, D)
        # |x - c|^2 without the |x|^2 term, which is the same for every centroid
        distance = self.centroids.pow(2).sum(-1) - 2 * x @ self.centroids.T  # (B, F, K)
        return distance.argmin(dim=-1)


def check_hubert(config: HubertConfig, source: str) -> None:
    """HuBERT must hop 320 samples at 16 kHz (50 Hz frames)."""
    hop = int(np.prod(config.conv_stride))
    if hop != SEMANTIC_HOP:
        rate = SEMANTIC_SAMPLE_RATE / hop
        raise UserError(f"HuBERT from {source} makes {rate:g} frames/s, the semantic tokens need {SEMANTIC_RATE_HZ}")


def random_hubert(layer: int, tiny: bool, seed: int = 0) -> HubertFeatures:
    """A randomly initialised HuBERT: the base architecture, or a tiny one with the same 320-sample hop."""
    tiny_sizes = {
        "hidden_size": 32,
        "num_hidden_layers": max(2, layer + 1),
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "conv_dim": (16,) * 7,
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
    }
    torch.manual_seed(seed)
    return HubertFeatures(HubertModel(HubertConfig(**(tiny_sizes if tiny else {}))), layer, normalize=False)


def fit_kmeans(features: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """(N, D) features -> (k, D) centroids."""
    from sklearn.cluster import MiniBatchKMeans

    if len(features) < k:
        raise UserError(f"k-means needs at least {k} feature frames, got {len(features)}: give it more audio")
    kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    return kmeans.fit(features).cluster_centers_.astype(np.float32)
