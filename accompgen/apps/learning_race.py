"""`accompgen bench --learning`: held-out loss after the same wall time, today's trainer beside the default one.

Steps per second say little about learning per hour on their own: a path may compile for minutes first, and a
faster step is only worth its speed if the schedule spends it. So each path trains one stage from nothing, from
the same seed on the same tokens, for the same minutes of wall time, compiling included. Its first steps time it;
its schedule is then set to end where the budget does (as a recipe would give it that many steps), and a path
that runs slower than timed is stopped at the budget. Held-out loss is measured the same way for every path
(eager fp32, the same windows of the validation songs) every few minutes, with the clock stopped meanwhile.
Writes learning.json and learning.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from accompgen.apps.recipe import FULL as FULL_RECIPE
from accompgen.apps.train_bench import TODAY, TrainPath, paths_for
from accompgen.evaluation.token_metrics import teacher_forced
from accompgen.model.model_dir import load_config, save_config
from accompgen.train.train_settings import TrainSettings
from accompgen.train.trainer import Trainer
from accompgen.train.windows import StageWindows

CACHE_VARIABLE = "TORCHINDUCTOR_CACHE_DIR"
_DEFAULTS = TrainSettings()
# What `accompgen train` does when given no precision, attention or compile option (fp32 where bf16 is not native)
DEFAULT = TrainPath("the default trainer", _DEFAULTS.precision, _DEFAULTS.attention, _DEFAULTS.compile)


@dataclass(frozen=True)
class RaceSettings:
    stage: str = "coarse"
    minutes: float = 30.0  # wall time each path trains, compiling included, evaluations not
    every_minutes: float = 5.0  # held-out loss after every so many minutes of training
    timing_steps: int = 8  # steps that time a path (the first compiles, the second may settle) before planning
    eval_batches: int = 16  # of 8 validation windows each
    paths: tuple[TrainPath, ...] = (TODAY, DEFAULT)
    training: TrainSettings | None = None  # batch, learning rate, warmup, seed (default: the chorale recipe's)

    def __post_init__(self) -> None:
        if self.minutes <= 0 or self.every_minutes <= 0:
            raise ValueError("minutes and every_minutes must be positive")
        if self.timing_steps < 3:
            raise ValueError("timing_steps must be at least 3: the first compiles, the second may settle")


class Clock:
    """Training time: wall time since start, less the time spent in pause() blocks."""

    def __init__(self) -> None:
        self.started, self.paused = time.perf_counter(), 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.started - self.paused

    def pause(self, work: Callable[[], Any]) -> Any:
        begun = time.perf_counter()
        try:
            return work()
        finally:
            self.paused += time.perf_counter() - begun


@contextlib.contextmanager
def compile_cache(folder: Path) -> Iterator[None]:
    """torch.compile's on-disk cache in `folder` while the block runs (inductor reads the variable at each use)."""
    before = os.environ.get(CACHE_VARIABLE)
    os.environ[CACHE_VARIABLE] = str(folder)
    try:
        yield
    finally:
        if before is None:
            del os.environ[CACHE_VARIABLE]
        else:
            os.environ[CACHE_VARIABLE] = before


def race_path(
    model_dir: Path,
    tokens: Path,
    path: TrainPath,
    settings: RaceSettings,
    out: Path,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Train one path for the budget in a model folder of its own under `out`, with a cold compile cache (as a
    recipe's first run has); its held-out loss curve and its speed."""
    work = out / re.sub(r"[^a-z0-9]+", "-", path.name.lower()).strip("-")
    if work.exists():
        shutil.rmtree(work)  # a race starts from nothing: no weights or compiled code of an earlier one
    work.mkdir(parents=True)
    config = load_config(model_dir)
    save_config(work, config)
    base = settings.training or FULL_RECIPE.stages[settings.stage]
    training = dataclasses.replace(
        base, steps=10**9, precision=path.precision, attention=path.attention, compile=path.compile
    )
    trainer = Trainer(work, tokens, settings.stage, training, "cpu")
    stage = config.stages[settings.stage]
    val = StageWindows(tokens, config.tokens, config.tokens.stages[settings.stage], stage.plan, split="val")
    budget, every = 60 * settings.minutes, 60 * settings.every_minutes
    curve: list[dict[str, float]] = []
    stamps: list[float] = []
    clock = Clock()

    def held_out() -> None:
        trainer.model.eval()
        with torch.no_grad():
            loss = teacher_forced(trainer.model, val, settings.eval_batches, 8, shuffled=False)["loss"]
        trainer.model.train()
        curve.append({"minutes": clock.seconds() / 60, "step": trainer.step, "loss": loss})
        progress(f"{path.name}: step {trainer.step}, {clock.seconds() / 60:.1f} min, held-out loss {loss:.3f}")

    def on_step(record: dict[str, Any]) -> None:
        stamps.append(clock.seconds())
        if record["step"] == settings.timing_steps:
            step_s = float(np.median(np.diff(stamps[1:])))
            trainer.plan_steps(trainer.step + max(1, int((budget - clock.seconds()) / step_s)))
        if record["step"] >= settings.timing_steps and clock.seconds() >= budget:
            trainer.plan_steps(trainer.step)  # slower than timed: stop at the budget (never before it is timed)
        elif clock.seconds() >= every * (len(curve) + 1):
            clock.pause(held_out)

    with compile_cache(work / "compile-cache"):
        trainer.run(on_step=on_step)
    clock.pause(held_out)
    steady = np.diff(stamps[1:])
    return {
        "precision": trainer.precision.name,
        "steps": trainer.step,
        "train_minutes": stamps[-1] / 60,
        "first_step_s": stamps[0],
        "step_s": float(np.median(steady)) if len(steady) else stamps[0],
        "curve": curve,
        "final_loss": curve[-1]["loss"],
    }


def run_race(
    model_dir: Path, tokens: Path, settings: RaceSettings, out: Path, progress: Callable[[str], None] = print
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "stage": settings.stage,
        "minutes": settings.minutes,
        "threads": torch.get_num_threads(),
        "training": dataclasses.asdict(settings.training or FULL_RECIPE.stages[settings.stage]),
        "paths": {},
    }
    for path in paths_for(settings.paths, compile_=True):
        report["paths"][path.name] = race_path(model_dir, tokens, path, settings, out, progress)
    (out / "learning.json").write_text(json.dumps(report, indent=2))
    (out / "learning.md").write_text(learning_markdown(report))
    return report


def learning_markdown(report: dict[str, Any]) -> str:
    """The curves side by side (each path's measurement nearest each time), then steps and speed."""
    paths = report["paths"]
    names = list(paths)
    lines = [
        f"Held-out loss of the {report['stage']} stage (nats, validation songs) after minutes of training "
        f"({report['threads']} threads; compiling counts, evaluating does not).",
        "",
        "| minutes | " + " | ".join(names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for index in range(max(len(p["curve"]) for p in paths.values())):
        cells = []
        for name in names:
            curve = paths[name]["curve"]
            point = curve[min(index, len(curve) - 1)]
            cells.append(f"{point['loss']:.3f} (step {point['step']})")
        minutes = max(paths[name]["curve"][min(index, len(paths[name]["curve"]) - 1)]["minutes"] for name in names)
        lines.append(f"| {minutes:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "| path | steps | s/step | first step s | final held-out loss |", "|---|---:|---:|---:|---:|"]
    for name, p in paths.items():
        lines.append(f"| {name} | {p['steps']} | {p['step_s']:.3f} | {p['first_step_s']:.1f} | {p['final_loss']:.3f} |")
    return "\n".join(lines) + "\n"
