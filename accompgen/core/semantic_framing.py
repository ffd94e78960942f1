"""How audio maps onto 50 Hz semantic frames: HuBERT's hop and context at 16 kHz (numpy only).

HuBERT makes floor((n - 400) / 320) + 1 frames from n samples: each frame sees 400 samples and the frames
hop by 320. Padding 40 samples of context on each side of the hops of frames [a, b) therefore gives exactly
b - a frames, each centred on its own 20 ms.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

SEMANTIC_SAMPLE_RATE = 16000
SEMANTIC_HOP = 320  # samples per 50 Hz frame
SEMANTIC_CONTEXT = 40  # (400 - 320) / 2
SEMANTIC_CHUNK_FRAMES = 500  # 10 s per semantic-encoder call, in training and in the bridge (via the manifest)


def semantic_chunk(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    """(320 * (stop - start) + 80,) the samples HuBERT needs for frames [start, stop), zeros beyond the audio."""
    lo, hi = start * SEMANTIC_HOP - SEMANTIC_CONTEXT, stop * SEMANTIC_HOP + SEMANTIC_CONTEXT
    chunk = np.zeros(hi - lo, dtype=np.float32)
    src_lo, src_hi = max(lo, 0), min(hi, len(audio))
    if src_hi > src_lo:
        chunk[src_lo - lo : src_hi - lo] = audio[src_lo:src_hi]
    return chunk


def semantic_chunks(audio: np.ndarray, n_frames: int, chunk_frames: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, samples) covering frames [0, n_frames) in chunks, so attention never spans a whole song."""
    for start in range(0, n_frames, chunk_frames):
        stop = min(start + chunk_frames, n_frames)
        yield start, stop, semantic_chunk(audio, start, stop)
