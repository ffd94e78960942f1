"""The loop both tokenizer trainers (codec, semantic encoder) run: checkpoint.pt every `checkpoint_every` steps
while training, train.jsonl with every tenth step, then a `save_pretrained` folder that loads like the hub's."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from accompgen.tokenizers.pretrained import save_pretrained
from accompgen.train.checkpoint import forget_steps_after, load_checkpoint, save_checkpoint
from accompgen.train.precision import Precision

LOG_EVERY = 10


class TokenizerTrainer(ABC):
    """Subclasses build `model` and say what a checkpoint keeps besides the step (`_state`, `_restore`) and what
    one step does (`_train_step`)."""

    what: str  # names the settings in the message that refuses another run's checkpoint
    model: PreTrainedModel

    def __init__(self, out: Path, shape: Any, settings: Any):  # dataclasses; settings with steps, checkpoint_every,
        self.out, self.shape, self.settings = Path(out), shape, settings  # precision
        self.precision = Precision.choose(settings.precision, torch.device("cpu"))
        self.step = 0
        self.checkpoint = self.out / "checkpoint.pt"
        self.log = self.out / "train.jsonl"

    @abstractmethod
    def _state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _restore(self, state: dict[str, Any]) -> None: ...

    @abstractmethod
    def _train_step(self) -> dict[str, Any]: ...

    def made_with(self) -> dict[str, Any]:
        return {"shape": asdict(self.shape), "settings": asdict(self.settings)}

    def save(self) -> None:
        save_checkpoint(self.checkpoint, {**self._state(), "step": self.step, **self.made_with()})

    def resume(self) -> bool:
        mismatch = f"was made with other {self.what} settings: delete it to start over"
        state = load_checkpoint(self.checkpoint, self.made_with(), mismatch)
        if state is None:
            return False
        self._restore(state)
        self.step = state["step"]
        return True

    def run(self, on_step: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        forget_steps_after(self.log, self.step)
        self.model.train()
        while self.step < self.settings.steps:
            record = self._train_step()
            self.step += 1
            if self.step % LOG_EVERY == 0 or self.step == self.settings.steps:
                with open(self.log, "a") as f:
                    f.write(json.dumps(record) + "\n")
            if on_step:
                on_step(record)
            if self.step % self.settings.checkpoint_every == 0:
                self.save()
        self.model.eval()
        save_pretrained(self.model, self.out)
        self.checkpoint.unlink(missing_ok=True)
