"""`accompgen bench`: our runtime against torch eager and the MusicGen peer, side by side in one run.

Measures, for one config (random weights: speed does not depend on training):
- per decode step of the coarse stage at batch 2 (CFG): onnxruntime with KV cache, torch eager with and without
  cache, and the memory-bandwidth limit (weights + KV cache read once per step / measured copy bandwidth);
- the bridge end to end, phase by phase, in a torch-free process: real-time factor, steps/s, peak memory;
- the coarse stage against transformers' MusicGen decoder of matched size, its own `generate()` with guidance;
- the fine stage with prompted windows (one at a time) against prompt-free windows (one batch).
Writes bench.json, bench.md and bench.png (ms/step against past length).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import soundfile as sf
import torch

from accompgen.bundle import load_bundle
from accompgen.config import ModelConfig
from accompgen.decoding import SamplingOptions, variation_rngs
from accompgen.model import StageTransformer
from accompgen.model_dir import ModelParts, random_parts
from accompgen.pipeline import StagePlan, generate_track
from accompgen.reference import TorchInference
from accompgen.synth import sung_phrase
from accompgen_bridge.ort_inference import OrtInference
from accompgen_bridge.providers import choose_device, open_session, physical_cores
from accompgen_export.bundle_writer import write_bundle, write_stage

BATCH = 2  # one variation with classifier-free guidance


@dataclass(frozen=True)
class BenchSettings:
    config: str
    pasts: tuple[int, ...]
    steps: int  # timed decode steps per measurement
    seconds: float  # audio generated end to end
    musicgen: bool
    device: str


QUICK = BenchSettings("tiny", (64, 256), 8, 2.0, True, "cpu")
FULL = BenchSettings("small", (256, 1024, 4096), 32, 10.0, True, "auto")


def median_ms(run: Callable[[int], None], steps: int) -> float:
    """Median wall time of `steps` calls of run(step), after one untimed call."""
    run(-1)
    times = []
    for step in range(steps):
        start = time.perf_counter()
        run(step)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def memory_bandwidth_gbs(megabytes: int = 256) -> float:
    """Best of five large copies: bytes read plus bytes written per second."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(5))
    return 2 * src.nbytes / best / 1e9


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def limit_ms(model: StageTransformer, past: int, bandwidth_gbs: float) -> float:
    """The least time a decode step can take: every weight and the whole KV cache read once."""
    cfg = model.cfg
    weight_bytes = 4 * model.num_parameters()
    cache_bytes = 4 * 2 * cfg.n_layers * BATCH * cfg.n_heads * past * cfg.head_dim
    return 1000 * (weight_bytes + cache_bytes) / (bandwidth_gbs * 1e9)


def step_latencies(model: StageTransformer, session: ort.InferenceSession, spec: Any, past: int, steps: int) -> dict:
    """ms per decode step at a given past length, ORT and torch eager (cached and not), same inputs."""
    cfg, vocab = model.cfg, model.vocab_size
    rng = np.random.default_rng(0)
    cache = [
        rng.standard_normal((BATCH, cfg.n_heads, past, cfg.head_dim), dtype=np.float32) for _ in range(2 * cfg.n_layers)
    ]
    ids = rng.integers(0, vocab, (BATCH, past + steps + 2))
    ticks = np.arange(past + steps + 2)
    device = choose_device("cpu")

    ort_run = OrtInference(session, spec, device)
    ort_run.past = [ort.OrtValue.ortvalue_from_numpy(c) for c in cache]
    torch_run = TorchInference(model)
    torch_run.cache = [
        (torch.from_numpy(k), torch.from_numpy(v)) for k, v in zip(cache[0::2], cache[1::2], strict=True)
    ]

    def cached(inference: Any) -> Callable[[int], None]:
        position = [past]

        def step(_: int) -> None:
            p = position[0]
            inference.logits(ids[:, p : p + 1], ticks[: p + 1])
            position[0] += 1

        return step

    def uncached(step: int) -> None:
        n = past + 1 + max(step, 0)
        with torch.inference_mode():
            model(torch.from_numpy(ids[:, :n]), torch.from_numpy(ticks[:n]), model.empty_cache(BATCH), last_only=True)

    return {
        "past": past,
        "ort_ms": median_ms(cached(ort_run), steps),
        "torch_cached_ms": median_ms(cached(torch_run), steps),
        "torch_uncached_ms": median_ms(uncached, max(2, steps // 4)),
    }


def bridge_end_to_end(bundle: Path, vocal: Path, seconds: float, device: str) -> dict:
    """The bridge in its own torch-free process."""
    command = [
        sys.executable,
        "-m",
        "accompgen_bridge.timing",
        str(bundle),
        str(vocal),
        str(seconds),
        "--device",
        device,
    ]
    result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    timings = result["seconds"]
    steps = {"semantic": 50 * seconds, "coarse": 4 * 75 * seconds, "fine": 4 * 75 * seconds}
    result["rtf"] = {phase: t / seconds for phase, t in timings.items()}
    result["steps_per_s"] = {stage: steps[stage] / timings[stage] for stage in steps}
    return result


def coarse_stage_seconds(parts: ModelParts, plan: StagePlan, inference: Callable[[], Any], seconds: float) -> float:
    """Wall time of the coarse stage alone for `seconds` of audio (windows included)."""
    layout = parts.config.tokens
    rng = np.random.default_rng(0)
    frames = round(50 * seconds)
    conditions = {
        name: rng.integers(0, layout.semantic_clusters, (1, 1, frames)) for name in ("vocal_semantic", "inst_semantic")
    }
    options = SamplingOptions(seed=0)
    stage, n_frames = layout.stages["coarse"], round(75 * seconds)
    return _timed(
        lambda: generate_track(stage, conditions, n_frames, plan, inference, options, variation_rngs(options))
    )


def delay_coarse_stage(parts: ModelParts, out: Path) -> tuple[StagePlan, Callable[[], OrtInference]]:
    """The coarse stage in the delay pattern, same size, exported beside the bundle: the other side of the
    flat-versus-delay comparison."""
    cfg = dataclasses.replace(parts.config.stages["coarse"], codebook_pattern="delay")
    torch.manual_seed(0)
    model = StageTransformer(cfg, parts.config.tokens.vocab_size).eval()
    spec = write_stage(model, parts.config.tokens.stages["coarse"], out / "stage_coarse_delay.onnx")
    device = choose_device("cpu")
    session = open_session(out / spec.graph.file, device)
    return spec.plan, lambda: OrtInference(session, spec, device)


def musicgen_seconds(parts: ModelParts, seconds: float) -> tuple[float, int]:
    """transformers' MusicGen decoder sized like our coarse stage: its generate() for `seconds` of 4 codebooks,
    guidance 3.0, top-k 250. Returns (seconds, parameters)."""
    from transformers import GenerationConfig, MusicgenDecoderConfig, MusicgenForCausalLM

    cfg, layout = parts.config.stages["coarse"], parts.config.tokens
    config = MusicgenDecoderConfig(
        vocab_size=layout.codebook_size,
        hidden_size=cfg.d_model,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        ffn_dim=cfg.ffn_dim * 3 // 2,  # its plain GELU FFN has two matrices where GEGLU has three
        num_codebooks=layout.coarse_codebooks,
        max_position_embeddings=4096,
        pad_token_id=layout.codebook_size,
        bos_token_id=layout.codebook_size,
    )
    torch.manual_seed(0)
    model = MusicgenForCausalLM(config).eval()
    frames, special = round(75 * seconds), layout.codebook_size
    generation = GenerationConfig(
        max_new_tokens=frames + layout.coarse_codebooks,  # the delay pattern needs K - 1 steps more
        do_sample=True,
        guidance_scale=3.0,
        top_k=250,
        pad_token_id=special,
        bos_token_id=special,
        decoder_start_token_id=special,
        num_return_sequences=1,
    )
    bos = torch.full((layout.coarse_codebooks, 1), special)
    with torch.inference_mode():
        elapsed = _timed(lambda: model.generate(input_ids=bos, generation_config=generation))
    return elapsed, sum(p.numel() for p in model.parameters())


def fine_batching_seconds(parts: ModelParts, session: ort.InferenceSession, spec: Any, seconds: float) -> dict:
    """The fine stage over `seconds`: prompted windows one at a time, then prompt-free windows as one batch."""
    layout, cfg = parts.config.tokens, parts.config.stages["fine"]
    frames = round(75 * seconds)
    coarse = np.random.default_rng(0).integers(0, layout.codebook_size, (1, layout.coarse_codebooks, frames))
    options = SamplingOptions(seed=0)
    device = choose_device("cpu")

    def run(prompt_s: float) -> float:
        return _timed(
            lambda: generate_track(
                layout.stages["fine"],
                {"coarse": coarse},
                frames,
                StagePlan(cfg.window_s, prompt_s),
                lambda: OrtInference(session, spec, device),
                options,
                variation_rngs(options),
            )
        )

    return {"prompted_s": run(cfg.prompt_s), "batched_s": run(0.0)}


def run_bench(settings: BenchSettings, out: Path, progress: Callable[[str], None] = print) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(physical_cores())
    config = ModelConfig.load(settings.config)
    progress(f"building a random {config.name} model and exporting it")
    parts = random_parts(config)
    bundle = out / f"bundle-{config.name}"
    write_bundle(parts, bundle, overwrite=bundle.exists())
    manifest_stages = load_bundle(bundle).stages
    device = choose_device("cpu")
    coarse_session = open_session(bundle / manifest_stages["coarse"].graph.file, device)
    fine_session = open_session(bundle / manifest_stages["fine"].graph.file, device)
    model = parts.stages["coarse"]

    progress("measuring memory bandwidth")
    bandwidth = memory_bandwidth_gbs()
    steps = []
    for past in settings.pasts:
        progress(f"decode steps at past {past}")
        row = step_latencies(model, coarse_session, manifest_stages["coarse"], past, settings.steps)
        row["limit_ms"] = limit_ms(model, past, bandwidth)
        steps.append(row)

    progress("the bridge end to end")
    vocal = out / "vocal.wav"
    sf.write(vocal, sung_phrase(settings.seconds + 0.5, 44100), 44100)
    bridge = bridge_end_to_end(bundle, vocal, settings.seconds, settings.device)

    progress("coarse stage: ours against torch eager and MusicGen")
    flat_plan = parts.config.stages["coarse"].plan
    delay_plan, delay_inference = delay_coarse_stage(parts, out)
    peers = {
        "ort_s": coarse_stage_seconds(
            parts, flat_plan, lambda: OrtInference(coarse_session, manifest_stages["coarse"], device), settings.seconds
        ),
        "ort_delay_s": coarse_stage_seconds(parts, delay_plan, delay_inference, settings.seconds),
        "torch_cached_s": coarse_stage_seconds(parts, flat_plan, lambda: TorchInference(model), settings.seconds),
    }
    if settings.musicgen:
        peers["musicgen_s"], peers["musicgen_params"] = musicgen_seconds(parts, settings.seconds)
    progress("fine stage: prompted windows against one batch")
    fine = fine_batching_seconds(parts, fine_session, manifest_stages["fine"], settings.seconds)

    report = {
        "machine": machine_description(),
        "config": config.name,
        "coarse_params": model.num_parameters(),
        "batch": BATCH,
        "seconds": settings.seconds,
        "bandwidth_gbs": bandwidth,
        "steps": steps,
        "bridge": bridge,
        "coarse_stage": peers,
        "fine_stage": fine,
    }
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    (out / "bench.md").write_text(markdown(report))
    plot(report, out / "bench.png")
    return report


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {physical_cores()} physical cores, onnxruntime {ort.__version__}, torch {torch.__version__}"


def markdown(report: dict) -> str:
    lines = [
        f"Machine: {report['machine']}. Config `{report['config']}` (coarse stage {report['coarse_params']:,} "
        f"parameters), batch {report['batch']} (CFG), memory bandwidth {report['bandwidth_gbs']:.1f} GB/s.",
        "",
        "| past | ORT ms/step | torch cached | torch uncached | ORT speed-up: vs cached, uncached | limit ms "
        "| ORT % of limit |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["steps"]:
        lines.append(
            f"| {row['past']} | {row['ort_ms']:.2f} | {row['torch_cached_ms']:.2f} | {row['torch_uncached_ms']:.2f} | "
            f"{row['torch_cached_ms'] / row['ort_ms']:.1f}x / {row['torch_uncached_ms'] / row['ort_ms']:.1f}x | "
            f"{row['limit_ms']:.3f} | {100 * row['limit_ms'] / row['ort_ms']:.0f} % |"
        )
    bridge, seconds = report["bridge"], report["seconds"]
    lines += [
        "",
        f"Bridge end to end, {seconds:g} s of audio, one variation with CFG ({', '.join(bridge['providers'])}):",
        "",
    ]
    lines += ["| phase | seconds | real-time factor | decode steps/s |", "|---|---:|---:|---:|"]
    for phase, t in bridge["seconds"].items():
        rate = bridge["steps_per_s"].get(phase)
        lines.append(f"| {phase} | {t:.2f} | {bridge['rtf'][phase]:.3f} | {f'{rate:.0f}' if rate else ''} |")
    lines += ["", f"Peak resident memory of the bridge process: {bridge['peak_rss_mb']:.0f} MB.", ""]
    peers = report["coarse_stage"]
    lines += [
        f"Coarse stage for {seconds:g} s (4 codebooks at 75 Hz):",
        "",
        "| runtime | seconds | time vs ours (flat) |",
        "|---|---:|---:|",
    ]
    lines.append(f"| ours (onnxruntime, KV cache, flattened codebooks) | {peers['ort_s']:.2f} | 1.0x |")
    lines.append(
        f"| ours, delay pattern (onnxruntime, KV cache) | {peers['ort_delay_s']:.2f} | "
        f"{peers['ort_delay_s'] / peers['ort_s']:.2f}x |"
    )
    lines.append(
        f"| torch eager, cached | {peers['torch_cached_s']:.2f} | {peers['torch_cached_s'] / peers['ort_s']:.1f}x |"
    )
    if "musicgen_s" in peers:
        lines.append(
            f"| transformers MusicGen generate() ({peers['musicgen_params']:,} parameters, delay pattern) | "
            f"{peers['musicgen_s']:.2f} | {peers['musicgen_s'] / peers['ort_s']:.1f}x |"
        )
    fine = report["fine_stage"]
    lines += [
        "",
        f"Fine stage for {seconds:g} s: prompted windows one at a time {fine['prompted_s']:.2f} s, prompt-free windows "
        f"as one batch {fine['batched_s']:.2f} s ({fine['prompted_s'] / fine['batched_s']:.1f}x).",
    ]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pasts = [row["past"] for row in report["steps"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (
        ("ort_ms", "onnxruntime, KV cache"),
        ("torch_cached_ms", "torch eager, KV cache"),
        ("torch_uncached_ms", "torch eager, no cache"),
        ("limit_ms", "memory-bandwidth limit"),
    ):
        ax.plot(pasts, [row[key] for row in report["steps"]], marker="o", label=label)
    ax.set(xscale="log", yscale="log", xlabel="past length (tokens)", ylabel="ms per decode step (batch 2)")
    ax.set_xticks(pasts, [str(p) for p in pasts], minor=False)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_title(f"coarse stage, {report['config']} config")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
