"""The learning-rate schedule every trainer here uses."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, steps: int, min_ratio: float) -> float:
    """The factor on the peak learning rate: linear warmup to 1, then cosine down to min_ratio at the last step."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
