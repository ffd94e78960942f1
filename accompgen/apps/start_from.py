"""`recipe songs --from RUN`: a run that starts from another recipe run's model instead of from nothing.

The new run takes RUN's tokenizers whole (codec, semantic encoder and its k-means: the stages' tokens mean what
they meant there) and starts each stage from RUN's weights. Only a run folder can be started from: a bundle holds
the graphs that generate, not the weights and the codec encoder that training needs.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from accompgen.core.errors import UserError
from accompgen.data.clips import ClipSettings
from accompgen.model.config import ModelConfig
from accompgen.model.model_dir import CONFIG_FILE, KMEANS_FILE, save_config, stage_checkpoint_path

STAGES = ("semantic", "coarse", "fine")
TOKENIZER_FILES = ("config.json", "model.safetensors")  # of the codec and of the semantic encoder


@dataclass(frozen=True)
class StartingPoint:
    run: Path
    config: str  # the stage sizes it trained: a new run trains the same ones
    clips: ClipSettings  # its clips cover its stages' windows

    @property
    def model_dir(self) -> Path:
        return self.run / "model"

    def stage_checkpoint(self, stage: str) -> Path:
        return stage_checkpoint_path(self.model_dir, stage)

    def copy_tokenizers(self, codec_dir: Path, hubert_dir: Path, model_dir: Path) -> None:
        """RUN's codec, semantic encoder and k-means into a new run's folders, the config pointing at the copies."""
        for name, target in (("codec", codec_dir), ("hubert", hubert_dir)):
            target.mkdir(parents=True, exist_ok=True)
            for file in TOKENIZER_FILES:
                shutil.copy2(self.run / name / file, target / file)
        model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.model_dir / KMEANS_FILE, model_dir / KMEANS_FILE)
        config = ModelConfig.load(self.model_dir / CONFIG_FILE)
        tokenizer = replace(config.tokenizer, hubert=str(hubert_dir.resolve()), encodec=str(codec_dir.resolve()))
        save_config(model_dir, replace(config, tokenizer=tokenizer))


def starting_point(run: Path) -> StartingPoint:
    """RUN checked before anything starts: a recipe run folder whose tokenizers and three stages are trained."""
    if (run / "manifest.yaml").is_file():
        raise UserError(
            f"--from {run} is a bundle: it holds the graphs that generate, not the weights and the codec encoder "
            "training starts from. Give the run folder that made it (the --out of its `accompgen recipe`)"
        )
    if not (run / "recipe.json").is_file():
        raise UserError(f"--from {run} is not a recipe run folder (it has no recipe.json): give the --out of one")
    needed = [
        *(run / name / file for name in ("codec", "hubert") for file in TOKENIZER_FILES),
        run / "model" / CONFIG_FILE,
        run / "model" / KMEANS_FILE,
        *(stage_checkpoint_path(run / "model", stage) for stage in STAGES),
    ]
    missing = [str(path.relative_to(run)) for path in needed if not path.is_file()]
    if missing:
        raise UserError(
            f"--from {run} has not trained everything a run starts from (missing: {', '.join(missing)}): "
            "finish that run first, by running its recipe command again"
        )
    settings: dict[str, Any] = json.loads((run / "recipe.json").read_text())["settings"]
    return StartingPoint(run.resolve(), settings["config"], ClipSettings(**settings["clips"]))
