"""Parity of a bundle with the torch modules it was exported from: onnxruntime against torch on random inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from accompgen.core import graph_names
from accompgen.core.bundle import Manifest, load_bundle
from accompgen.core.decoding import softmax
from accompgen.core.errors import UserError
from accompgen.core.semantic_framing import SEMANTIC_SAMPLE_RATE, semantic_chunk
from accompgen.core.synth import sung_phrase
from accompgen.model.model_dir import ModelParts, parts_from_source
from accompgen.model.torch_inference import TorchInference
from accompgen_bridge.ort_inference import OrtInference
from accompgen_bridge.providers import Device, choose_device, open_session

FP32_LOGIT_ATOL = 1e-4
# For bundles that round their weights: the mean total variation distance between the runtime's and torch's
# next-token distributions over the positions checked (0: the same distribution, 1: disjoint), the probability
# mass rounding moves per sampled token. The mean, not the largest: at one near-tie of a sharply trained model a
# rounding flips the top token, and that largest distance ran from 0.01 to 0.12 over three seeds of one int8
# bundle whose mean stayed within 0.006-0.013. Limits measured (quick recipe and chorale model; means): fp16
# <= 0.0006, int8 <= 0.013, int4 <= 0.084. Another model's weights move more: 0.063 on a tiny untrained model,
# whose distributions are near uniform, and 0.19-0.41 on sharper ones.
MEAN_TOTAL_VARIATION = {"fp16": 0.005, "int8": 0.04, "int4": 0.15}
AUDIO_ATOL = 1e-4
COMPACT_AUDIO_SNR_DB = 40.0  # fp16-stored decoder weights: audio within -40 dB of torch's
ID_AGREEMENT = 0.99
COMPACT_ID_AGREEMENT = 0.95  # fp16-stored encoder weights: a few near-ties may flip


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
            ort_run = OrtInference(session, spec, dev, capacity=prefill + steps)
            ort_logits, torch_logits = _decode_both(ort_run, parts, name, ids, ticks, prefill)
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
    rounding = manifest.quantization if manifest.quantization != "none" else manifest.precision
    if rounding in MEAN_TOTAL_VARIATION:
        distance = 0.5 * np.abs(softmax(ort_logits) - softmax(torch_logits)).sum(-1)
        return Check(graph, "mean total variation", float(distance.mean()), MEAN_TOTAL_VARIATION[rounding])
    return Check(graph, "max |logit diff|", float(np.abs(ort_logits - torch_logits).max()), FP32_LOGIT_ATOL)


def _check_semantic_encoder(directory: Path, manifest: Manifest, parts: ModelParts, dev: Device) -> Check:
    session = open_session(directory / manifest.semantic_encoder.file, dev)
    phrase = sung_phrase(3.0, SEMANTIC_SAMPLE_RATE, seed=1)
    audio = np.stack([semantic_chunk(phrase, 0, 75), semantic_chunk(phrase, 75, 150)])
    ort_ids = session.run(None, {graph_names.AUDIO: audio})[0]
    with torch.no_grad():
        torch_ids = parts.semantic(torch.from_numpy(audio)).numpy()
    limit = COMPACT_ID_AGREEMENT if manifest.quantization != "none" else ID_AGREEMENT
    return Check("semantic_encoder", "id agreement", float((ort_ids == torch_ids).mean()), limit, True)


def _check_codec_decoder(
    directory: Path, manifest: Manifest, parts: ModelParts, dev: Device, rng: np.random.Generator
) -> Check:
    session = open_session(directory / manifest.codec_decoder.file, dev)
    codes = rng.integers(0, manifest.tokens.codebook_size, (2, manifest.tokens.num_codebooks, 50))
    ort_audio = session.run(None, {graph_names.CODES: codes})[0]
    with torch.no_grad():
        torch_audio = parts.codec.decode(torch.from_numpy(codes)).numpy()
    if manifest.quantization != "none":
        error = float(np.sum((ort_audio - torch_audio) ** 2)) / max(float(np.sum(torch_audio**2)), 1e-20)
        snr = 10 * np.log10(1 / max(error, 1e-20))
        return Check("codec_decoder", "audio SNR vs torch (dB)", snr, COMPACT_AUDIO_SNR_DB, higher_is_better=True)
    return Check("codec_decoder", "max |audio diff|", float(np.abs(ort_audio - torch_audio).max()), AUDIO_ATOL)
