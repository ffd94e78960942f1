"""Token folders written directly, with a mapping a tiny model can learn: instrumental = f(vocal). The tests train on
them, and `accompgen bench --train` times training steps on them (a step's speed does not depend on the tokens)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from accompgen.core.tokens import TokenLayout
from accompgen.data.clips import ClipSettings


def write_tokens(
    root: Path, layout: TokenLayout, songs: int = 6, clips: int = 8, clip_s: float = 2.0, seed: int = 0
) -> Path:
    """Prepared-token layout (index.json + shards/*.npz) of learnable synthetic songs."""
    rng = np.random.default_rng(seed)
    f50, f75 = round(clip_s * 50), round(clip_s * 75)
    k, card = layout.semantic_clusters, layout.codebook_size
    (root / "shards").mkdir(parents=True)
    index: dict = {
        "layout": layout.to_dict(),
        "clips": dataclasses.asdict(ClipSettings(clip_s=clip_s, hop_s=clip_s)),
        "tokenizer_sha256": "synthetic",
        "songs": {},
        "skipped": {},
    }
    for song in range(songs):
        vocal = rng.integers(0, k, (clips, f50))
        inst = (3 * vocal + 1) % k
        at_75 = inst[:, np.arange(f75) * 2 // 3]  # the semantic frame sounding at each acoustic frame
        codes = np.stack([(at_75 + 5 * q) % card for q in range(layout.num_codebooks)], axis=1)
        np.savez(
            root / "shards" / f"song{song}.npz",
            vocal_semantic=vocal,
            inst_semantic=inst,
            codes=codes,
            starts=np.zeros(clips, np.int64),
        )
        index["songs"][f"song{song}"] = {"shard": f"song{song}.npz", "clips": clips}
    (root / "index.json").write_text(json.dumps(index))
    return root
