"""`accompgen eval`: per-stage loss and accuracy on the held-out songs, and FAD between two folders of audio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from accompgen.fad import embed_folder, fad, load_embedding
from accompgen.model_dir import load_config, load_stage, stage_checkpoint_path
from accompgen.train.trainer import target_loss
from accompgen.train.windows import StageWindows


@torch.no_grad()
def token_metrics(model_dir: Path, tokens_dir: Path, batches: int = 8, batch_size: int = 8) -> dict[str, Any]:
    """Teacher-forced loss and next-token accuracy of every trained stage on the val split."""
    config = load_config(model_dir)
    results = {}
    for name, stage_config in config.stages.items():
        path = stage_checkpoint_path(model_dir, name)
        if not path.is_file():
            results[name] = {"skipped": f"no checkpoint at {path}"}
            continue
        model = load_stage(path, config, name)
        stage = config.tokens.stages[name]
        data = StageWindows(
            tokens_dir, config.tokens, stage, stage_config.window_s, stage_config.codebook_pattern, split="val"
        )
        rng = np.random.default_rng(0)
        losses, accuracies = [], []
        for _ in range(batches):
            batch = data.batch(rng.integers(0, len(data), batch_size), rng)
            loss, accuracy = target_loss(model, batch, torch.device("cpu"))
            losses.append(loss.item())
            accuracies.append(accuracy.item())
        loss = float(np.mean(losses))
        results[name] = {"loss": loss, "perplexity": float(np.exp(loss)), "accuracy": float(np.mean(accuracies))}
    return results


def audio_metrics(reference: Path, generated: Path, embedding: str) -> dict[str, Any]:
    model = load_embedding(embedding)
    return {"embedding": embedding, "fad": fad(embed_folder(model, reference), embed_folder(model, generated))}
