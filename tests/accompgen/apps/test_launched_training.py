"""A recipe's stage training under a launcher: real torchrun processes on CPU (gloo), real failures."""

import dataclasses
import json
import os
import shlex
import sys

import pytest
import torch

from accompgen.apps.launched_training import last_record, launch_training
from accompgen.apps.recipe import QUICK, Recipe
from accompgen.core.errors import UserError
from accompgen.train.train_settings import TrainSettings

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
SETTINGS = TrainSettings(steps=5, batch_size=2, warmup_steps=1, checkpoint_every=5, log_every=1, compile=False)


def test_a_recipe_trains_its_stage_in_two_processes_that_stay_identical(synthetic, monkeypatch):
    model_dir, tokens = synthetic
    out = model_dir.parent
    assert tokens == out / "tokens"  # where a recipe run keeps them
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    settings = dataclasses.replace(QUICK, stages={name: SETTINGS for name in ("semantic", "coarse", "fine")})
    recipe = Recipe(out, settings, "quick", TORCHRUN)
    (step,) = [step for step in recipe.steps() if step.name == "train-semantic"]
    recipe.run_step(step, lambda done, total, text: None)
    assert recipe.is_done(step)
    records = [json.loads(line) for line in (model_dir / "logs" / "semantic.jsonl").read_text().splitlines()]
    digests = records[-1]["replica_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert torch.load(model_dir / "stages" / "semantic.pt", weights_only=True)["step"] == SETTINGS.steps
    assert (out / "logs" / "train-semantic.log").read_text().startswith(f"$ {shlex.join(TORCHRUN)} -m accompgen")


def test_a_launcher_that_fails_or_is_missing_is_named(synthetic, tmp_path):
    model_dir, tokens = synthetic
    failing = [sys.executable, "-c", "import sys; print('no GPU here'); sys.exit(3)"]
    with pytest.raises(UserError, match=r"stopped with exit status 3: see .*train-fine.log. Run the recipe again"):
        launch_training(failing, "fine", model_dir, tokens, SETTINGS, tmp_path / "logs", lambda *_: None)
    assert "no GPU here" in (tmp_path / "logs" / "train-fine.log").read_text()
    with pytest.raises(UserError, match="--launcher no-such-launcher --x could not start"):
        launch_training(["no-such-launcher", "--x"], "fine", model_dir, tokens, SETTINGS, tmp_path, lambda *_: None)


def test_progress_comes_from_the_last_whole_line_of_the_metrics(tmp_path):
    metrics = tmp_path / "coarse.jsonl"
    assert last_record(metrics) is None
    metrics.write_text('{"step": 10, "loss": 5.0}\n{"step": 20, "loss": 4.5}\n{"step": 3')
    assert last_record(metrics) == {"step": 20, "loss": 4.5}
    metrics.write_text('{"step": 20, "loss": 4.5}\n{"step": 20, "replica_digests": ["a", "a"]}\n')
    assert last_record(metrics) == {"step": 20, "loss": 4.5}


def test_an_interrupted_recipe_stops_the_training_it_launched(synthetic, tmp_path):
    model_dir, tokens = synthetic
    pid_file = tmp_path / "launched.pid"
    sleeper = [
        sys.executable,
        "-c",
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)",
    ]
    (model_dir / "logs").mkdir(exist_ok=True)
    (model_dir / "logs" / "fine.jsonl").write_text(json.dumps({"step": 1, "loss": 5.0}) + "\n")

    def interrupt(done, total, text):
        if pid_file.exists():  # the launched process is running: now the user stops the recipe
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        launch_training(sleeper, "fine", model_dir, tokens, SETTINGS, tmp_path / "logs", interrupt)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
