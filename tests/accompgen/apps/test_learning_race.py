"""`accompgen bench --learning`: every path trains the same stage for the same budget and is scored alike (a smoke
run on tiny sizes: it measures, it asserts no timing)."""

import dataclasses
import json

import pytest

from accompgen.apps.cli import main
from accompgen.apps.learning_race import RaceSettings, learning_markdown, run_race
from accompgen.apps.train_bench import TODAY, TrainPath
from accompgen.train.train_settings import TrainSettings

TINY = TrainSettings(batch_size=4, lr=3e-3, warmup_steps=2, checkpoint_every=5, compile=False)
FP32_PATHS = (TODAY, TrainPath("attention in query blocks", "fp32", attention="blocked"))


def test_each_path_trains_from_nothing_for_the_budget_and_is_scored_on_the_same_windows(synthetic, tmp_path):
    model_dir, tokens = synthetic
    settings = RaceSettings(
        stage="semantic",
        minutes=0.04,
        every_minutes=0.01,
        timing_steps=3,
        eval_batches=2,
        paths=FP32_PATHS,
        training=TINY,
    )
    out = tmp_path / "race"
    for _ in range(2):  # a second race in the same folder starts from nothing again
        report = run_race(model_dir, tokens, settings, out, progress=lambda text: None)
    assert report == json.loads((out / "learning.json").read_text())
    assert list(report["paths"]) == [path.name for path in FP32_PATHS]
    for result in report["paths"].values():
        curve = result["curve"]
        assert result["steps"] >= settings.timing_steps and curve[-1]["step"] == result["steps"]
        assert [p["step"] for p in curve] == sorted(p["step"] for p in curve)
        assert [p["minutes"] for p in curve] == sorted(p["minutes"] for p in curve)
        assert result["final_loss"] == curve[-1]["loss"] > 0
    markdown = (out / "learning.md").read_text()
    assert "| fp32, SDPA, eager (before) | attention in query blocks |" in markdown


def test_the_table_lines_up_curves_of_different_lengths():
    point = {"minutes": 5.0, "step": 10, "loss": 4.0}
    short = {"steps": 10, "step_s": 1.0, "first_step_s": 2.0, "final_loss": 4.0, "curve": [point]}
    longer = dict(short, steps=20, final_loss=3.5, curve=[point, {"minutes": 10.0, "step": 20, "loss": 3.5}])
    report = {"stage": "coarse", "threads": 2, "paths": {"before": short, "after": longer}}
    rows = [line for line in learning_markdown(report).splitlines() if line.startswith("| 10.0 |")]
    assert rows == ["| 10.0 | 4.000 (step 10) | 3.500 (step 20) |"]


def test_without_a_model_and_tokens_the_command_says_what_to_give(capsys):
    assert main(["bench", "--learning"]) == 2
    assert "--model-dir MODEL and --data TOKENS" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["minutes", "every_minutes"])
def test_a_budget_must_be_positive(field):
    with pytest.raises(ValueError, match="must be positive"):
        dataclasses.replace(RaceSettings(), **{field: 0})
