"""Parity of a bundle with the torch modules it was exported from: onnxruntime against torch on random inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from accompgen import graph_io as io
from accompgen.bundle import Manifest, load_bundle
from accompgen.errors import UserError
from accompgen.framing import SEMANTIC_SAMPLE_RATE, semantic_chunk
from accompgen.model_dir import ModelParts, parts_from_source
from accompgen.reference import TorchInference
from accompgen.synth import sung_phrase
from accompgen_bridge.ort_inference import OrtInference
from accompgen_bridge.providers import Device, choose_device, open_session

FP32_LOGIT_ATOL = 1e-4
FP16_ARGMAX_AGREEMENT = 0.99
AUDIO_ATOL = 1e-4
ID_AGREEMENT = 0.99


@dataclass(frozen=True)
class Check:
    graph: str
    metric: str
    value: float
    limit: float
    higher_is_better: bool = False

    @property
    def passed(self) -> bool:
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit


def verify_bundle(
    directory: str | Path,
    parts: ModelParts | None = None,
    device: str = "auto",
    steps: int = 32,
    prefill: int = 40,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[Check]:
    """Prefill `prefill` tokens (longer than the export example), then `steps` cached steps, batch 1 and 2."""
    directory = Path(directory)
    manifest = load_bundle(directory)
    parts = parts_from_source(manifest.source) if parts is None else parts
    if parts.config.tokens != manifest.tokens:
        raise UserError("the model given does not match the bundle's token layout: pass the model it was exported from")
    dev = choose_device(device)
    rng = np.random.default_rng(seed)
    checks = []
    for name, spec in manifest.stages.items():
        if progress:
            progress(f"stage_{name}")
        session = open_session(directory / spec.graph.file, dev)
        for batch in (1, 2):
            slots = (spec.slots,) if spec.slots > 1 else ()
            ids = rng.integers(0, manifest.tokens.vocab_size, (batch, prefill + steps, *slots))
            ticks = np.sort(rng.integers(0, 2 * (prefill + steps), prefill + steps))
            ort_logits, torch_logits = _decode_both(OrtInference(session, spec, dev), parts, name, ids, ticks, prefill)
            checks.append(_stage_check(f"stage_{name} (batch {batch})", manifest, ort_logits, torch_logits))
    if progress:
        progress("semantic_encoder")
    checks.append(_check_semantic_encoder(directory, manifest, parts, dev))
    if progress:
        progress("codec_decoder")
    checks.append(_check_codec_decoder(directory, manifest, parts, dev, rng))
    return checks


def _decode_both(
    ort_inference: OrtInference, parts: ModelParts, stage: str, ids: np.ndarray, ticks: np.ndarray, prefill: int
) -> tuple[np.ndarray, np.ndarray]:
    """(steps + 1, B, V) logits of each back end: after the prefill, then after every cached step."""
    torch_inference = TorchInference(parts.stages[stage])
    results: tuple[list, list] = ([], [])
    for end in range(prefill, ids.shape[1] + 1):
        start = 0 if end == prefill else end - 1
        for out, inference in zip(results, (ort_inference, torch_inference), strict=True):
            out.append(inference.logits(ids[:, start:end], ticks[:end]))
    return np.stack(results[0]), np.stack(results[1])


def _stage_check(graph: str, manifest: Manifest, ort_logits: np.ndarray, torch_logits: np.ndarray) -> Check:
    if manifest.precision == "fp16":
        agreement = float((ort_logits.argmax(-1) == torch_logits.argmax(-1)).mean())
        return Check(graph, "argmax agreement", agreement, FP16_ARGMAX_AGREEMENT, higher_is_better=True)
    return Check(graph, "max |logit diff|", float(np.abs(ort_logits - torch_logits).max()), FP32_LOGIT_ATOL)


def _check_semantic_encoder(directory: Path, manifest: Manifest, parts: ModelParts, dev: Device) -> Check:
    session = open_session(directory / manifest.semantic_encoder.file, dev)
    phrase = sung_phrase(3.0, SEMANTIC_SAMPLE_RATE, seed=1)
    audio = np.stack([semantic_chunk(phrase, 0, 75), semantic_chunk(phrase, 75, 150)])
    ort_ids = session.run(None, {io.AUDIO: audio})[0]
    with torch.no_grad():
        torch_ids = parts.semantic(torch.from_numpy(audio)).numpy()
    return Check("semantic_encoder", "id agreement", float((ort_ids == torch_ids).mean()), ID_AGREEMENT, True)


def _check_codec_decoder(
    directory: Path, manifest: Manifest, parts: ModelParts, dev: Device, rng: np.random.Generator
) -> Check:
    session = open_session(directory / manifest.codec_decoder.file, dev)
    codes = rng.integers(0, manifest.tokens.codebook_size, (2, manifest.tokens.num_codebooks, 50))
    ort_audio = session.run(None, {io.CODES: codes})[0]
    with torch.no_grad():
        torch_audio = parts.codec.decode(torch.from_numpy(codes)).numpy()
    return Check("codec_decoder", "max |audio diff|", float(np.abs(ort_audio - torch_audio).max()), AUDIO_ATOL)
