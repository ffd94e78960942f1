"""Reference generation in torch: a StageTransformer behind the shared numpy decoding loop."""

from __future__ import annotations

import numpy as np
import torch

from accompgen.core.decoding import ProgressFn, SamplingOptions, decode_window, variation_rngs
from accompgen.core.tokens import WindowSequence
from accompgen.model.transformer import KVCache, StageTransformer


class TorchInference:
    """`Inference` over a StageTransformer, its KV cache held as torch tensors between calls."""

    def __init__(self, model: StageTransformer, device: torch.device | str = "cpu"):
        self.model = model.eval()
        self.device = torch.device(device)
        self.cache: KVCache | None = None

    @torch.inference_mode()
    def logits(self, input_ids: np.ndarray, ticks: np.ndarray) -> np.ndarray:
        ids = torch.from_numpy(input_ids).to(self.device)
        if self.cache is None:
            self.cache = self.model.empty_cache(len(ids), self.device)
        logits, self.cache = self.model(ids, torch.from_numpy(ticks).to(self.device), self.cache, last_only=True)
        return logits.float().cpu().numpy()


def generate_window(
    model: StageTransformer,
    window: WindowSequence,
    options: SamplingOptions,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """(N, J, W) target ids of one window, sampled from the torch model: the ground truth for runtimes."""
    device = next(model.parameters()).device
    return decode_window(TorchInference(model, device), window, options, variation_rngs(options), progress)
