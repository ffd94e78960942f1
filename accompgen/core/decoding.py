"""Sampling, classifier-free guidance and the cached decoding loop, in numpy so torch and onnxruntime share them.

A back end only has to turn new tokens into next-token logits while keeping its own KV cache (`Inference`);
everything that decides which token comes next lives here, once. Shape symbols are those of accompgen.core.tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from accompgen.core.tokens import UNKNOWN, WindowSequence

# What a request may ask for, [low, high] per setting: the bridge checks every request against it, its command line
# states it, and the ReaScripts read it from reaper_scripts/AccompGen/accompgen_limits.lua (tools/reapack_index.py
# writes that file from here).
REQUEST_LIMITS: dict[str, tuple[float, float]] = {
    "seed": (0, 2**31 - 1),
    "cfg_scale": (0.0, 20.0),
    "temperature": (0.0, 5.0),
    "top_k": (0, 1 << 20),
    "variations": (1, 8),
}


@dataclass(frozen=True)
class SamplingOptions:
    temperature: float = 0.9  # softmax temperature; 0 picks the most likely id (greedy)
    top_k: int = 250  # keep the k most likely ids of the position's stream; 0 keeps all
    top_p: float = 1.0  # keep the smallest set of ids whose probability reaches p; 1.0 keeps all
    cfg_scale: float = 3.0  # lambda of classifier-free guidance; 1.0 is plain conditional sampling
    seed: int = 0  # variation i draws from its own generator seeded seed + i, so each is reproducible alone
    variations: int = 1  # N independent accompaniments, generated as one batch

    def __post_init__(self) -> None:
        checks = {
            "temperature must be >= 0": self.temperature >= 0,
            "top_k must be >= 0": self.top_k >= 0,
            "top_p must lie in (0, 1]": 0 < self.top_p <= 1,
            "cfg_scale must be >= 0": self.cfg_scale >= 0,
            "variations must be >= 1": self.variations >= 1,
            "seed must be >= 0": self.seed >= 0,
        }
        failed = [message for message, ok in checks.items() if not ok]
        if failed:
            raise ValueError("; ".join(failed))

    def replace(self, **changes: Any) -> SamplingOptions:
        return dataclasses.replace(self, **changes)

    @property
    def guided(self) -> bool:
        """Whether the unconditional half runs at all: with lambda = 1 it cancels out exactly."""
        return self.cfg_scale != 1.0


class Inference(Protocol):
    """A stage model with its own KV cache, fed a growing sequence."""

    def logits(self, input_ids: np.ndarray, ticks: np.ndarray) -> np.ndarray:
        """input_ids (B, S), or (B, S, W) for W slots per position, ticks (T,) for every position so far
        -> (B, V) float32 logits of the last new position; the cache grows by S."""
        ...


ProgressFn = Callable[[int, int], None]  # (steps done, steps in all)


def variation_rngs(options: SamplingOptions) -> list[np.random.Generator]:
    """One generator per variation: seeds seed, seed + 1, ..."""
    return [np.random.default_rng(options.seed + i) for i in range(options.variations)]


def guide(logits: np.ndarray, n: int, cfg_scale: float) -> np.ndarray:
    """(2N, V) with the conditional rows first -> (N, V): uncond + lambda * (cond - uncond)."""
    cond, uncond = logits[:n], logits[n:]
    return np.asarray(uncond + cfg_scale * (cond - uncond))


def filter_logits(logits: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """(N, V) -> (N, V) with the ids outside the top-k and the top-p nucleus set to -inf."""
    logits = logits.copy()
    if 0 < top_k < logits.shape[-1]:
        kth = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]
        logits[logits < kth] = -np.inf
    if top_p < 1.0:
        order = np.argsort(-logits, axis=-1, kind="stable")
        probs = softmax(np.take_along_axis(logits, order, axis=-1))
        # Drop an id when the ids ranked above it already reach top_p; the first id always stays.
        drop_sorted = np.cumsum(probs, axis=-1) - probs >= top_p
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        logits[drop] = -np.inf
    return logits


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return np.asarray(z / z.sum(axis=-1, keepdims=True))


def sample(logits: np.ndarray, temperature: float, rngs: list[np.random.Generator]) -> np.ndarray:
    """(N, V) -> (N,) ids; row i takes one uniform draw from rngs[i] by inverse CDF, so seeds fix every choice."""
    if temperature == 0:
        return np.asarray(logits.argmax(axis=-1))
    cdf = np.cumsum(softmax(logits / temperature), axis=-1)
    draws = np.array([[rng.random()] for rng in rngs]) * cdf[:, -1:]
    return np.asarray(np.minimum((cdf <= draws).sum(axis=-1), logits.shape[-1] - 1))


def next_tokens(
    logits: np.ndarray, lo: int, hi: int, options: SamplingOptions, rngs: list[np.random.Generator]
) -> np.ndarray:
    """(B, V) -> (N,) vocabulary ids in [lo, hi): guidance, filtering and sampling within one stream."""
    stream = logits[:, lo:hi]  # masking by slicing: ids outside the position's stream never compete
    if options.guided:
        stream = guide(stream, options.variations, options.cfg_scale)
    stream = filter_logits(stream, options.top_k, options.top_p)
    return sample(stream, options.temperature, rngs) + lo


def decode_window(
    inference: Inference,
    window: WindowSequence,
    options: SamplingOptions,
    rngs: list[np.random.Generator],
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Prefill condition, SEP and the known steps, then sample every unknown slot step by step
    -> (N, J, W) target ids, prompt included. Each slot samples only from its own stream's range; empty slots
    stay PAD. `rngs` holds one generator per variation (`variation_rngs`) and advances with every sample."""
    n = options.variations
    if len(window.condition) != n:
        raise ValueError(f"the window holds {len(window.condition)} rows for {n} variations")
    halves = 2 if options.guided else 1
    fed = np.concatenate([window.prefix(unconditional) for unconditional in (False, True)[:halves]])
    target = window.target.copy()
    start, steps = window.known_steps, target.shape[1]
    length = window.condition.shape[1] + 1 + start
    for step in range(start, steps):
        logits = inference.logits(fed if window.slots > 1 else fed[..., 0], window.ticks[:length])
        row = target[:, step]  # (N, W)
        for slot in np.flatnonzero(row[0] == UNKNOWN):
            row[:, slot] = next_tokens(logits, window.lo[step, slot], window.hi[step, slot], options, rngs)
        fed = np.tile(row[:, None, :], (halves, 1, 1))  # (B, 1, W): the same ids for both halves
        length += 1
        if progress:
            progress(step - start + 1, steps - start)
    return target
