"""The generation runtime: a vocal region in, accompaniments out, with nothing but numpy and onnxruntime.

encode (HuBERT + k-means graph, in chunks) -> semantic, coarse, fine stages (KV-cache graphs, windows)
-> codec decoder (in chunks) -> resample to the output rate -> exactly the region's length.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accompgen.core import graph_names
from accompgen.core.audio import fit_length, resample
from accompgen.core.bundle import BundleError, Manifest, load_bundle
from accompgen.core.decoding import SamplingOptions
from accompgen.core.pipeline import generate_codes
from accompgen.core.semantic_framing import semantic_chunks
from accompgen.core.tokens import ACOUSTIC_RATE_HZ, SEMANTIC_RATE_HZ
from accompgen_bridge.audio import read_region
from accompgen_bridge.errors import BAD_ARGUMENT, JobError
from accompgen_bridge.job_request import GenerateRequest
from accompgen_bridge.ort_inference import OrtInference
from accompgen_bridge.providers import Device, choose_device, open_session

log = logging.getLogger(__name__)

DECODE_CHUNK_FRAMES = 750  # 10 s of codes per decoder call keeps memory flat on long takes
DECODE_CONTEXT_FRAMES = 75  # 1 s decoded on each side of a chunk and dropped, so chunk seams do not show

Progress = Callable[[str, float], None]  # (phase, overall fraction in [0, 1]); may raise to cancel


class Cancelled(Exception):
    """Raised from a progress callback to stop a job."""


@dataclass(frozen=True)
class Result:
    audio: np.ndarray  # (N, frames) float32, one row per variation
    sample_rate: int
    seeds: tuple[int, ...]  # the seed of each variation


class PhaseProgress:
    """Turns (phase, fraction of that phase) into (phase, fraction of the whole job).

    Phases weigh what they handle per second of audio: the stages their tokens, encoding and decoding a
    measured share of a tiny model's run."""

    def __init__(self, preview: bool, callback: Progress | None):
        weights = {"encode": 10.0, "semantic": SEMANTIC_RATE_HZ, "coarse": 4.0 * ACOUSTIC_RATE_HZ}
        if not preview:
            weights["fine"] = 4.0 * ACOUSTIC_RATE_HZ
        weights["decode"] = 30.0
        total = sum(weights.values())
        self.weights = {phase: weight / total for phase, weight in weights.items()}
        starts = np.cumsum([0.0, *self.weights.values()])
        self.starts = dict(zip(self.weights, starts, strict=False))
        self.callback = callback

    def __call__(self, phase: str, fraction: float) -> None:
        if self.callback:
            self.callback(phase, min(1.0, float(self.starts[phase] + self.weights[phase] * fraction)))


class Engine:
    """Sessions for every graph of a bundle, created once; `generate` can run many requests one after another."""

    def __init__(self, bundle: str | Path, device: str = "auto", manifest: Manifest | None = None):
        """`manifest`: the bundle's, already loaded and checked (hashing every graph twice is slow for big ones)."""
        self.bundle = Path(bundle)
        self.manifest: Manifest = manifest or load_bundle(self.bundle)
        self.device: Device = choose_device(device)
        log.info(
            "bundle %s (%s, %s); execution providers %s",
            self.bundle,
            self.manifest.model,
            self.manifest.precision,
            ", ".join(self.device.providers),
        )
        graphs = self.manifest.graphs()
        self.sessions = {name: open_session(self.bundle / spec.file, self.device) for name, spec in graphs.items()}

    def sampling_options(self, request: GenerateRequest) -> SamplingOptions:
        """The bundle's default sampling settings, with those the request gives in their place."""
        given = {
            "temperature": request.temperature,
            "top_k": request.top_k,
            "cfg_scale": request.cfg_scale,
        }
        try:
            return self.manifest.sampling.options(request.seed, request.variations).replace(
                **{key: value for key, value in given.items() if value is not None}
            )
        except ValueError as err:
            raise JobError(BAD_ARGUMENT, str(err)) from err

    def generate(self, request: GenerateRequest, progress: Progress | None = None) -> Result:
        options = self.sampling_options(request)
        vocal, rate = read_region(request.input_path, request.start_s, request.duration_s)
        phases = PhaseProgress(request.preview, progress)
        semantic_ids = self.encode(vocal, rate, request.duration_s, lambda f: phases("encode", f))
        codes = generate_codes(
            self.manifest.tokens,
            {name: spec.plan for name, spec in self.manifest.stages.items()},
            semantic_ids,
            request.duration_s,
            self.inference_factories(),
            options,
            preview=request.preview,
            progress=phases,
        )
        audio = self.decode(codes, lambda f: phases("decode", f))
        out_rate = request.sample_rate or rate
        audio = resample(audio, self.manifest.audio.codec_sample_rate, out_rate)
        audio = fit_length(audio, round(request.duration_s * out_rate))
        seeds = tuple(options.seed + i for i in range(options.variations))
        return Result(audio=np.ascontiguousarray(audio, dtype=np.float32), sample_rate=out_rate, seeds=seeds)

    def inference_factories(self) -> dict[str, Callable[[int], OrtInference]]:
        """Per stage: a new inference (its own cache of the capacity given) for every window."""
        return {name: self._inference_factory(name) for name in self.manifest.stages}

    def _inference_factory(self, stage: str) -> Callable[[int], OrtInference]:
        session, spec = self.sessions[f"stage_{stage}"], self.manifest.stages[stage]
        return lambda capacity: OrtInference(session, spec, self.device, capacity)

    def encode(
        self, audio: np.ndarray, rate: int, duration_s: float, progress: Callable[[float], None] | None = None
    ) -> np.ndarray:
        """(samples,) at the file's rate -> (F50,) semantic ids (of a vocal, or of an accompaniment: one encoder)."""
        audio_spec = self.manifest.audio
        audio_16k = resample(audio, rate, audio_spec.semantic_sample_rate)
        n_frames = self.manifest.tokens.tracks["vocal_semantic"].frames(duration_s)
        session = self.sessions["semantic_encoder"]
        ids = []
        for start, stop, chunk in semantic_chunks(audio_16k, n_frames, audio_spec.semantic_chunk_frames):
            ids.append(session.run(None, {graph_names.AUDIO: chunk[None]})[0][0])
            if len(ids[-1]) != stop - start:
                raise BundleError(
                    f"semantic_encoder.onnx gave {len(ids[-1])} ids for {stop - start} frames: it does not fit the "
                    "bundle's audio settings; export the bundle again"
                )
            if progress:
                progress(stop / n_frames)
        return np.concatenate(ids)

    def decode(self, codes: np.ndarray, progress: Callable[[float], None] | None = None) -> np.ndarray:
        """(N, k, F75) codes -> (N, F75 * hop) audio at the codec's rate, in chunks with context on each side."""
        hop, min_frames = self.manifest.audio.codec_hop, self.manifest.audio.codec_min_frames
        session = self.sessions["codec_decoder"]
        n_frames = codes.shape[-1]
        pieces = []
        for start in range(0, n_frames, DECODE_CHUNK_FRAMES):
            stop = min(start + DECODE_CHUNK_FRAMES, n_frames)
            lo, hi = max(0, start - DECODE_CONTEXT_FRAMES), min(n_frames, stop + DECODE_CONTEXT_FRAMES)
            span = codes[..., lo:hi]
            if span.shape[-1] < min_frames:  # the decoder's padding needs a few frames: repeat the last one
                span = np.pad(span, ((0, 0), (0, 0), (0, min_frames - span.shape[-1])), mode="edge")
            audio = session.run(None, {graph_names.CODES: np.ascontiguousarray(span, dtype=np.int64)})[0]
            pieces.append(audio[:, (start - lo) * hop : (stop - lo) * hop])
            if progress:
                progress(stop / n_frames)
        return np.concatenate(pieces, axis=1)
