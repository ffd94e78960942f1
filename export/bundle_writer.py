"""Write a bundle: every graph exported into a staging directory, hashed, described, then moved into place."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from accompgen import __version__
from accompgen.core import graph_names
from accompgen.core.bundle import (
    MANIFEST,
    AudioSpec,
    GraphSpec,
    Manifest,
    SamplingDefaults,
    StageSpec,
    sha256_file,
    write_manifest,
)
from accompgen.core.decoding import SamplingOptions
from accompgen.core.errors import UserError
from accompgen.core.semantic_framing import (
    SEMANTIC_CHUNK_FRAMES,
    SEMANTIC_CONTEXT,
    SEMANTIC_HOP,
    SEMANTIC_SAMPLE_RATE,
    semantic_chunk,
)
from accompgen.core.synth import sung_phrase
from accompgen.core.tokens import PATTERNS, Stage
from accompgen.model.model_dir import ModelParts
from accompgen.model.transformer import StageTransformer
from accompgen_export.compact import QUANTIZATIONS, compact_graph
from accompgen_export.graphs import (
    CACHE_LAYOUTS,
    codec_min_frames,
    export_codec_decoder,
    export_semantic_encoder,
    export_stage,
)

Progress = Callable[[str], None]  # told the name of each graph as its export starts


@dataclass(frozen=True)
class ExportSettings:
    """How a bundle's graphs are written."""

    fp16: bool = False  # stage graphs compute in float16, for GPUs
    quantize: str | None = None  # int8 or int4: the stages' matrix products (compact.py); other weights in fp16
    cache: str = "inplace"  # inplace or growing (graphs.CACHE_LAYOUTS)

    def __post_init__(self) -> None:
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise UserError(f"--quantize takes {' or '.join(QUANTIZATIONS)}, not {self.quantize!r}")
        if self.quantize is not None and self.fp16:
            raise UserError("--quantize and --fp16 do not combine: quantized bundles compute in fp32 on the CPU")
        if self.cache not in CACHE_LAYOUTS:
            raise UserError(f"--cache takes {' or '.join(CACHE_LAYOUTS)}, not {self.cache!r}")


def write_bundle(
    parts: ModelParts,
    out: Path,
    settings: ExportSettings = ExportSettings(),
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Manifest:
    """Export `parts` into the bundle directory `out`. An existing bundle there is replaced only with
    `overwrite`; anything else there is never touched. A failed export leaves `out` as it was."""
    out = Path(out)
    _check_target(out, overwrite)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        manifest = _export_all(parts, staging, settings, progress or (lambda name: None))
        write_manifest(staging, manifest)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not (out / MANIFEST).is_file():
        raise UserError(f"{out} exists and is not a bundle: choose another --out, it is left untouched")
    if not overwrite:
        raise UserError(f"{out} already holds a bundle: pass --overwrite to replace it")


def _export_all(parts: ModelParts, staging: Path, settings: ExportSettings, progress: Progress) -> Manifest:
    config = parts.config
    stages = {}
    for name, model in parts.stages.items():
        progress(f"stage_{name}")
        stages[name] = write_stage(model, config.tokens.stages[name], staging / f"stage_{name}.onnx", settings)

    progress("semantic_encoder")
    encoder_path = staging / "semantic_encoder.onnx"
    phrase = sung_phrase(1.0, SEMANTIC_SAMPLE_RATE)
    example = torch.from_numpy(np.stack([semantic_chunk(phrase, 0, 20), semantic_chunk(phrase, 20, 40)]))
    export_semantic_encoder(parts.semantic, encoder_path, example)
    if settings.quantize:
        compact_graph(encoder_path, None)

    progress("codec_decoder")
    decoder_path = staging / "codec_decoder.onnx"
    codes = torch.zeros(2, config.tokens.num_codebooks, 32, dtype=torch.int64)
    export_codec_decoder(parts.codec, decoder_path, codes)
    if settings.quantize:
        compact_graph(decoder_path, None)

    return Manifest(
        model=config.name,
        precision="fp16" if settings.fp16 else "fp32",
        quantization=settings.quantize or "none",
        tokens=config.tokens,
        audio=AudioSpec(
            semantic_sample_rate=SEMANTIC_SAMPLE_RATE,
            semantic_hop=SEMANTIC_HOP,
            semantic_context=SEMANTIC_CONTEXT,
            semantic_chunk_frames=SEMANTIC_CHUNK_FRAMES,
            codec_sample_rate=parts.codec.sample_rate,
            codec_hop=parts.codec.hop,
            codec_min_frames=codec_min_frames(parts.codec),
        ),
        sampling=SamplingDefaults.of(SamplingOptions()),
        semantic_encoder=_graph_spec(encoder_path, [graph_names.AUDIO], [graph_names.SEMANTIC_IDS]),
        stages=stages,
        codec_decoder=_graph_spec(decoder_path, [graph_names.CODES], [graph_names.AUDIO]),
        accompgen_version=__version__,
        source=parts.source,
    )


def write_stage(
    model: StageTransformer, stage: Stage, path: Path, settings: ExportSettings = ExportSettings()
) -> StageSpec:
    """Export one stage graph and describe it as the manifest does."""
    cfg = model.cfg
    slots = PATTERNS[cfg.plan.pattern].slots(stage.target.width)
    stage_io = export_stage(model, path, slots=slots, fp16=settings.fp16, cache=settings.cache)
    if settings.quantize is not None:
        compact_graph(path, QUANTIZATIONS[settings.quantize])
    return StageSpec(
        graph=_graph_spec(path, stage_io.inputs, stage_io.outputs),
        layers=stage_io.layers,
        heads=stage_io.heads,
        head_dim=stage_io.head_dim,
        cache_dtype=stage_io.cache_dtype,
        cache=stage_io.cache,
        plan=cfg.plan,
        slots=slots,
    )


def _graph_spec(path: Path, inputs: list[str], outputs: list[str]) -> GraphSpec:
    return GraphSpec(file=path.name, sha256=sha256_file(path), inputs=tuple(inputs), outputs=tuple(outputs))
