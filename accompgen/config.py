"""Model configurations: frozen dataclasses loaded from the YAML presets in accompgen/configs or a user file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from accompgen.errors import UserError
from accompgen.pipeline import StagePlan
from accompgen.tokens import PATTERNS, STAGE_NAMES, TokenLayout


@dataclass(frozen=True)
class StageConfig:
    """One stage's Transformer and its generation window."""

    d_model: int  # residual width C
    n_layers: int
    n_heads: int  # head dim D = d_model / n_heads
    ffn_dim: int  # hidden width of each GEGLU branch
    window_s: float  # seconds of audio one generation window covers
    prompt_s: float  # seconds of the previous window's output that prompt the next one (the overlap)
    num_buckets: int = 32  # relative-bias buckets, half for earlier and half for later ticks
    max_distance: int = 1500  # ticks (150 Hz) from which on distances share the outermost bucket
    dropout: float = 0.0  # residual and attention dropout during training
    codebook_pattern: str = "flat"  # flat: one codebook per step; delay: all per step, codebook k k steps late

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if not 0 <= self.prompt_s < self.window_s:
            raise ValueError(f"prompt_s must lie in [0, window_s), got {self.prompt_s} for {self.window_s}")
        for seconds in (self.window_s, self.prompt_s):
            if any(abs(seconds * rate - round(seconds * rate)) > 1e-6 for rate in (50, 75)):
                raise ValueError(f"{seconds} s is not a whole number of 50 Hz and 75 Hz frames (use multiples of 0.04)")
        if self.num_buckets < 4 or self.num_buckets % 2:
            raise ValueError("num_buckets must be an even number >= 4")
        if self.codebook_pattern not in PATTERNS:
            raise ValueError(f"codebook_pattern must be one of {', '.join(PATTERNS)}, got {self.codebook_pattern!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def plan(self) -> StagePlan:
        return StagePlan(self.window_s, self.prompt_s, self.codebook_pattern)


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
                stages={name: StageConfig(**data["stages"][name]) for name in STAGE_NAMES},
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
