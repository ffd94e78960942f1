"""`accompgen eval`: per-stage loss and accuracy on the held-out songs, and FAD between two folders of audio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from accompgen.evaluation.fad import embed_folder, fad, load_embedding
from accompgen.model.model_dir import load_config, load_stage, stage_checkpoint_path
from accompgen.train.trainer import target_loss
from accompgen.train.windows import StageWindows


@torch.no_grad()
def token_metrics(
    model_dir: Path, tokens_dir: Path, batches: int = 8, batch_size: int = 8, split: str = "val"
) -> dict[str, Any]:
    """Teacher-forced loss and next-token accuracy of every trained stage on held-out windows, with their true
    condition and with the condition of a clip of another song: a stage that learned the mapping does clearly
    better with the true one."""
    config = load_config(model_dir)
    results: dict[str, Any] = {}
    for name, stage_config in config.stages.items():
        path = stage_checkpoint_path(model_dir, name)
        if not path.is_file():
            results[name] = {"skipped": f"no checkpoint at {path}"}
            continue
        model = load_stage(path, config, name)
        data = StageWindows(tokens_dir, config.tokens, config.tokens.stages[name], stage_config.plan, split=split)
        results[name] = {"true": teacher_forced(model, data, batches, batch_size, shuffled=False)}
        if data.song_count > 1:
            results[name]["shuffled"] = teacher_forced(model, data, batches, batch_size, shuffled=True)
        else:
            results[name]["shuffled"] = {"skipped": f"one {split} song: a mismatched condition needs another song"}
    return results


def teacher_forced(
    model: torch.nn.Module, data: StageWindows, batches: int, batch_size: int, shuffled: bool
) -> dict[str, float]:
    windows = np.random.default_rng(0)  # the same windows for both conditions
    conditions = np.random.default_rng(1)  # drawn apart, so that both conditions see the same windows
    losses, accuracies = [], []
    for _ in range(batches):
        clips = windows.integers(0, len(data), batch_size)
        others = data.clips_of_other_songs(clips, conditions) if shuffled else None
        loss, accuracy = target_loss(model, data.batch(clips, windows, condition_clips=others), torch.device("cpu"))
        losses.append(loss.item())
        accuracies.append(accuracy.item())
    loss = float(np.mean(losses))
    return {"loss": loss, "perplexity": float(np.exp(loss)), "accuracy": float(np.mean(accuracies))}


def audio_metrics(reference: Path, generated: Path, embedding: str) -> dict[str, Any]:
    model = load_embedding(embedding)
    return {"embedding": embedding, "fad": fad(embed_folder(model, reference), embed_folder(model, generated))}
