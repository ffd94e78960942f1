"""`accompgen recipe songs`: checked songs, a plan sized to the budget, then the chorale recipe's steps on them."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from accompgen.apps.cli import main
from accompgen.apps.demo import shipped_bundle
from accompgen.apps.recipe import FULL
from accompgen.apps.song_recipe import MAX_PASSES, CorpusSummary, plan
from accompgen.apps.start_from import StartingPoint
from accompgen.core.errors import UserError
from accompgen.core.synth import sung_phrase
from accompgen.model.config import ModelConfig

RATE = 24000
FAST = [  # the quick sizes, shorter still: this test checks the run's shape, not what it learns
    "codec.steps=40",
    "codec.autoencoder_steps=10",
    "codec.warmup_steps=5",
    "hubert.steps=60",
    "stages.semantic.steps=40",
    "stages.coarse.steps=40",
    "stages.fine.steps=40",
]


def write_song(folder, seed, seconds=8.0):
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    level = np.repeat(rng.uniform(0.05, 0.4, int(seconds) + 1), RATE)[: len(t)]
    root = 110 * 2 ** ((seed % 7) / 12)
    folder.mkdir(parents=True)
    sf.write(folder / "vocals.wav", sung_phrase(seconds, RATE, seed=seed), RATE)
    sf.write(
        folder / "accompaniment.wav", level * sum(np.sin(2 * np.pi * root * r * t) for r in (1, 1.26, 1.5)) / 3, RATE
    )


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("my-songs")
    for seed in range(16):
        write_song(root / f"take {seed}", seed)
    return root


@pytest.fixture(scope="module")
def quick_run(songs, tmp_path_factory):
    out = tmp_path_factory.mktemp("song-recipe") / "run"
    assert main(["recipe", "songs", "--data", str(songs), "--out", str(out), "--quick", *fast_overrides()]) == 0
    return out


@pytest.mark.slow
def test_the_run_checks_the_songs_holds_some_out_and_ships_a_bundle_with_a_model_card(quick_run, songs, capsys):
    split = json.loads((quick_run / "split.json").read_text())
    assert len(split["test"]) == 4 and len(split["train"]) == 12 and not set(split["test"]) & set(split["train"])
    preflight = json.loads((quick_run / "preflight.json").read_text())
    assert preflight["summary"]["train_songs"] == 12 and preflight["refusal"] is None
    card = (quick_run / "bundle-int8" / "README.md").read_text()
    assert f"held out, never trained on: 4 songs from `{songs}`" in card
    for rung in ("A", "B", "B_coarse", "E", "F", "C", "D"):
        assert f"\n| {rung} | " in card
    assert "chord movement of a held-out accompaniment's tokens" in card
    assert "## What it cannot do" in card and (quick_run / "bundle" / "README.md").read_text() == card
    evaluation = json.loads((quick_run / "evaluation.json").read_text())
    assert "unseen_voice" not in evaluation and set(evaluation["music"]) >= {"real", "trained_int8"}
    assert (quick_run / "bundle-int8" / "demo_vocal.flac").is_file()


@pytest.mark.slow
def test_a_second_run_resumes_and_other_songs_are_refused(quick_run, songs, tmp_path, capsys):
    args = ["recipe", "songs", "--out", str(quick_run), "--quick", *fast_overrides()]
    before = (quick_run / "recipe.json").read_text()
    assert main([*args, "--data", str(songs)]) == 0
    assert (quick_run / "recipe.json").read_text() == before and "songs checked earlier" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    assert main([*args, "--data", str(tmp_path / "other")]) == 2
    assert f"{quick_run} was started on the songs of {songs}" in capsys.readouterr().err


def fast_overrides():
    return [item for pair in (("--set", s) for s in FAST) for item in pair]


@pytest.fixture(scope="module")
def fine_tuned(quick_run, songs, tmp_path_factory):
    out = tmp_path_factory.mktemp("fine-tuned") / "run"
    args = ["recipe", "songs", "--data", str(songs), "--out", str(out), "--quick", "--from", str(quick_run)]
    assert main([*args, *fast_overrides()]) == 0
    return out


@pytest.mark.slow
def test_a_run_from_another_keeps_its_tokenizers_and_says_where_it_started(fine_tuned, quick_run):
    steps = json.loads((fine_tuned / "recipe.json").read_text())["steps"]
    assert {"tokenizers", "codec", "semantic-tokens", "train-coarse"} <= set(steps)
    assert not {"semantic-encoder", "kmeans"} & set(steps)
    for kept in ("codec/model.safetensors", "hubert/model.safetensors", "model/kmeans.npy"):
        assert (fine_tuned / kept).read_bytes() == (quick_run / kept).read_bytes(), kept
    config = ModelConfig.load(fine_tuned / "model" / "config.yaml")
    assert Path(config.tokenizer.encodec) == (fine_tuned / "codec").resolve()
    assert Path(config.tokenizer.hubert) == (fine_tuned / "hubert").resolve()
    card = (fine_tuned / "bundle-int8" / "README.md").read_text()
    assert f"started from the model of `{quick_run.resolve()}`" in card and "- codec:" not in card
    assert "from nothing" not in card
    json.loads((fine_tuned / "evaluation.json").read_text())["ladder"]["rungs"]["C"]  # evaluated like any run


@pytest.mark.slow
def test_a_run_resumes_only_from_where_it_started(fine_tuned, quick_run, songs, capsys):
    args = ["recipe", "songs", "--data", str(songs), "--out", str(fine_tuned), "--quick", *fast_overrides()]
    assert main(args) == 2
    assert f"{fine_tuned} was started from {quick_run.resolve()}: resume it with --from" in capsys.readouterr().err


def test_what_a_run_cannot_start_from_is_named_before_any_work(songs, tmp_path, capsys):
    args = ["recipe", "songs", "--data", str(songs), "--out", str(tmp_path / "run"), "--quick", "--from"]
    assert main([*args, str(shipped_bundle())]) == 2
    assert "is a bundle: it holds the graphs that generate, not the weights" in capsys.readouterr().err
    assert main([*args, str(songs)]) == 2
    assert "is not a recipe run folder (it has no recipe.json)" in capsys.readouterr().err
    unfinished = tmp_path / "unfinished"
    (unfinished / "codec").mkdir(parents=True)
    (unfinished / "recipe.json").write_text(json.dumps({"settings": {}}))
    (unfinished / "codec" / "config.json").write_text("{}")
    assert main([*args, str(unfinished)]) == 2
    err = capsys.readouterr().err
    assert "has not trained everything a run starts from (missing: codec/model.safetensors, hubert/config.json" in err
    assert "model/stages/fine.pt" in err
    assert not (tmp_path / "run").exists()


def test_too_few_songs_are_refused_before_any_training(songs, tmp_path, capsys):
    few = tmp_path / "few"
    for seed in range(3):
        write_song(few / f"take {seed}", seed)
    assert main(["recipe", "songs", "--data", str(few), "--out", str(tmp_path / "run"), "--quick"]) == 2
    assert "too little to train on: only 1 usable held-out song(s)" in capsys.readouterr().err
    assert not (tmp_path / "run" / "split.json").exists() and not (tmp_path / "run" / "codec").exists()


def test_the_chorale_recipe_takes_no_song_folders(tmp_path, capsys):
    assert main(["recipe", "chorales", "--out", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "--data, --test, --hours and --from are for `recipe songs`" in capsys.readouterr().err
    assert main(["recipe", "songs", "--out", str(tmp_path)]) == 2
    assert "recipe songs needs --data FOLDER" in capsys.readouterr().err


CORPUS = CorpusSummary(train_songs=400, train_minutes=600.0, train_clips=18000, test_songs=40, test_minutes=60.0)


def test_the_plan_fits_the_budget_and_says_so():
    chosen = plan(CORPUS, 2.0)  # 11 h of audio: about 45 min of it go to tokenizing and what follows training
    assert chosen.settings.stages["coarse"].steps < FULL.stages["coarse"].steps
    assert chosen.lines[0] == "400 songs, 600 min to train on (18000 clips); 40 held out"
    assert chosen.lines[-1].startswith("about 2.0 h in all")
    longer = plan(CORPUS, 5.0)
    assert longer.settings.stages["coarse"].steps > FULL.stages["coarse"].steps
    assert longer.settings.codec.warmup_steps == FULL.codec.warmup_steps


def test_a_run_from_another_gives_the_tokenizers_time_to_the_stages():
    start = StartingPoint(Path("/runs/chorales"), FULL.config, FULL.clips)
    scratch, fine_tune = plan(CORPUS, 2.0), plan(CORPUS, 2.0, FULL, start)
    assert fine_tune.settings.stages["coarse"].steps > scratch.settings.stages["coarse"].steps
    assert not any(line.lstrip().startswith(("codec", "semantic-encoder")) for line in fine_tune.lines)
    assert any("tokenizers and the stages' first weights from /runs/chorales" in line for line in fine_tune.lines)


def test_a_small_corpus_caps_the_stages_and_a_tiny_budget_is_refused():
    small = CorpusSummary(train_songs=20, train_minutes=30.0, train_clips=900, test_songs=4, test_minutes=6.0)
    chosen = plan(small, 3.0)
    coarse = chosen.settings.stages["coarse"]
    assert coarse.steps == MAX_PASSES * 900 // coarse.batch_size
    assert any(f"coarse stage capped at {MAX_PASSES} passes" in line for line in chosen.lines)
    with pytest.raises(UserError, match=r"0.3 h cannot train on 11.0 h of audio: .* Give --hours 0.\d or more"):
        plan(CORPUS, 0.3)
