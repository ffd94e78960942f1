"""How a stage trains (TrainSettings) and its command-line form, derived from the fields: the options of
`accompgen train`, and the words that give a settings object whole (the recipe starting a stage's training under
torchrun). Free of torch, so that the command line parses where torch is not installed."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

PRECISIONS = ("auto", "bf16", "fp32")
# blocked: causal query blocks, 3.3x faster than SDPA's math path on CPU (see blocked_attend); sdpa: PyTorch's own,
# kept for GPUs, where the two were not compared (no GPU measured)
ATTENTIONS = ("auto", "blocked", "sdpa")


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 20_000  # optimizer steps in all (a resumed run continues up to this)
    batch_size: int = 8  # sequences per process and step
    lr: float = 3e-4  # peak learning rate
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup_steps: int = 500
    weight_decay: float = 0.1  # on matrices only, not on norms, embeddings or the bias table
    grad_clip: float = 1.0  # max global gradient norm
    cond_dropout: float = 0.1  # probability that a sequence's condition is replaced by NULL (CFG training)
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0
    # How the step computes; none changes what is learned beyond rounding (tests hold each to fp32 eager).
    precision: str = "auto"  # auto (bf16 where the device has it natively), bf16 or fp32; weights stay fp32
    attention: str = "auto"  # auto (blocked on CPU, sdpa on GPUs), blocked or sdpa
    compile: bool = True  # torch.compile the model: 0.5-3.3 min once per process (the chorale stages, 2 cores)

    def __post_init__(self) -> None:
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}")


FIELDS = dataclasses.fields(TrainSettings)
CHOICES = {"precision": PRECISIONS, "attention": ATTENTIONS}
HELP = {
    "precision": "auto: bf16 where the device has it natively",
    "attention": "auto: blocked on CPU, sdpa on GPUs",
    "compile": "torch.compile the model (default: on)",
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainSettings field; an option left out keeps the field's default."""
    for field in FIELDS:
        kind = type(field.default)
        if kind is bool:
            parser.add_argument(flag(field.name), action=argparse.BooleanOptionalAction, help=HELP.get(field.name))
        else:
            parser.add_argument(flag(field.name), type=kind, choices=CHOICES.get(field.name), help=HELP.get(field.name))


def settings_from(args: argparse.Namespace) -> TrainSettings:
    given: dict[str, Any] = {field.name: getattr(args, field.name) for field in FIELDS}
    return TrainSettings(**{name: value for name, value in given.items() if value is not None})


def option_words(settings: TrainSettings) -> list[str]:
    """The options that give `settings` whole to `accompgen train`."""
    words = []
    for field in FIELDS:
        value = getattr(settings, field.name)
        if isinstance(value, bool):
            words.append(flag(field.name) if value else flag(f"no_{field.name}"))
        else:
            words += [flag(field.name), str(value)]
    return words
