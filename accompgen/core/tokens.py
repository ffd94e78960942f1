"""Token layout: one vocabulary for every stream, codebook interleaving and the 150 Hz tick clock (numpy only).

Shape symbols used in comments throughout the project:
    N variations, B batch rows (2N with classifier-free guidance), K codebooks per frame, F frames,
    L sequence positions, S new tokens in a forward pass, P cached positions, T = P + S, V vocabulary,
    J target steps of a window, W slots (ids) per step.

Every stream owns a contiguous id range in one vocabulary: the special ids first, then the vocal and the
instrumental semantic streams (the same k-means clusters, offset apart so the model tells them apart without
a segment embedding), then the EnCodec codebooks. Streams that sound together at one frame rate form a
`Track`; as a condition it is flattened frame-major and codebook-minor (f0q1 f0q2 .. f1q1 ..), as a target it
is laid out by a codebook pattern (flat like that, or MusicGen's delay). Every position carries a tick of a
150 Hz clock shared by both rates, so tokens that sound at the same moment sit at the same tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

TICK_RATE_HZ = 150
SEMANTIC_RATE_HZ = 50
ACOUSTIC_RATE_HZ = 75
FRAME_GRID_S = 0.04  # the shortest span that is a whole number of frames at both rates

PAD = 0  # fills unused positions in training batches; never generated
NULL = 1  # replaces every condition token for the unconditional half of classifier-free guidance
SEP = 2  # ends the condition: the target starts right after it
NUM_SPECIAL = 3
SEP_TICK = 0  # the separator opens the target's time line


def interleave(codes: np.ndarray) -> np.ndarray:
    """(..., K, F) codes -> (..., F*K) frame-major, codebook-minor."""
    return np.ascontiguousarray(np.swapaxes(codes, -1, -2)).reshape(*codes.shape[:-2], -1)


def deinterleave(flat: np.ndarray, width: int) -> np.ndarray:
    """(..., F*K) frame-major ids -> (..., K, F); the inverse of `interleave`."""
    if flat.shape[-1] % width:
        raise ValueError(f"{flat.shape[-1]} tokens do not fill whole frames of {width} codebooks")
    return np.ascontiguousarray(np.swapaxes(flat.reshape(*flat.shape[:-1], -1, width), -1, -2))


def frames_for(duration_s: float, rate_hz: int) -> int:
    """Frames a region of `duration_s` needs at `rate_hz`: the last partial frame counts (pad, then trim)."""
    if duration_s < 0:
        raise ValueError(f"duration must not be negative, got {duration_s}")
    # The epsilon keeps float noise (0.1 * 75 = 7.500000000000001) from adding a frame.
    return math.ceil(duration_s * rate_hz - 1e-6)


def on_frame_grid(seconds: float) -> bool:
    """Whether `seconds` is a whole number of frames at both rates (a multiple of FRAME_GRID_S)."""
    return all(abs(seconds * rate - round(seconds * rate)) <= 1e-6 for rate in (SEMANTIC_RATE_HZ, ACOUSTIC_RATE_HZ))


@dataclass(frozen=True)
class Stream:
    """One contiguous id range of the vocabulary: a semantic stream or one codebook."""

    name: str
    offset: int
    size: int

    @property
    def stop(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Track:
    """Streams that sound together at one frame rate, flattened frame-major and codebook-minor."""

    name: str
    rate_hz: int
    streams: tuple[Stream, ...]

    @property
    def width(self) -> int:
        """K: tokens per frame."""
        return len(self.streams)

    @property
    def ticks_per_frame(self) -> int:
        return TICK_RATE_HZ // self.rate_hz

    def frames(self, duration_s: float) -> int:
        return frames_for(duration_s, self.rate_hz)

    def to_ids(self, codes: np.ndarray) -> np.ndarray:
        """(..., K, F) local codes (0-based per stream) -> (..., F*K) vocabulary ids."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim < 2 or codes.shape[-2] != self.width:
            raise ValueError(f"{self.name} expects codes shaped (..., {self.width}, frames), got {codes.shape}")
        sizes = np.array([s.size for s in self.streams])[:, None]
        if codes.size and (codes.min() < 0 or (codes >= sizes).any()):
            raise ValueError(f"{self.name} codes out of range: each codebook holds {sizes.ravel().tolist()} ids")
        offsets = np.array([s.offset for s in self.streams])[:, None]
        return interleave(codes + offsets)

    def ticks(self, n_frames: int) -> np.ndarray:
        """(F*K,) tick of every position: all codebooks of frame f share tick f * ticks_per_frame."""
        return np.repeat(np.arange(n_frames, dtype=np.int64) * self.ticks_per_frame, self.width)


@dataclass(frozen=True)
class Stage:
    """One generation stage: the tracks that form the condition and the track it generates."""

    name: str
    condition: tuple[Track, ...]
    target: Track


STAGE_NAMES = ("semantic", "coarse", "fine")


@dataclass(frozen=True)
class TokenLayout:
    """The shared vocabulary: sizes in, id ranges, tracks and stage definitions out."""

    semantic_clusters: int  # k-means clusters of the HuBERT features
    codebook_size: int = 1024  # entries per EnCodec codebook
    num_codebooks: int = 8  # EnCodec 24 kHz at 6 kbps
    coarse_codebooks: int = 4  # codebooks 1..coarse come from the coarse stage, the rest from the fine stage

    def __post_init__(self) -> None:
        if self.semantic_clusters < 1 or self.codebook_size < 1:
            raise ValueError("semantic_clusters and codebook_size must be positive")
        if not 0 < self.coarse_codebooks < self.num_codebooks:
            raise ValueError(f"coarse_codebooks must lie in 1..{self.num_codebooks - 1}")

    @cached_property
    def vocal_semantic(self) -> Stream:
        return Stream("vocal_semantic", NUM_SPECIAL, self.semantic_clusters)

    @cached_property
    def inst_semantic(self) -> Stream:
        return Stream("inst_semantic", self.vocal_semantic.stop, self.semantic_clusters)

    @cached_property
    def codebooks(self) -> tuple[Stream, ...]:
        start = self.inst_semantic.stop
        return tuple(
            Stream(f"codebook_{q + 1}", start + q * self.codebook_size, self.codebook_size)
            for q in range(self.num_codebooks)
        )

    @property
    def vocab_size(self) -> int:
        return self.codebooks[-1].stop

    @cached_property
    def tracks(self) -> dict[str, Track]:
        split = self.coarse_codebooks
        return {
            "vocal_semantic": Track("vocal_semantic", SEMANTIC_RATE_HZ, (self.vocal_semantic,)),
            "inst_semantic": Track("inst_semantic", SEMANTIC_RATE_HZ, (self.inst_semantic,)),
            "coarse": Track("coarse", ACOUSTIC_RATE_HZ, self.codebooks[:split]),
            "fine": Track("fine", ACOUSTIC_RATE_HZ, self.codebooks[split:]),
        }

    @cached_property
    def stages(self) -> dict[str, Stage]:
        t = self.tracks
        return {
            "semantic": Stage("semantic", (t["vocal_semantic"],), t["inst_semantic"]),
            "coarse": Stage("coarse", (t["vocal_semantic"], t["inst_semantic"]), t["coarse"]),
            "fine": Stage("fine", (t["coarse"],), t["fine"]),
        }

    def to_dict(self) -> dict[str, Any]:
        """What a bundle manifest records: the sizes, and every stream's range so readers need not derive it."""
        streams = [self.vocal_semantic, self.inst_semantic, *self.codebooks]
        return {
            "semantic_clusters": self.semantic_clusters,
            "codebook_size": self.codebook_size,
            "num_codebooks": self.num_codebooks,
            "coarse_codebooks": self.coarse_codebooks,
            "vocab_size": self.vocab_size,
            "special": {"pad": PAD, "null": NULL, "sep": SEP},
            "streams": {s.name: {"offset": s.offset, "size": s.size} for s in streams},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenLayout:
        layout = cls(
            semantic_clusters=int(data["semantic_clusters"]),
            codebook_size=int(data["codebook_size"]),
            num_codebooks=int(data["num_codebooks"]),
            coarse_codebooks=int(data["coarse_codebooks"]),
        )
        if "vocab_size" in data and data["vocab_size"] != layout.vocab_size:
            raise ValueError(f"vocab_size {data['vocab_size']} does not match the layout ({layout.vocab_size})")
        return layout


class CodebookPattern:
    """How a target track's (K, F) codes become J sequence steps of W slots (audiocraft's codebook patterns).

    `grid` gives, for every (step, slot), the frame and codebook it holds (-1: an empty slot, fed as PAD), and
    the frame whose tick the step takes."""

    name = ""

    def grid(self, frames: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """frame (J, W), codebook (J, W), step frame (J,)"""
        raise NotImplementedError

    def slots(self, width: int) -> int:
        raise NotImplementedError


class FlatPattern(CodebookPattern):
    """One token per step, frame-major: f0q1 f0q2 .. f1q1 ... (J = F*K, W = 1)."""

    name = "flat"

    def grid(self, frames: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frame = np.repeat(np.arange(frames), width)
        return frame[:, None], np.tile(np.arange(width), frames)[:, None], frame

    def slots(self, width: int) -> int:
        return 1


class DelayPattern(CodebookPattern):
    """All codebooks per step, codebook k delayed by k steps, as in MusicGen (J = F + K - 1, W = K): K times
    fewer steps over a K times shorter cache, for a little quality."""

    name = "delay"

    def grid(self, frames: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        steps = frames + width - 1
        frame = np.arange(steps)[:, None] - np.arange(width)[None, :]
        valid = (frame >= 0) & (frame < frames)
        codebook = np.where(valid, np.arange(width)[None, :], -1)
        return np.where(valid, frame, -1), codebook, np.arange(steps)

    def slots(self, width: int) -> int:
        return width


PATTERNS: dict[str, CodebookPattern] = {p.name: p for p in (FlatPattern(), DelayPattern())}
UNKNOWN = -1  # a target id still to be generated


def to_steps(track: Track, codes: np.ndarray, pattern: CodebookPattern) -> np.ndarray:
    """(..., K, F) local codes, UNKNOWN where not yet generated -> (..., J, W) ids (PAD in empty slots)."""
    frame, codebook, _ = pattern.grid(codes.shape[-1], track.width)
    offsets = np.array([s.offset for s in track.streams])
    empty = frame < 0
    picked = codes[..., np.where(empty, 0, codebook), np.where(empty, 0, frame)]
    ids = np.where(picked == UNKNOWN, UNKNOWN, picked + offsets[np.where(empty, 0, codebook)])
    return np.where(empty, PAD, ids).astype(np.int64)


def from_steps(track: Track, steps: np.ndarray, frames: int, pattern: CodebookPattern) -> np.ndarray:
    """(..., J, W) ids -> (..., K, F) local codes; the inverse of `to_steps` for fully generated steps."""
    frame, codebook, _ = pattern.grid(frames, track.width)
    lo, hi = step_bounds(track, frames, pattern)
    valid = frame >= 0
    if not ((steps[..., valid] >= lo[valid]) & (steps[..., valid] < hi[valid])).all():
        raise ValueError(f"ids outside the {track.name} streams")
    codes = np.zeros((*steps.shape[:-2], track.width, frames), dtype=np.int64)
    codes[..., codebook[valid], frame[valid]] = steps[..., valid] - lo[valid]
    return codes


def step_bounds(track: Track, frames: int, pattern: CodebookPattern) -> tuple[np.ndarray, np.ndarray]:
    """(J, W) each, [lo, hi): the id range every slot may hold; lo = hi = -1 for an empty slot."""
    frame, codebook, _ = pattern.grid(frames, track.width)
    offsets = np.array([s.offset for s in track.streams])
    stops = np.array([s.stop for s in track.streams])
    empty = frame < 0
    return np.where(empty, -1, offsets[codebook]), np.where(empty, -1, stops[codebook])


@dataclass(frozen=True)
class WindowSequence:
    """One stage window of N rows: condition, SEP, then the target as T steps of W slots.

    The target holds the prompt's ids (the overlap with the previous window) and UNKNOWN where the decoder must
    sample. `ticks` covers every position the window will ever hold. All rows share ticks, bounds and which
    target ids are known.
    """

    condition: np.ndarray  # (N, Lc) condition ids, tracks one after another, one per position
    target: np.ndarray  # (N, J, W) target ids: known, UNKNOWN, or PAD in an empty slot
    ticks: np.ndarray  # (Lc + 1 + J,)
    lo: np.ndarray  # (J, W) lowest id each slot may hold; -1 for an empty slot
    hi: np.ndarray  # (J, W) one past the highest

    @property
    def slots(self) -> int:
        return int(self.target.shape[2])

    @property
    def known_steps(self) -> int:
        """Leading target steps given entirely: they go into the prefill."""
        unknown = (self.target == UNKNOWN).any(axis=(0, 2))
        return int(np.argmax(unknown)) if unknown.any() else len(unknown)

    def prefix(self, unconditional: bool = False) -> np.ndarray:
        """(N, Lc + 1 + known_steps, W) the ids fed at prefill: a single-token position carries its id in slot 0
        and PAD in the others; the unconditional prefix has NULL for every condition id."""
        rows = len(self.condition)
        single = np.full((rows, self.condition.shape[1] + 1, self.slots), PAD, dtype=np.int64)
        single[:, :-1, 0] = NULL if unconditional else self.condition
        single[:, -1, 0] = SEP
        return np.concatenate([single, self.target[:, : self.known_steps]], axis=1)


def build_window(
    stage: Stage,
    conditions: dict[str, np.ndarray],
    n_target_frames: int,
    prompt: np.ndarray | None = None,
    pattern: CodebookPattern = PATTERNS["flat"],
) -> WindowSequence:
    """Lay out one window of N rows: `conditions` maps each condition track name to (N, K, F) local codes;
    `prompt` is (N, K, Fp) local target codes that continue the previous window (or the whole target, for
    training)."""
    parts, ticks = [], []
    for track in stage.condition:
        codes = conditions[track.name]
        parts.append(track.to_ids(codes))
        ticks.append(track.ticks(codes.shape[-1]))
    rows = len(parts[0])
    target = stage.target
    prompt = np.zeros((rows, target.width, 0), np.int64) if prompt is None else prompt
    if prompt.shape[-1] > n_target_frames:
        raise ValueError(f"a prompt of {prompt.shape[-1]} frames does not fit a window of {n_target_frames}")
    codes = np.full((rows, target.width, n_target_frames), UNKNOWN, dtype=np.int64)
    codes[..., : prompt.shape[-1]] = prompt
    _, _, step_frame = pattern.grid(n_target_frames, target.width)
    lo, hi = step_bounds(target, n_target_frames, pattern)
    return WindowSequence(
        condition=np.concatenate(parts, axis=1),
        target=to_steps(target, codes, pattern),
        ticks=np.concatenate([*ticks, [SEP_TICK], step_frame * target.ticks_per_frame]).astype(np.int64),
        lo=lo,
        hi=hi,
    )
