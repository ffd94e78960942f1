"""`accompgen bench`: our runtime against torch eager and the MusicGen peer, side by side in one run.

Measures, for one config (random weights: speed does not depend on training):
- per decode step of the coarse stage at batch 2 (CFG): torch eager with and without its cache, the exported graph
  with a growing cache and in place, with fp32, int8 and int4 weights, and the memory-bandwidth limit of each
  (weights as stored + KV cache read once per step / measured read bandwidth);
- the bridge end to end, phase by phase, in a torch-free process, for flat and delay acoustic stages with fp32,
  int8 and int4 weights: real-time factor and peak memory;
- the coarse stage against transformers' MusicGen decoder of matched size, its own `generate()` with guidance;
- the fine stage with prompted windows (one at a time) against prompt-free windows (one batch).
Writes bench.json, bench.md and bench.png (ms/step against past length).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import soundfile as sf
import torch

from accompgen.core.bundle import StageSpec, load_bundle, write_manifest
from accompgen.core.decoding import SamplingOptions, variation_rngs
from accompgen.core.pipeline import StagePlan, generate_track
from accompgen.core.synth import sung_phrase
from accompgen.core.tokens import ACOUSTIC_RATE_HZ, SEMANTIC_RATE_HZ
from accompgen.model.config import ModelConfig
from accompgen.model.model_dir import ModelParts, build_stages, random_parts
from accompgen.model.torch_inference import TorchInference
from accompgen.model.transformer import StageTransformer
from accompgen_bridge.ort_inference import OrtInference
from accompgen_bridge.providers import choose_device, open_session, physical_cores
from accompgen_export.bundle_writer import ExportSettings, write_bundle, write_stage

BATCH = 2  # one variation with classifier-free guidance
CODEBOOK_PATTERNS = ("flat", "delay")  # of the acoustic stages
PRECISIONS = ("fp32", "int8", "int4")  # of the stages' weights


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


def read_bandwidth_gbs(megabytes: int = 512) -> float:
    """Best of five streaming reads of a buffer far larger than the last-level cache, a slice per physical core (as a
    decode step's threads read the weights and the cache): bytes read per second. A decode step only reads what
    limits it, so a copy (read plus write) would understate the limit."""
    buffer = np.ones(megabytes * 2**20 // 8)
    slices = np.array_split(buffer, physical_cores())
    with ThreadPoolExecutor(len(slices)) as pool:  # numpy releases the GIL while it sums
        best = min(_timed(lambda: list(pool.map(np.sum, slices))) for _ in range(5))
    return buffer.nbytes / best / 1e9


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def limit_ms(graph: StageGraph, past: int, bandwidth_gbs: float) -> float:
    """The least time a decode step can take: every weight (as stored) and the whole KV cache read once."""
    spec = graph.spec
    cache_bytes = np.dtype(spec.cache_dtype).itemsize * 2 * spec.layers * BATCH * spec.heads * past * spec.head_dim
    return 1000 * (graph.weight_bytes + cache_bytes) / (bandwidth_gbs * 1e9)


def step_latencies(model: StageTransformer, graphs: dict[str, StageGraph], past: int, steps: int) -> dict:
    """ms per decode step at a given past length: torch eager (cached and not) and every exported graph of the
    coarse stage, same inputs."""
    cfg, vocab = model.cfg, model.vocab_size
    rng = np.random.default_rng(0)
    cache = [
        rng.standard_normal((BATCH, cfg.n_heads, past, cfg.head_dim), dtype=np.float32) for _ in range(2 * cfg.n_layers)
    ]
    ids = rng.integers(0, vocab, (BATCH, past + steps + 2))
    ticks = np.arange(past + steps + 2)
    capacity = past + steps + 2

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

    torch_run = TorchInference(model)
    torch_run.cache = [
        (torch.from_numpy(k), torch.from_numpy(v)) for k, v in zip(cache[0::2], cache[1::2], strict=True)
    ]
    row: dict[str, Any] = {
        "past": past,
        "torch_cached_ms": median_ms(cached(torch_run), steps),
        "torch_uncached_ms": median_ms(uncached, max(2, steps // 4)),
        "ort_ms": {},
    }
    for name, graph in graphs.items():
        row["ort_ms"][name] = median_ms(cached(graph.inference_with_past(cache, capacity)), steps)
    return row


@dataclass
class StageGraph:
    """One export of the coarse stage, opened: its spec, its session and the bytes its weights take."""

    spec: StageSpec
    session: ort.InferenceSession
    weight_bytes: int

    @classmethod
    def open(cls, path: Path, spec: StageSpec) -> StageGraph:
        return cls(spec, open_session(path, choose_device("cpu")), path.stat().st_size)

    def inference(self, capacity: int) -> OrtInference:
        return OrtInference(self.session, self.spec, choose_device("cpu"), capacity)

    def inference_with_past(self, cache: list[np.ndarray], capacity: int) -> OrtInference:
        """An inference whose cache already holds `cache` (the first positions of the window's buffer when the
        graph updates it in place)."""
        run = self.inference(capacity)
        if self.spec.cache == "inplace":
            room = np.zeros((*cache[0].shape[:2], capacity - cache[0].shape[2], cache[0].shape[3]), np.float32)
            cache = [np.concatenate([c, room], axis=2) for c in cache]
        run.past = [ort.OrtValue.ortvalue_from_numpy(c.astype(self.spec.cache_dtype)) for c in cache]
        return run


def bridge_end_to_end(bundle: Path, vocal: Path, seconds: float, device: str) -> dict:
    """The bridge in its own torch-free process: seconds and real-time factor per phase, peak memory."""
    command = [sys.executable, "-m", "accompgen_bridge.timing", str(bundle), str(vocal), str(seconds)]
    result = json.loads(
        subprocess.run([*command, "--device", device], capture_output=True, text=True, check=True).stdout
    )
    result["rtf"] = {phase: t / seconds for phase, t in result["seconds"].items()}
    return result


def coarse_stage_seconds(parts: ModelParts, plan: StagePlan, inference: Callable[[int], Any], seconds: float) -> float:
    """Wall time of the coarse stage alone for `seconds` of audio (windows included)."""
    layout = parts.config.tokens
    rng = np.random.default_rng(0)
    frames = round(SEMANTIC_RATE_HZ * seconds)
    conditions = {
        name: rng.integers(0, layout.semantic_clusters, (1, 1, frames)) for name in ("vocal_semantic", "inst_semantic")
    }
    options = SamplingOptions(seed=0)
    stage, n_frames = layout.stages["coarse"], round(ACOUSTIC_RATE_HZ * seconds)
    return _timed(
        lambda: generate_track(stage, conditions, n_frames, plan, inference, options, variation_rngs(options))
    )


def with_pattern(parts: ModelParts, pattern: str) -> ModelParts:
    """The same parts with the acoustic stages in another codebook pattern (random stage weights: speed does not
    depend on them)."""
    stages = {
        name: cfg
        if name == "semantic"
        else dataclasses.replace(cfg, plan=dataclasses.replace(cfg.plan, pattern=pattern))
        for name, cfg in parts.config.stages.items()
    }
    config = dataclasses.replace(parts.config, stages=stages)
    torch.manual_seed(0)
    return dataclasses.replace(parts, config=config, stages=build_stages(config).eval())


def stage_variant(base: Path, parts: ModelParts, settings: ExportSettings, out: Path) -> Path:
    """A bundle that shares `base`'s tokenizer graphs and holds `parts`' stages exported with `settings`: the
    stages are all that differs between the variants the bench compares."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    manifest = load_bundle(base)
    for graph in (manifest.semantic_encoder, manifest.codec_decoder):
        shutil.copy2(base / graph.file, out / graph.file)
    stages = {
        name: write_stage(model, parts.config.tokens.stages[name], out / f"stage_{name}.onnx", settings)
        for name, model in parts.stages.items()
    }
    write_manifest(out, dataclasses.replace(manifest, stages=stages, quantization=settings.quantize or "none"))
    return out


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
    frames, special = round(ACOUSTIC_RATE_HZ * seconds), layout.codebook_size
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


def fine_batching_seconds(parts: ModelParts, graph: StageGraph, seconds: float) -> dict:
    """The fine stage over `seconds`: prompted windows one at a time, then prompt-free windows as one batch."""
    layout, cfg = parts.config.tokens, parts.config.stages["fine"]
    frames = round(ACOUSTIC_RATE_HZ * seconds)
    coarse = np.random.default_rng(0).integers(0, layout.codebook_size, (1, layout.coarse_codebooks, frames))
    options = SamplingOptions(seed=0)

    def run(prompt_s: float) -> float:
        plan = dataclasses.replace(cfg.plan, prompt_s=prompt_s)
        stage = layout.stages["fine"]
        return _timed(
            lambda: generate_track(
                stage, {"coarse": coarse}, frames, plan, graph.inference, options, variation_rngs(options)
            )
        )

    return {"prompted_s": run(cfg.plan.prompt_s), "batched_s": run(0.0)}


def run_bench(settings: BenchSettings, out: Path, progress: Callable[[str], None] = print) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(physical_cores())
    config = ModelConfig.load(settings.config)
    progress(f"building a random {config.name} model and exporting it")
    parts = {"flat": random_parts(config)}
    parts["delay"] = with_pattern(parts["flat"], "delay")
    base = out / f"bundle-{config.name}"
    write_bundle(parts["flat"], base, overwrite=base.exists())
    bundles = {}
    for pattern, precision in itertools.product(CODEBOOK_PATTERNS, PRECISIONS):
        progress(f"exporting the stages: {pattern}, {precision}")
        quantize = None if precision == "fp32" else precision
        variant = out / f"bundle-{config.name}-{pattern}-{precision}"
        bundles[pattern, precision] = stage_variant(base, parts[pattern], ExportSettings(quantize=quantize), variant)
    growing = out / "stage_coarse_growing.onnx"
    coarse_model = parts["flat"].stages["coarse"]
    graphs = {
        "growing": StageGraph.open(
            growing, write_stage(coarse_model, config.tokens.stages["coarse"], growing, ExportSettings(cache="growing"))
        )
    }
    for precision in PRECISIONS:
        graphs[precision] = _stage_graph(bundles["flat", precision], "coarse")

    progress("measuring memory bandwidth")
    bandwidth = read_bandwidth_gbs()
    steps = []
    for past in settings.pasts:
        progress(f"decode steps at past {past}")
        row = step_latencies(coarse_model, graphs, past, settings.steps)
        row["limit_ms"] = {precision: limit_ms(graphs[precision], past, bandwidth) for precision in PRECISIONS}
        steps.append(row)

    vocal = out / "vocal.wav"
    sf.write(vocal, sung_phrase(settings.seconds + 0.5, 44100), 44100)
    bridge = []
    for (pattern, precision), bundle in bundles.items():
        progress(f"the bridge end to end: {pattern}, {precision}")
        run = bridge_end_to_end(bundle, vocal, settings.seconds, settings.device)
        bridge.append({"pattern": pattern, "weights": precision, **run})

    progress("coarse stage: ours against torch eager and MusicGen")
    delay = _stage_graph(bundles["delay", "fp32"], "coarse")
    delay_int8 = _stage_graph(bundles["delay", "int8"], "coarse")
    flat_plan, delay_plan = (parts[p].config.stages["coarse"].plan for p in CODEBOOK_PATTERNS)
    peers = {
        "ort_s": coarse_stage_seconds(parts["flat"], flat_plan, graphs["fp32"].inference, settings.seconds),
        "ort_delay_s": coarse_stage_seconds(parts["delay"], delay_plan, delay.inference, settings.seconds),
        "ort_delay_int8_s": coarse_stage_seconds(parts["delay"], delay_plan, delay_int8.inference, settings.seconds),
        "torch_cached_s": coarse_stage_seconds(
            parts["flat"], flat_plan, lambda _: TorchInference(coarse_model), settings.seconds
        ),
    }
    if settings.musicgen:
        peers["musicgen_s"], peers["musicgen_params"] = musicgen_seconds(parts["flat"], settings.seconds)
    progress("fine stage: prompted windows against one batch")
    fine = fine_batching_seconds(parts["flat"], _stage_graph(bundles["flat", "fp32"], "fine"), settings.seconds)

    report = {
        "machine": machine_description(),
        "config": config.name,
        "coarse_params": coarse_model.num_parameters(),
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


def _stage_graph(bundle: Path, stage: str) -> StageGraph:
    spec = load_bundle(bundle).stages[stage]
    return StageGraph.open(bundle / spec.graph.file, spec)


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
    seconds = report["seconds"]
    lines = [
        f"Machine: {report['machine']}. Config `{report['config']}` (coarse stage {report['coarse_params']:,} "
        f"parameters), batch {report['batch']} (CFG), memory bandwidth {report['bandwidth_gbs']:.1f} GB/s.",
        "",
        "Coarse stage, ms per decode step; ORT speed-up over torch eager with its cache; share of the "
        "memory-bandwidth limit (weights as stored + the KV cache, read once):",
        "",
        "| past | torch uncached | torch cached | ORT growing cache | ORT in place | ORT int8 | ORT int4 "
        "| speed-up: in place / int8 / int4 | % of limit: in place / int8 / int4 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["steps"]:
        ort_ms, limit = row["ort_ms"], row["limit_ms"]
        speedups = " / ".join(f"{row['torch_cached_ms'] / ort_ms[p]:.1f}x" for p in PRECISIONS)
        shares = " / ".join(f"{100 * limit[p] / ort_ms[p]:.0f} %" for p in PRECISIONS)
        lines.append(
            f"| {row['past']} | {row['torch_uncached_ms']:.2f} | {row['torch_cached_ms']:.2f} | "
            f"{ort_ms['growing']:.2f} | {ort_ms['fp32']:.2f} | {ort_ms['int8']:.2f} | {ort_ms['int4']:.2f} | "
            f"{speedups} | {shares} |"
        )
    phases = list(report["bridge"][0]["seconds"])
    lines += [
        "",
        f"The bridge end to end, {seconds:g} s of audio, one variation with CFG, seconds per phase "
        f"({', '.join(report['bridge'][0]['providers'])}):",
        "",
        f"| acoustic stages | weights | {' | '.join(phases)} | real-time factor | peak memory |",
        "|---|---|" + "---:|" * (len(phases) + 2),
    ]
    for run in report["bridge"]:
        times = " | ".join(f"{run['seconds'][phase]:.2f}" for phase in phases)
        lines.append(
            f"| {run['pattern']} | {run['weights']} | {times} | {run['rtf']['total']:.2f} | "
            f"{run['peak_rss_mb']:.0f} MB |"
        )
    peers = report["coarse_stage"]
    lines += [
        "",
        f"Coarse stage for {seconds:g} s (4 codebooks at 75 Hz):",
        "",
        "| runtime | seconds | time vs ours (delay, fp32) |",
        "|---|---:|---:|",
    ]
    rows = [
        ("ours, delay pattern, fp32 (onnxruntime, in-place KV cache)", peers["ort_delay_s"]),
        ("ours, delay pattern, int8 weights", peers["ort_delay_int8_s"]),
        ("ours, flat codebooks, fp32", peers["ort_s"]),
        ("torch eager with KV cache, flat", peers["torch_cached_s"]),
    ]
    if "musicgen_s" in peers:
        rows.append(
            (f"transformers MusicGen `generate()`, {peers['musicgen_params']:,} parameters, delay", peers["musicgen_s"])
        )
    lines += [f"| {name} | {t:.2f} | {t / peers['ort_delay_s']:.2f}x |" for name, t in rows]
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

    rows = report["steps"]
    pasts = [row["past"] for row in rows]
    curves = {
        "torch eager, no cache": [row["torch_uncached_ms"] for row in rows],
        "torch eager, KV cache": [row["torch_cached_ms"] for row in rows],
        "onnxruntime, growing cache": [row["ort_ms"]["growing"] for row in rows],
        "onnxruntime, in place": [row["ort_ms"]["fp32"] for row in rows],
        "onnxruntime, in place, int8": [row["ort_ms"]["int8"] for row in rows],
        "onnxruntime, in place, int4": [row["ort_ms"]["int4"] for row in rows],
        "limit, fp32 weights": [row["limit_ms"]["fp32"] for row in rows],
        "limit, int4 weights": [row["limit_ms"]["int4"] for row in rows],
    }
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, values in curves.items():
        ax.plot(pasts, values, marker="o", linestyle="--" if label.startswith("limit") else "-", label=label)
    ax.set(xscale="log", yscale="log", xlabel="past length (tokens)", ylabel="ms per decode step (batch 2)")
    ax.set_xticks(pasts, [str(p) for p in pasts], minor=False)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_title(f"coarse stage, {report['config']} config")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
