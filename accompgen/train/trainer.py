"""The training loop of one stage: AdamW, warmup + cosine, clipping, bf16 autocast where the device computes bf16
natively, attention in causal query blocks, torch.compile, CFG condition dropout, loss on target tokens only,
checkpoints that resume exactly, metrics to JSONL. Single process, or DDP under torchrun.

Resuming is exact because nothing random is drawn from a running stream: the data order of an epoch comes from
(seed, epoch), and a step's windows and condition dropout from (seed, step, rank). The checkpoint still keeps
every RNG state, for dropout inside the model.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from accompgen.core.errors import UserError
from accompgen.model.config import ModelConfig
from accompgen.model.model_dir import CONFIG_FILE, stage_checkpoint_path
from accompgen.model.transformer import Attend, StageTransformer, blocked_attend, sdpa_attend
from accompgen.train.checkpoint import forget_steps_after, load_checkpoint, save_checkpoint
from accompgen.train.precision import Precision
from accompgen.train.schedule import warmup_cosine
from accompgen.train.train_settings import TrainSettings
from accompgen.train.windows import Batch, StageWindows

log = logging.getLogger(__name__)

ATTENTION: dict[str, Attend] = {"blocked": blocked_attend, "sdpa": sdpa_attend}  # the names: train_settings.ATTENTIONS
Compiled = torch._dynamo.eval_frame.OptimizedModule  # what torch.compile wraps a module in


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        """torchrun's RANK / WORLD_SIZE / LOCAL_RANK, or a single process."""
        return cls(
            int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def make_optimizer(model: StageTransformer, settings: TrainSettings) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.ndim == 2 and not n.startswith(("embed", "bias"))]
    rest = [p for n, p in model.named_parameters() if not (p.ndim == 2 and not n.startswith(("embed", "bias")))]
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.95), fused=False)


def target_loss(
    model: torch.nn.Module,
    batch: Batch,
    device: torch.device,
    precision: Precision | None = None,
    attend: Attend = sdpa_attend,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the target tokens only, each over its own stream's id range (as decoding samples it),
    each predicted from everything before it; also the accuracy. The tied head is applied to each stream's rows
    of the embedding alone: the same logits as the full head, restricted, for a fraction of the work.
    `model` may be wrapped (DDP, torch.compile); the Transformer runs under `precision` (default fp32)."""
    ids = torch.from_numpy(batch.ids).to(device)
    ticks = torch.from_numpy(batch.ticks).to(device)
    core = unwrapped(model)
    with (precision or Precision(False, device.type)).autocast():
        hidden, _ = model(ids, ticks, core.empty_cache(len(ids), device), head=False, attend=attend)
    start = batch.condition_length  # position Lc + j predicts target step j
    hidden = hidden[:, start:-1].float()  # (B, J, C)
    labels = ids[:, start + 1 :].reshape(*hidden.shape[:2], -1)  # (B, J, W)
    weight = core.embed.weight.float()
    total, correct, count = hidden.new_zeros(()), hidden.new_zeros(()), 0
    for slot in range(labels.shape[-1]):
        lo, hi = batch.lo[:, slot], batch.hi[:, slot]
        for offset in np.unique(lo[lo >= 0]):  # the steps of one stream share its id range
            steps = torch.from_numpy(np.flatnonzero(lo == offset)).to(device)
            size = int(hi[int(steps[0])] - offset)
            logits = hidden[:, steps] @ weight[offset : offset + size].T  # (B, J', size)
            local = labels[:, steps, slot] - int(offset)
            total = total + F.cross_entropy(logits.reshape(-1, size), local.reshape(-1), reduction="sum")
            correct = correct + (logits.argmax(-1) == local).sum()
            count += local.numel()
    return total / count, correct / count


def unwrapped(model: torch.nn.Module) -> StageTransformer:
    """The StageTransformer inside DDP and torch.compile wrappers."""
    while isinstance(model, (DistributedDataParallel, Compiled)):
        model = model.module if isinstance(model, DistributedDataParallel) else model._orig_mod
    assert isinstance(model, StageTransformer)
    return model


class Trainer:
    def __init__(
        self,
        model_dir: str | Path,
        tokens_dir: str | Path,
        stage: str,
        settings: TrainSettings,
        device: str | None = None,
        parallel: Distributed | None = None,
    ):
        self.model_dir = Path(model_dir)
        if not (self.model_dir / CONFIG_FILE).is_file():
            raise UserError(f"{self.model_dir} holds no {CONFIG_FILE}: run `accompgen fit-kmeans` first")
        self.config = ModelConfig.load(self.model_dir / CONFIG_FILE)
        if stage not in self.config.stages:
            raise UserError(f"unknown stage {stage!r}: use semantic, coarse or fine")
        self.stage, self.settings = stage, settings
        self.parallel = parallel or Distributed.from_env()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.parallel.local_rank)
        stage_config = self.config.stages[stage]
        self.data = StageWindows(tokens_dir, self.config.tokens, self.config.tokens.stages[stage], stage_config.plan)
        torch.manual_seed(settings.seed)
        self.model = StageTransformer(stage_config, self.config.tokens.vocab_size).to(self.device)
        self.optimizer = make_optimizer(self.model, settings)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.precision = Precision.choose(settings.precision, self.device)
        attention = settings.attention
        if attention == "auto":
            attention = "blocked" if self.device.type == "cpu" else "sdpa"
        self.attend = ATTENTION[attention]
        self.step = 0
        self.checkpoint = stage_checkpoint_path(self.model_dir, stage)
        self.metrics = self.model_dir / "logs" / f"{stage}.jsonl"

    def _lr_factor(self, step: int) -> float:
        s = self.settings  # read at every step, so that plan_steps moves the end of the cosine
        return warmup_cosine(step, s.warmup_steps, s.steps, s.min_lr_ratio)

    def plan_steps(self, steps: int) -> None:
        """End the run (and its cosine) at `steps` instead: for a run given a wall-time budget, once its speed is
        known. Takes effect from the next step."""
        self.settings = dataclasses.replace(self.settings, steps=steps)

    # -- checkpoints ------------------------------------------------------------------------------------------

    def save(self) -> None:
        if not self.parallel.is_main:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "rng": rng_states(),
            **self.made_with(),
            "settings": dataclasses.asdict(self.settings),
        }
        save_checkpoint(self.checkpoint, state)

    def made_with(self) -> dict[str, Any]:
        """What a checkpoint of this stage depends on: its configuration and the token layout."""
        stage_config = dataclasses.asdict(self.config.stages[self.stage])
        return {"stage_config": stage_config, "layout": self.config.tokens.to_dict()}

    def resume(self) -> bool:
        """Continue from the stage's checkpoint, if there is one; it must come from this configuration."""
        mismatch = (
            f"was trained with another configuration than {self.model_dir / CONFIG_FILE}: "
            "use the model directory it belongs to, or delete it to start over"
        )
        state = load_checkpoint(self.checkpoint, self.made_with(), mismatch, self.device)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        set_rng_states(state["rng"])
        return True

    def start_from(self, checkpoint: Path) -> None:
        """Fine-tuning: this stage's weights from another run's checkpoint of it, with the optimizer, schedule and
        step count of a run starting now."""
        mismatch = (
            f"holds a {self.stage} stage of another size or token layout than {self.model_dir / CONFIG_FILE}: "
            "a run starts only from a model of its own configuration"
        )
        state = load_checkpoint(checkpoint, self.made_with(), mismatch, self.device)
        if state is None:
            raise UserError(f"{checkpoint} does not exist: there is no trained {self.stage} stage to start from")
        self.model.load_state_dict(state["model"])

    # -- the loop ---------------------------------------------------------------------------------------------

    def clips_for(self, step: int) -> np.ndarray:
        """The clips this rank trains on at `step`: consecutive slices of per-epoch permutations."""
        size, world = self.settings.batch_size, self.parallel.world
        first = (step * world + self.parallel.rank) * size
        epochs, offsets = np.divmod(np.arange(first, first + size), len(self.data))
        return np.array([self._permutation(e)[o] for e, o in zip(epochs, offsets, strict=True)])

    @functools.lru_cache(maxsize=2)  # noqa: B019 -- one trainer per process; the cache dies with it
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.settings.seed, epoch]).permutation(len(self.data))

    def step_model(self) -> torch.nn.Module:
        """What a step runs: the model, inside DDP under torchrun, compiled when the settings ask."""
        model: torch.nn.Module = self.model
        if self.parallel.world > 1:
            model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        return torch.compile(model) if self.settings.compile else model

    def first_loss(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
        """The first batch's loss and accuracy, and the model to go on with: torch.compile compiles at the first
        call, and a model that fails to compile is replaced by the plain one, with one logged line naming why."""
        try:
            return (*target_loss(model, batch, self.device, self.precision, self.attend), model)
        except Exception as err:  # torch.compile raises many types
            if not isinstance(model, Compiled):
                raise
            log.warning("torch.compile failed (%s): training the %s stage without it", _first_line(err), self.stage)
            plain = model._orig_mod
            return (*target_loss(plain, batch, self.device, self.precision, self.attend), plain)

    def run(self, on_step: Callable[[dict[str, Any]], None] | None = None) -> list[float]:
        """Train up to settings.steps; returns the loss of every step this call ran."""
        model = self.step_model()
        model.train()
        losses = []
        self.metrics.parent.mkdir(parents=True, exist_ok=True)
        if self.parallel.is_main:
            forget_steps_after(self.metrics, self.step)
        while self.step < self.settings.steps:
            started = time.perf_counter()
            rng = np.random.default_rng([self.settings.seed, self.step, self.parallel.rank])
            batch = self.data.batch(self.clips_for(self.step), rng, self.settings.cond_dropout)
            if losses:
                loss, accuracy = target_loss(model, batch, self.device, self.precision, self.attend)
            else:
                loss, accuracy, model = self.first_loss(model, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            losses.append(loss.item())
            target_tokens = batch.target_steps * self.parallel.world
            record = {
                "step": self.step,
                "loss": losses[-1],
                "accuracy": accuracy.item(),
                "lr": self.scheduler.get_last_lr()[0],
                "tokens_per_s": target_tokens / (time.perf_counter() - started),
                "precision": self.precision.name,
                "compiled": isinstance(model, Compiled),
            }
            if self.parallel.is_main and (self.step % self.settings.log_every == 0 or self.step == self.settings.steps):
                with open(self.metrics, "a") as f:
                    f.write(json.dumps(record) + "\n")
            if on_step and self.parallel.is_main:
                on_step(record)
            if self.step % self.settings.checkpoint_every == 0 or self.step == self.settings.steps:
                self.save()
        self._check_replicas()
        return losses

    def _check_replicas(self) -> None:
        """Under DDP every process must end with the same weights; say so in the log, or fail loudly."""
        if self.parallel.world == 1:
            return
        digest = hashlib.sha256(
            b"".join(p.detach().cpu().numpy().tobytes() for p in self.model.parameters())
        ).hexdigest()
        digests: list[str | None] = [None] * self.parallel.world
        dist.all_gather_object(digests, digest)
        if self.parallel.is_main:
            with open(self.metrics, "a") as f:
                f.write(json.dumps({"step": self.step, "replica_digests": digests}) + "\n")
        if len(set(digests)) != 1:
            raise RuntimeError(f"the DDP replicas ended with different weights: {digests}")


def _first_line(err: BaseException) -> str:
    """The root cause in one line: torch.compile wraps what went wrong (a missing compiler, an unsupported op)."""
    while (inner := getattr(err, "inner_exception", None) or err.__cause__) is not None:
        err = inner
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__


def rng_states() -> dict[str, Any]:
    """Every RNG state as tensors and plain values, so checkpoints load with torch.load(weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"].cpu())
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


def close_distributed() -> None:
    """Leave the process group before exiting: gloo's threads abort the interpreter at exit otherwise."""
    if dist.is_initialized():
        dist.destroy_process_group()


def init_distributed(parallel: Distributed, device: str | None) -> None:
    """Join torchrun's process group: gloo on CPU, nccl on GPUs."""
    if parallel.world > 1 and not dist.is_initialized():
        use_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
