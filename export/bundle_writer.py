"""Write a bundle: every graph exported into a staging directory, hashed, described, then moved into place."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from accompgen import __version__
from accompgen import graph_io as io
from accompgen.bundle import (
    MANIFEST,
    AudioSpec,
    GraphSpec,
    Manifest,
    SamplingDefaults,
    StageSpec,
    sha256_file,
    write_manifest,
)
from accompgen.decoding import SamplingOptions
from accompgen.errors import UserError
from accompgen.framing import SEMANTIC_CONTEXT, SEMANTIC_HOP, SEMANTIC_SAMPLE_RATE, semantic_chunk
from accompgen.model import StageTransformer
from accompgen.model_dir import ModelParts
from accompgen.synth import sung_phrase
from accompgen.tokens import PATTERNS, Stage
from accompgen_export.graphs import codec_min_frames, export_codec_decoder, export_semantic_encoder, export_stage

SEMANTIC_CHUNK_FRAMES = 500  # 10 s per semantic-encoder call
Progress = Callable[[str], None]  # told the name of each graph as its export starts


def write_bundle(
    parts: ModelParts, out: Path, fp16: bool = False, overwrite: bool = False, progress: Progress | None = None
) -> Manifest:
    """Export `parts` into the bundle directory `out`. An existing bundle there is replaced only with
    `overwrite`; anything else there is never touched. A failed export leaves `out` as it was."""
    out = Path(out)
    _check_target(out, overwrite)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        manifest = _export_all(parts, staging, fp16, progress or (lambda name: None))
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


def _export_all(parts: ModelParts, staging: Path, fp16: bool, progress: Progress) -> Manifest:
    config = parts.config
    stages = {}
    for name, model in parts.stages.items():
        progress(f"stage_{name}")
        stages[name] = write_stage(model, config.tokens.stages[name], staging / f"stage_{name}.onnx", fp16)

    progress("semantic_encoder")
    encoder_path = staging / "semantic_encoder.onnx"
    phrase = sung_phrase(1.0, SEMANTIC_SAMPLE_RATE)
    example = torch.from_numpy(np.stack([semantic_chunk(phrase, 0, 20), semantic_chunk(phrase, 20, 40)]))
    export_semantic_encoder(parts.semantic, encoder_path, example)

    progress("codec_decoder")
    decoder_path = staging / "codec_decoder.onnx"
    codes = torch.zeros(2, config.tokens.num_codebooks, 32, dtype=torch.int64)
    export_codec_decoder(parts.codec, decoder_path, codes)

    defaults = SamplingOptions()
    return Manifest(
        model=config.name,
        precision="fp16" if fp16 else "fp32",
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
        sampling=SamplingDefaults(
            temperature=defaults.temperature, top_k=defaults.top_k, top_p=defaults.top_p, cfg_scale=defaults.cfg_scale
        ),
        semantic_encoder=_graph_spec(encoder_path, [io.AUDIO], [io.SEMANTIC_IDS]),
        stages=stages,
        codec_decoder=_graph_spec(decoder_path, [io.CODES], [io.AUDIO]),
        accompgen_version=__version__,
        source=parts.source,
    )


def write_stage(model: StageTransformer, stage: Stage, path: Path, fp16: bool = False) -> StageSpec:
    """Export one stage graph and describe it as the manifest does."""
    cfg = model.cfg
    slots = PATTERNS[cfg.codebook_pattern].slots(stage.target.width)
    stage_io = export_stage(model, path, slots=slots, fp16=fp16)
    return StageSpec(
        graph=_graph_spec(path, stage_io.inputs, stage_io.outputs),
        layers=stage_io.layers,
        heads=stage_io.heads,
        head_dim=stage_io.head_dim,
        cache_dtype=stage_io.cache_dtype,
        window_s=cfg.window_s,
        prompt_s=cfg.prompt_s,
        codebook_pattern=cfg.codebook_pattern,
        slots=slots,
    )


def _graph_spec(path: Path, inputs: list[str], outputs: list[str]) -> GraphSpec:
    return GraphSpec(file=path.name, sha256=sha256_file(path), inputs=tuple(inputs), outputs=tuple(outputs))
