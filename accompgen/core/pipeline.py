"""Three stages over windows: vocal semantic ids in, EnCodec codes out (numpy; any `Inference` back end).

Inputs longer than a stage's window are generated window by window. Windows overlap by the stage's prompt
length, and each window is prompted with the previous window's last generated frames, so the output runs on
as one continuous take. All ticks restart at each window: the model only ever sees tick distances.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from accompgen.core.decoding import Inference, SamplingOptions, decode_window, variation_rngs
from accompgen.core.tokens import (
    PATTERNS,
    Stage,
    TokenLayout,
    build_window,
    frames_for,
    from_steps,
    on_frame_grid,
)

StageProgress = Callable[[str, float], None]  # (stage name, fraction of that stage done)
InferenceFactory = Callable[[int], Inference]  # a fresh cache for every window, of the capacity given


@dataclass(frozen=True)
class Window:
    """One window of a track: target frames [start, stop), of which the first `prompt` are given."""

    start: int
    stop: int
    prompt: int


def plan_windows(n_frames: int, window_frames: int, prompt_frames: int) -> list[Window]:
    """Windows covering [0, n_frames): each starts `window - prompt` frames after the previous one."""
    hop = window_frames - prompt_frames
    windows, start = [], 0
    while True:
        stop = min(start + window_frames, n_frames)
        windows.append(Window(start, stop, prompt_frames if start else 0))
        if stop == n_frames:
            return windows
        start += hop


@dataclass(frozen=True)
class StagePlan:
    """How a stage generates: its window, the prompt that carries one window into the next, its codebook pattern.

    Declared once per stage in the model config; training cuts its sequences by it, the bundle records it whole
    and the runtime generates by it, so the three cannot drift apart."""

    window_s: float  # seconds of audio one generation window covers
    prompt_s: float  # seconds of the previous window's output that prompt the next one (the overlap)
    pattern: str = "flat"  # a key of tokens.PATTERNS: flat, one codebook per step; delay, all per step, k k late

    def __post_init__(self) -> None:
        if not 0 <= self.prompt_s < self.window_s:
            raise ValueError(f"prompt_s must lie in [0, window_s), got {self.prompt_s} for {self.window_s}")
        for seconds in (self.window_s, self.prompt_s):
            if not on_frame_grid(seconds):
                raise ValueError(f"{seconds} s is not a whole number of 50 Hz and 75 Hz frames (use multiples of 0.04)")
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, got {self.pattern!r}")


def generate_track(
    stage: Stage,
    conditions: dict[str, np.ndarray],
    n_frames: int,
    plan: StagePlan,
    new_inference: InferenceFactory,
    options: SamplingOptions,
    rngs: list[np.random.Generator],
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """`conditions`: track name -> (N, K, F) local codes of the whole input -> (N, K, n_frames) target codes.

    Windows without a prompt do not depend on each other: those of one shape run as one batch of
    windows x N rows, row (w, v) drawing from variation v's generator."""
    target, pattern = stage.target, PATTERNS[plan.pattern]
    n = options.variations
    windows = plan_windows(n_frames, target.frames(plan.window_s), target.frames(plan.prompt_s))
    new_frames = sum(w.stop - w.start - w.prompt for w in windows)
    out = np.zeros((n, target.width, n_frames), dtype=np.int64)
    done = 0
    for group in _batches(stage, conditions, windows):
        sequences = [
            build_window(
                stage,
                _conditions_of(stage, conditions, w),
                w.stop - w.start,
                out[..., w.start : w.start + w.prompt],
                pattern,
            )
            for w in group
        ]
        sequence = dataclasses.replace(
            sequences[0],
            condition=np.concatenate([s.condition for s in sequences]),
            target=np.concatenate([s.target for s in sequences]),
        )
        group_frames = sum(w.stop - w.start - w.prompt for w in group)

        def report(step: int, steps: int, before: int = done, frames: int = group_frames) -> None:
            if progress:
                progress((before + frames * step / steps) / new_frames)

        group_options = dataclasses.replace(options, variations=len(group) * n)
        steps = decode_window(new_inference(len(sequence.ticks)), sequence, group_options, rngs * len(group), report)
        for i, w in enumerate(group):
            out[:, :, w.start : w.stop] = from_steps(target, steps[i * n : (i + 1) * n], w.stop - w.start, pattern)
        done += group_frames
    return out


def _batches(stage: Stage, conditions: dict[str, np.ndarray], windows: list[Window]) -> list[list[Window]]:
    """Prompt-free windows grouped by sequence shape; prompted windows one at a time."""
    if any(w.prompt for w in windows):
        return [[w] for w in windows]
    groups: dict[tuple[int, ...], list[Window]] = {}
    for w in windows:
        shape = (w.stop - w.start, *(c.shape[-1] for c in _conditions_of(stage, conditions, w).values()))
        groups.setdefault(shape, []).append(w)
    return list(groups.values())


def _conditions_of(stage: Stage, conditions: dict[str, np.ndarray], w: Window) -> dict[str, np.ndarray]:
    """The slice of every condition track that sounds during window `w` of the target."""
    rate = stage.target.rate_hz
    start_s, length_s = w.start / rate, (w.stop - w.start) / rate
    sliced = {}
    for track in stage.condition:
        lo = round(start_s * track.rate_hz)
        hi = min(lo + track.frames(length_s), conditions[track.name].shape[-1])
        sliced[track.name] = conditions[track.name][..., lo:hi]
    return sliced


def generate_codes(
    layout: TokenLayout,
    plans: dict[str, StagePlan],
    vocal_semantic: np.ndarray,
    duration_s: float,
    inference: Mapping[str, InferenceFactory],
    options: SamplingOptions,
    preview: bool = False,
    progress: StageProgress | None = None,
    given: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """(F50,) vocal semantic ids of a region of `duration_s` -> (N, K, F75) codes: all codebooks, or only the
    coarse ones for a preview. `given` holds target tracks known beforehand, (N, K, F) by track name
    (`inst_semantic`, `coarse`): the stages that would write them are skipped, so real tokens can be fed to the
    later stages alone (the evaluation ladder)."""
    rngs = variation_rngs(options)
    n = options.variations
    stages = layout.stages
    acoustic_frames = frames_for(duration_s, stages["coarse"].target.rate_hz)
    tracks = {"vocal_semantic": np.broadcast_to(vocal_semantic, (n, 1, len(vocal_semantic))), **(given or {})}

    def run(name: str, n_frames: int) -> np.ndarray:
        if stages[name].target.name in tracks:
            return tracks[stages[name].target.name]
        report = (lambda f: progress(name, f)) if progress else None
        codes = generate_track(stages[name], tracks, n_frames, plans[name], inference[name], options, rngs, report)
        tracks[stages[name].target.name] = codes
        return codes

    run("semantic", len(vocal_semantic))
    coarse = run("coarse", acoustic_frames)
    if preview:
        return coarse
    return np.concatenate([coarse, run("fine", acoustic_frames)], axis=1)
