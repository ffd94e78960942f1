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

from accompgen import graph_io as io
from accompgen.audio import fit_length, resample
from accompgen.bundle import BundleError, Manifest, load_bundle
from accompgen.decoding import SamplingOptions
from accompgen.framing import semantic_chunks
from accompgen.pipeline import generate_codes
from accompgen.tokens import ACOUSTIC_RATE_HZ, SEMANTIC_RATE_HZ
from accompgen_bridge.audio import read_region
from accompgen_bridge.errors import BAD_ARGUMENT, JobError
from accompgen_bridge.ort_inference import OrtInference
from accompgen_bridge.providers import Device, choose_device, open_session
from accompgen_bridge.requests import GenerateArgs

log = logging.getLogger(__name__)

DECODE_CHUNK_FRAMES = 750  # 10 s of codes per decoder call keeps memory flat on long takes
DECODE_CONTEXT_FRAMES = 75  # 1 s decoded on each side of a chunk and dropped, so chunk seams do not show

Progress = Callable[[str, float], None]  # (phase, overall fraction in [0, 1]); may raise to cancel


class Cancelled(Exception):
    """Raised from a progress callback to stop a job."""


@dataclass(frozen=True)
class Request:
    """One generation: a region of a file and how to sample it."""

    input_path: str
    start_s: float
    duration_s: float
    options: SamplingOptions
    preview: bool = False  # coarse codebooks only: a quicker, rougher draft
    sample_rate: int | None = None  # output rate; None keeps the input's


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

    def __init__(self, bundle: str | Path, device: str = "auto"):
        self.bundle = Path(bundle)
        self.manifest: Manifest = load_bundle(self.bundle)
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

    def sampling_options(self, **overrides: float | int | None) -> SamplingOptions:
        """The bundle's default sampling settings with the given ones (None keeps the default) replaced."""
        defaults = self.manifest.sampling
        settings = {
            "temperature": defaults.temperature,
            "top_k": defaults.top_k,
            "top_p": defaults.top_p,
            "cfg_scale": defaults.cfg_scale,
        }
        settings.update({key: value for key, value in overrides.items() if value is not None})
        return SamplingOptions(**settings)

    def request(self, args: GenerateArgs) -> Request:
        """A checked request: the bundle's sampling defaults where `args` leaves them open."""
        try:
            options = self.sampling_options(
                seed=args.seed,
                cfg_scale=args.cfg_scale,
                temperature=args.temperature,
                top_k=args.top_k,
                variations=args.variations,
            )
        except ValueError as err:
            raise JobError(BAD_ARGUMENT, str(err)) from err
        return Request(
            args.input_path, args.start_s, args.duration_s, options, args.quality == "preview", args.sample_rate
        )

    def generate(self, request: Request, progress: Progress | None = None) -> Result:
        vocal, rate = read_region(request.input_path, request.start_s, request.duration_s)
        phases = PhaseProgress(request.preview, progress)
        semantic_ids = self._encode(vocal, rate, request.duration_s, lambda f: phases("encode", f))
        codes = generate_codes(
            self.manifest.tokens,
            {name: spec.plan for name, spec in self.manifest.stages.items()},
            semantic_ids,
            request.duration_s,
            {name: self._inference_factory(name) for name in self.manifest.stages},
            request.options,
            preview=request.preview,
            progress=phases,
        )
        audio = self._decode(codes, lambda f: phases("decode", f))
        out_rate = request.sample_rate or rate
        audio = resample(audio, self.manifest.audio.codec_sample_rate, out_rate)
        audio = fit_length(audio, round(request.duration_s * out_rate))
        seeds = tuple(request.options.seed + i for i in range(request.options.variations))
        return Result(audio=np.ascontiguousarray(audio, dtype=np.float32), sample_rate=out_rate, seeds=seeds)

    def _inference_factory(self, stage: str) -> Callable[[], OrtInference]:
        session, spec = self.sessions[f"stage_{stage}"], self.manifest.stages[stage]
        return lambda: OrtInference(session, spec, self.device)

    def _encode(self, vocal: np.ndarray, rate: int, duration_s: float, progress: Callable[[float], None]) -> np.ndarray:
        """(samples,) at the file's rate -> (F50,) vocal semantic ids."""
        audio_spec = self.manifest.audio
        audio_16k = resample(vocal, rate, audio_spec.semantic_sample_rate)
        n_frames = self.manifest.tokens.tracks["vocal_semantic"].frames(duration_s)
        session = self.sessions["semantic_encoder"]
        ids = []
        for start, stop, chunk in semantic_chunks(audio_16k, n_frames, audio_spec.semantic_chunk_frames):
            ids.append(session.run(None, {io.AUDIO: chunk[None]})[0][0])
            if len(ids[-1]) != stop - start:
                raise BundleError(
                    f"semantic_encoder.onnx gave {len(ids[-1])} ids for {stop - start} frames: it does not fit the "
                    "bundle's audio settings; export the bundle again"
                )
            progress(stop / n_frames)
        return np.concatenate(ids)

    def _decode(self, codes: np.ndarray, progress: Callable[[float], None]) -> np.ndarray:
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
            audio = session.run(None, {io.CODES: np.ascontiguousarray(span, dtype=np.int64)})[0]
            pieces.append(audio[:, (start - lo) * hop : (stop - lo) * hop])
            progress(stop / n_frames)
        return np.concatenate(pieces, axis=1)
