"""Model configurations: frozen dataclasses loaded from the YAML presets in accompgen/configs or a user file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from accompgen.core.errors import UserError
from accompgen.core.pipeline import StagePlan
from accompgen.core.tokens import STAGE_NAMES, TokenLayout


@dataclass(frozen=True)
class StageConfig:
    """One stage's Transformer and how it generates."""

    d_model: int  # residual width C
    n_layers: int
    n_heads: int  # head dim D = d_model / n_heads
    ffn_dim: int  # hidden width of each GEGLU branch
    plan: StagePlan  # window, prompt and codebook pattern
    num_buckets: int = 32  # relative-bias buckets, half for earlier and half for later ticks
    max_distance: int = 1500  # ticks (150 Hz) from which on distances share the outermost bucket
    dropout: float = 0.0  # residual and attention dropout during training

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.num_buckets < 4 or self.num_buckets % 2:
            raise ValueError("num_buckets must be an even number >= 4")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageConfig:
        return cls(**{**data, "plan": StagePlan(**data["plan"])})

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


@dataclass(frozen=True)
class TokenizerConfig:
    """Where the semantic and acoustic tokenizers come from."""

    hubert: str = "facebook/hubert-base-ls960"  # hub id or local directory
    hubert_layer: int = 6  # transformer layer whose features are clustered
    encodec: str = "facebook/encodec_24khz"  # hub id or local directory
    random_shapes: str = "full"  # tokenizers of a --random-init run: "full" (the hub models' shapes) or "tiny"

    def __post_init__(self) -> None:
        if self.random_shapes not in ("full", "tiny"):
            raise ValueError(f"random_shapes must be full or tiny, got {self.random_shapes!r}")


@dataclass(frozen=True)
class ModelConfig:
    """The three stages, the token layout they share and the tokenizers that feed them."""

    name: str
    tokens: TokenLayout
    stages: dict[str, StageConfig] = field(default_factory=dict)  # keyed by STAGE_NAMES
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)

    def __post_init__(self) -> None:
        if set(self.stages) != set(STAGE_NAMES):
            raise ValueError(f"config {self.name!r} must define the stages {', '.join(STAGE_NAMES)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        try:
            return cls(
                name=str(data["name"]),
                tokens=TokenLayout(**data["tokens"]),
                stages={name: StageConfig.from_dict(data["stages"][name]) for name in STAGE_NAMES},
                tokenizer=TokenizerConfig(**data.get("tokenizer", {})),
            )
        except KeyError as err:
            raise UserError(f"malformed model config: missing key {err}") from err
        except (TypeError, ValueError) as err:
            raise UserError(f"malformed model config: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tokens": dataclasses.asdict(self.tokens),
            "stages": {name: dataclasses.asdict(stage) for name, stage in self.stages.items()},
            "tokenizer": dataclasses.asdict(self.tokenizer),
        }

    @classmethod
    def load(cls, name_or_path: str | Path) -> ModelConfig:
        """A preset name (tiny, small, base) or the path of a YAML file."""
        path = Path(name_or_path)
        if path.suffix in (".yaml", ".yml"):
            if not path.is_file():
                raise UserError(f"config file {path} does not exist")
            text = path.read_text()
        elif str(name_or_path) in preset_names():
            text = resources.files("accompgen.configs").joinpath(f"{name_or_path}.yaml").read_text()
        else:
            presets = ", ".join(preset_names())
            raise UserError(f"unknown config {str(name_or_path)!r}: use one of {presets} or a .yaml file")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise UserError(f"config {name_or_path} is not valid YAML: {err}") from err
        if not isinstance(data, dict):
            raise UserError(f"config {name_or_path} must be a YAML mapping")
        return cls.from_dict(data)


def preset_names() -> list[str]:
    files = resources.files("accompgen.configs").iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))
