"""`accompgen bench --train`: training steps, today's path beside each faster one, in one run.

For each stage of a config (the chorale model's by default) at the recipe's batch size, and for the codec and the
semantic encoder at the recipe's shapes: target tokens (or seconds of audio) per second and the achieved GFLOP/s,
with fp32 eager SDPA attention (the trainer before these levers) and each lever alone: bf16 autocast, attention in
causal query blocks, torch.compile, then all of them (the trainer's default). GFLOP/s counts the model FLOPs of
today's step (torch's FlopCounterMode over one forward and backward) for every path, so paths that skip work
(query blocks skip masked scores) show as faster, not as doing more arithmetic. Step times come from the trainers'
own loops, data loading included; random weights and synthetic tokens, since speed does not depend on them.
Writes train_bench.json and train_bench.md.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from accompgen.apps.recipe import FULL as FULL_RECIPE
from accompgen.apps.recipe import QUICK as QUICK_RECIPE
from accompgen.apps.recipe import RecipeSettings
from accompgen.core.semantic_framing import SEMANTIC_SAMPLE_RATE
from accompgen.core.synth import sung_phrase
from accompgen.core.tokens import SEMANTIC_RATE_HZ
from accompgen.data.token_folders import write_tokens
from accompgen.model.config import ModelConfig
from accompgen.model.model_dir import save_config
from accompgen.tokenizers.codec import CODEC_SAMPLE_RATE
from accompgen.train.codec import CodecTrainer
from accompgen.train.precision import native_bf16
from accompgen.train.semantic_encoder import SemanticEncoderTrainer
from accompgen.train.tokenizer_loop import TokenizerTrainer
from accompgen.train.train_settings import TrainSettings
from accompgen.train.trainer import Trainer, target_loss
from accompgen.train.windows import Batch


@dataclass(frozen=True)
class TrainPath:
    """One way to run a step: what the trainers' settings say about precision, attention and compiling."""

    name: str
    precision: str
    attention: str = "sdpa"
    compile: bool = False


TODAY = TrainPath("fp32, SDPA, eager (before)", "fp32")
STAGE_PATHS = (
    TODAY,
    TrainPath("bf16 autocast", "bf16"),
    TrainPath("attention in query blocks", "fp32", attention="blocked"),
    TrainPath("torch.compile", "fp32", compile=True),
    TrainPath("all three (default)", "bf16", attention="blocked", compile=True),
)
# transformers' EncodecModel and HubertModel break torch.compile's graph (EnCodec at its padding helper, once per
# layer shape, past the recompile limit: 0.65 against 0.60 s a step in bf16), so only precision is a lever there.
TOKENIZER_PATHS = (TrainPath("fp32 (before)", "fp32"), TrainPath("bf16 autocast (default)", "bf16"))


@dataclass(frozen=True)
class TrainBenchSettings:
    recipe: RecipeSettings  # the config, batch sizes and tokenizer shapes measured
    steps: int  # timed steps per path, after `warmup` untimed ones (the first compiles)
    warmup: int
    compile: bool  # measure the paths that compile (0.5-3.3 min each for a chorale stage, cold cache)


QUICK = TrainBenchSettings(QUICK_RECIPE, steps=3, warmup=1, compile=False)
FULL = TrainBenchSettings(FULL_RECIPE, steps=6, warmup=2, compile=True)


def step_times(run: Callable[[Callable[[dict[str, Any]], None]], Any]) -> list[float]:
    """Seconds between consecutive steps of a trainer's own loop: run(on_step) calls on_step after each step."""
    stamps = [time.perf_counter()]
    run(lambda record: stamps.append(time.perf_counter()))
    return list(np.diff(stamps))


def measure(times: list[float], warmup: int, work: float, flops: float) -> dict[str, float]:
    """Median step after the warm-up; `work` (tokens or seconds of audio) and `flops` are per step."""
    step_s = float(np.median(times[warmup:]))
    return {
        "step_s": step_s,
        "first_step_s": times[0],  # includes compiling, where a path compiles
        "per_s": work / step_s,
        "gflops": flops / step_s / 1e9,
    }


def stage_flops(trainer: Trainer, batch: Batch) -> float:
    """Model FLOPs of one fp32 eager step (forward and backward) of the trainer's model on `batch`."""
    with FlopCounterMode(display=False) as counter:
        loss, _ = target_loss(trainer.model, batch, trainer.device)
        loss.backward()
    trainer.model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def bench_stage(root: Path, config: ModelConfig, stage: str, base: TrainSettings, bench: TrainBenchSettings) -> dict:
    """Every path of one stage on the same synthetic tokens; also the share of a step spent building its batch."""
    model_dir, tokens = root / stage / "model", root / stage / "tokens"
    model_dir.mkdir(parents=True)
    save_config(model_dir, config)
    clip_s = max(s.plan.window_s for s in config.stages.values())
    write_tokens(tokens, config.tokens, songs=4, clips=8, clip_s=clip_s)
    steps = bench.warmup + bench.steps
    results, flops, tokens_per_step, batch_s, parameters = {}, 0.0, 0, 0.0, 0
    for path in paths_for(STAGE_PATHS, bench.compile):
        settings = dataclasses.replace(
            base,
            steps=steps,
            checkpoint_every=10**9,
            precision=path.precision,
            attention=path.attention,
            compile=path.compile,
        )
        trainer = Trainer(model_dir, tokens, stage, settings, "cpu")
        trainer.checkpoint = root / stage / f"{path.name}.pt"
        if path is TODAY:
            batch = trainer.data.batch(trainer.clips_for(0), np.random.default_rng(0))
            flops, parameters, tokens_per_step = (
                stage_flops(trainer, batch),
                trainer.model.num_parameters(),
                batch.target_steps,
            )
            started = time.perf_counter()
            for step in range(bench.steps):
                trainer.data.batch(trainer.clips_for(step), np.random.default_rng(step), settings.cond_dropout)
            batch_s = (time.perf_counter() - started) / bench.steps
        results[path.name] = measure(step_times(trainer.run), bench.warmup, tokens_per_step, flops)
    today = results[TODAY.name]
    return {
        "parameters": parameters,
        "batch": base.batch_size,
        "target_tokens_per_step": tokens_per_step,
        "gflop_per_step": flops / 1e9,
        "batch_build_share": batch_s / today["step_s"],
        "paths": results,
    }


def bench_tokenizer(
    kind: type[CodecTrainer] | type[SemanticEncoderTrainer],
    folder: Path,
    rate: int,
    shape: Any,
    settings: Any,
    bench: TrainBenchSettings,
    audio_s: float,
) -> dict:
    """Every precision of one tokenizer trainer on synthetic songs at `rate`; `audio_s`: seconds of audio one step
    learns from. `shape` and `settings`: the trainer's dataclasses."""
    audio = synthetic_songs(rate)

    def make(path: TrainPath) -> TokenizerTrainer:
        return kind(folder / path.name, audio, shape, dataclasses.replace(settings, precision=path.precision))

    results, flops = {}, 0.0
    for path in paths_for(TOKENIZER_PATHS, compile_=False):  # bf16 only where the processor has it
        trainer = make(path)
        if path is TOKENIZER_PATHS[0]:  # the second step of a trainer that is then started anew
            trainer._train_step()  # the first may initialise the codebooks
            trainer.step += 1
            with FlopCounterMode(display=False) as counter:
                trainer._train_step()
            flops = float(counter.get_total_flops())
            trainer = make(path)
        results[path.name] = measure(step_times(trainer.run), bench.warmup, audio_s, flops)
    return {"gflop_per_step": flops / 1e9, "paths": results}


def paths_for(paths: tuple[TrainPath, ...], compile_: bool) -> list[TrainPath]:
    """The paths this machine and these settings can measure: bf16 only where the processor has it natively."""
    bf16 = native_bf16(torch.device("cpu"))
    return [p for p in paths if (bf16 or p.precision != "bf16") and (compile_ or not p.compile)]


def synthetic_songs(rate: int, songs: int = 4, seconds: float = 20.0) -> list[np.ndarray]:
    return [sung_phrase(seconds, rate, seed=seed).astype(np.float32) for seed in range(songs)]


def run_train_bench(bench: TrainBenchSettings, out: Path, progress: Callable[[str], None] = print) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    recipe = bench.recipe
    config = ModelConfig.load(recipe.config)
    report: dict[str, Any] = {
        "config": config.name,
        "native_bf16": native_bf16(torch.device("cpu")),
        "threads": torch.get_num_threads(),
        "stages": {},
    }
    steps = bench.warmup + bench.steps
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for stage in config.stages:
            progress(f"training steps of the {stage} stage")
            report["stages"][stage] = bench_stage(root, config, stage, recipe.stages[stage], bench)
        progress("training steps of the codec")
        codec = dataclasses.replace(recipe.codec, steps=steps, autoencoder_steps=0, kmeans_batches=2)
        report["codec"] = bench_tokenizer(
            CodecTrainer,
            root / "codec",
            CODEC_SAMPLE_RATE,
            recipe.codec_shape,
            codec,
            bench,
            audio_s=codec.batch_size * codec.crop_s,
        )
        progress("training steps of the semantic encoder")
        hubert = dataclasses.replace(recipe.hubert, steps=steps)
        report["semantic_encoder"] = bench_tokenizer(
            SemanticEncoderTrainer,
            root / "hubert",
            SEMANTIC_SAMPLE_RATE,
            recipe.hubert_shape,
            hubert,
            bench,
            audio_s=hubert.batch_size * hubert.crop_frames / SEMANTIC_RATE_HZ,
        )
    (out / "train_bench.json").write_text(json.dumps(report, indent=2))
    (out / "train_bench.md").write_text(train_markdown(report))
    return report


def train_markdown(report: dict) -> str:
    lines = [
        f"Config `{report['config']}`, {report['threads']} threads"
        + ("" if report["native_bf16"] else "; this processor has no native bf16, so only fp32 paths were measured")
        + ". Speed-up against the first row of each part.",
        "",
        "| stage | path | s/step | first step s | target tokens/s | GFLOP/s | speed-up |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for stage, row in report["stages"].items():
        lines += _rows(stage, row["paths"], "{:,.0f}")
    lines += [
        "",
        "| tokenizer | path | s/step | first step s | seconds of audio/s | GFLOP/s | speed-up |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("codec", "semantic_encoder"):
        lines += _rows(name.replace("_", " "), report[name]["paths"], "{:.1f}")
    shares = ", ".join(f"{stage} {100 * row['batch_build_share']:.1f} %" for stage, row in report["stages"].items())
    lines += ["", f"Building a batch on the training thread, share of today's step: {shares}."]
    return "\n".join(lines) + "\n"


def _rows(name: str, paths: dict[str, dict[str, float]], per_s: str) -> list[str]:
    base = next(iter(paths.values()))["step_s"]
    return [
        f"| {name} | {path} | {m['step_s']:.3f} | {m['first_step_s']:.1f} | {per_s.format(m['per_s'])} | "
        f"{m['gflops']:.1f} | {base / m['step_s']:.2f}x |"
        for path, m in paths.items()
    ]
