"""Token layout: one vocabulary for every stream, codebook interleaving and the 150 Hz tick clock (numpy only).

Shape symbols used in comments throughout the project:
    N variations, B batch rows (2N with classifier-free guidance), K codebooks per frame, F frames,
    L sequence positions, S new tokens in a forward pass, P cached positions, T = P + S, V vocabulary.

Every stream owns a contiguous id range in one vocabulary: the special ids first, then the vocal and the
instrumental semantic streams (the same k-means clusters, offset apart so the model tells them apart without
a segment embedding), then the EnCodec codebooks. Streams that sound together at one frame rate form a
`Track`, flattened frame-major and codebook-minor (f0q1 f0q2 .. f1q1 ..). Every position carries a tick of
a 150 Hz clock shared by both rates, so tokens that sound at the same moment sit at the same tick.
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

    def to_codes(self, ids: np.ndarray) -> np.ndarray:
        """(..., F*K) vocabulary ids -> (..., K, F) local codes; the inverse of `to_ids`."""
        ids = np.asarray(ids, dtype=np.int64)
        codes = deinterleave(ids, self.width)
        lo, hi = self.bounds(codes.shape[-1])
        if not ((ids >= lo) & (ids < hi)).all():
            raise ValueError(f"ids outside the {self.name} streams")
        return codes - np.array([s.offset for s in self.streams])[:, None]

    def ticks(self, n_frames: int) -> np.ndarray:
        """(F*K,) tick of every position: all codebooks of frame f share tick f * ticks_per_frame."""
        return np.repeat(np.arange(n_frames, dtype=np.int64) * self.ticks_per_frame, self.width)

    def bounds(self, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """(F*K,) each, [lo, hi): the id range a position of this track may hold."""
        lo = np.tile(np.array([s.offset for s in self.streams], dtype=np.int64), n_frames)
        hi = np.tile(np.array([s.stop for s in self.streams], dtype=np.int64), n_frames)
        return lo, hi


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


@dataclass(frozen=True)
class WindowSequence:
    """One stage window of N rows laid out as sequences: condition, SEP, then the target (prompt first).

    `ticks` covers every position the window will ever hold, generated ones included, so a decoder can hand
    the model the ticks of the tokens it feeds without knowing the layout. All rows share ticks and bounds.
    """

    condition: np.ndarray  # (N, Lc) condition ids, tracks one after another
    prompt: np.ndarray  # (N, Lp) target ids given up front: the overlap with the previous window
    ticks: np.ndarray  # (Lc + 1 + n_target,)
    target_lo: np.ndarray  # (n_target,) lowest id each target position may hold
    target_hi: np.ndarray  # (n_target,) one past the highest

    @property
    def n_target(self) -> int:
        return len(self.target_lo)

    @property
    def prefix_length(self) -> int:
        return self.condition.shape[1] + 1 + self.prompt.shape[1]

    def prefix(self, unconditional: bool = False) -> np.ndarray:
        """(N, Lc + 1 + Lp) the ids fed at prefill; the unconditional prefix has NULL for every condition id."""
        condition = np.full_like(self.condition, NULL) if unconditional else self.condition
        sep = np.full((len(condition), 1), SEP, dtype=np.int64)
        return np.concatenate([condition, sep, self.prompt], axis=1).astype(np.int64)


def build_window(
    stage: Stage,
    conditions: dict[str, np.ndarray],
    n_target_frames: int,
    prompt: np.ndarray | None = None,
) -> WindowSequence:
    """Lay out one window of N rows: `conditions` maps each condition track name to (N, K, F) local codes;
    `prompt` is (N, K, Fp) local target codes that continue the previous window."""
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
    lo, hi = target.bounds(n_target_frames)
    return WindowSequence(
        condition=np.concatenate(parts, axis=1),
        prompt=target.to_ids(prompt),
        ticks=np.concatenate([*ticks, [SEP_TICK], target.ticks(n_target_frames)]).astype(np.int64),
        target_lo=lo,
        target_hi=hi,
    )
