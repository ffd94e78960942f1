"""A model on disk (config, k-means centroids, one checkpoint per stage), or the same parts built at random.

Layout of a model directory, as training writes it:
    config.yaml        the ModelConfig
    kmeans.npy         (K, D) centroids of the semantic tokenizer
    stages/NAME.pt     the training checkpoint of each stage (semantic, coarse, fine)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from accompgen.core.errors import UserError
from accompgen.core.semantic_framing import SEMANTIC_SAMPLE_RATE, semantic_chunk
from accompgen.core.synth import sung_phrase
from accompgen.core.tokens import SEMANTIC_RATE_HZ, STAGE_NAMES, frames_for
from accompgen.model.config import ModelConfig
from accompgen.model.transformer import StageTransformer, build_stages
from accompgen.tokenizers.codec import Codec, random_codec
from accompgen.tokenizers.semantic import HubertFeatures, SemanticEncoder, fit_kmeans, random_hubert
from accompgen.tokenizers.tokenizer import Tokenizer

CONFIG_FILE = "config.yaml"
KMEANS_FILE = "kmeans.npy"


@dataclass
class ModelParts:
    """Everything a bundle is exported from."""

    config: ModelConfig
    stages: nn.ModuleDict  # StageTransformer by stage name
    semantic: SemanticEncoder
    codec: Codec
    source: dict[str, Any] = field(default_factory=dict)  # how the parts were made, recorded in the bundle


def stage_checkpoint_path(model_dir: Path, stage: str) -> Path:
    return model_dir / "stages" / f"{stage}.pt"


def load_stage(path: Path, config: ModelConfig, stage: str) -> StageTransformer:
    """Weights of one stage from a training checkpoint, checked against the config they must fit."""
    if not path.is_file():
        raise UserError(
            f"no checkpoint for the {stage} stage at {path}: train it first (accompgen train --stage {stage})"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a damaged file
        raise UserError(f"{path} is not a readable checkpoint ({err}); it may be truncated") from err
    expected = config.to_dict()["stages"][stage]
    if checkpoint.get("stage_config") != expected:
        raise UserError(
            f"{path} was trained with another {stage} configuration than {config.name}'s: "
            f"checkpoint {checkpoint.get('stage_config')}, config {expected}"
        )
    model = StageTransformer(config.stages[stage], config.tokens.vocab_size)
    model.load_state_dict(checkpoint["model"])
    return model.eval()


def load_config(model_dir: Path) -> ModelConfig:
    config_path = model_dir / CONFIG_FILE
    if not config_path.is_file():
        raise UserError(f"{model_dir} holds no {CONFIG_FILE}: create it with `accompgen fit-kmeans`")
    return ModelConfig.load(config_path)


def load_tokenizer(model_dir: str | Path) -> Tokenizer:
    """HuBERT + the fitted k-means and EnCodec, as the model directory's config names them."""
    model_dir = Path(model_dir)
    config = load_config(model_dir)
    kmeans_path = model_dir / KMEANS_FILE
    if not kmeans_path.is_file():
        raise UserError(f"{model_dir} holds no {KMEANS_FILE}: run `accompgen fit-kmeans` first")
    features = HubertFeatures.from_pretrained(config.tokenizer.hubert, config.tokenizer.hubert_layer)
    codec = Codec.from_pretrained(config.tokenizer.encodec, config.tokens)
    return Tokenizer(SemanticEncoder(features, np.load(kmeans_path)), codec)


def load_model_dir(model_dir: str | Path) -> ModelParts:
    """A trained model: every stage's checkpoint plus the tokenizers."""
    model_dir = Path(model_dir)
    config = load_config(model_dir)
    tokenizer = load_tokenizer(model_dir)
    stages = nn.ModuleDict(
        {name: load_stage(stage_checkpoint_path(model_dir, name), config, name) for name in STAGE_NAMES}
    )
    return ModelParts(
        config=config,
        stages=stages,
        semantic=tokenizer.semantic,
        codec=tokenizer.codec,
        source={"model_dir": str(model_dir.resolve())},
    )


def random_parts(config: ModelConfig, seed: int = 0) -> ModelParts:
    """Untrained parts shaped by the config: random stages and tokenizers, k-means fitted on a synthetic phrase
    so that every cluster id occurs. The same seed gives the same parts."""
    tiny = config.tokenizer.random_shapes == "tiny"
    features = random_hubert(config.tokenizer.hubert_layer, tiny, seed)
    seconds = max(8.0, 2 * config.tokens.semantic_clusters / SEMANTIC_RATE_HZ)  # two frames per cluster at least
    phrase = sung_phrase(seconds, SEMANTIC_SAMPLE_RATE, seed)
    frames = frames_for(seconds, SEMANTIC_RATE_HZ)
    with torch.no_grad():
        feats = features(torch.from_numpy(semantic_chunk(phrase, 0, frames))[None])[0].numpy()
    centroids = fit_kmeans(feats, config.tokens.semantic_clusters, seed)
    torch.manual_seed(seed)
    return ModelParts(
        config=config,
        stages=build_stages(config).eval(),
        semantic=SemanticEncoder(features, centroids),
        codec=random_codec(config.tokens, tiny, seed),
        source={"config": config.to_dict(), "random_init_seed": seed},
    )


def parts_from_source(source: dict[str, Any]) -> ModelParts:
    """Rebuild the parts a bundle was exported from, as its manifest records them."""
    if "model_dir" in source:
        return load_model_dir(source["model_dir"])
    if "random_init_seed" in source:
        return random_parts(ModelConfig.from_dict(source["config"]), int(source["random_init_seed"]))
    raise UserError("the bundle does not record what it was exported from: pass --model-dir")


def save_config(model_dir: Path, config: ModelConfig) -> None:
    (model_dir / CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
