"""The chorale recipe, for real, at its quick size: rendered scores to an evaluated bundle."""

import dataclasses
import json

import numpy as np
import pytest

from accompgen.apps.cli import main
from accompgen.apps.recipe import FIRST_STEP_USING, QUICK, Recipe, RecipeSettings, Step, gap_ratio
from accompgen.core.errors import UserError
from accompgen.model.config import ModelConfig

pytest.importorskip("music21")
pytest.importorskip("tinysoundfont")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe") / "run"
    assert main(["recipe", "chorales", "--out", str(out), "--quick"]) == 0
    return out


@pytest.mark.slow
def test_every_stage_learns_its_token_streams(quick_run):
    """Held-out loss of every stage below a uniform guess over its target stream. Whether a stage also uses its
    condition is asserted on a learnable synthetic mapping (tests/accompgen/evaluation/test_token_metrics.py), not
    here: at the quick sizes (8 chorales, tokenizers trained for seconds) the tokens leave a stage too little to use,
    and the held-out true- and shuffled-condition losses were measured within a few per cent of each other, the sign
    varying with seed and machine (semantic stage -3.6 % to +3.5 % over eleven runs of this recipe and variants of
    it). The pitch the quick semantic tokens carry varies as much: their pitch-class accuracy ranged from 0.10 to 0.41
    (chance 0.11) over encoder seeds 0-2 and was 0.17 and 0.24 for seed 0 on two machines; the measure itself is
    tested in tests/accompgen/evaluation/test_semantic_tokens.py, and the full recipe reports it (0.89)."""
    report = json.loads((quick_run / "evaluation.json").read_text())
    layout = ModelConfig.load(quick_run / "model" / "config.yaml").tokens
    uniform = {"semantic": layout.semantic_clusters, "coarse": layout.codebook_size, "fine": layout.codebook_size}
    for stage, size in uniform.items():
        assert report["tokens"][stage]["true"]["loss"] < np.log(size), (stage, report["tokens"][stage])
        assert {"loss", "accuracy"} <= set(report["tokens"][stage]["shuffled"])


@pytest.mark.slow
def test_the_run_leaves_verified_bundles_and_a_full_report(quick_run):
    report = json.loads((quick_run / "evaluation.json").read_text())
    assert {"trained", "trained_int8", "random_init", "real"} <= set(report["music"])
    assert set(report["ladder"]["rungs"]) == {"A", "B", "B_coarse", "E", "F", "C", "D"}
    unseen = report["unseen_voice"]
    assert {"trained_int8", "real", "gap_ratio"} <= set(unseen) and unseen["songs"] == report["music"]["songs"]
    for bundle in ("bundle", "bundle-int8"):
        checks = json.loads((quick_run / bundle / "verify.json").read_text())
        assert all(check["passed"] for check in checks), checks
        assert (quick_run / bundle / "demo_vocal.flac").is_file()
    assert set(report["codec"]["per_codebooks"]) == {"2", "4", "8"}
    assert {"chroma_correlation", "harmonic_share", "flatness"} <= set(report["codec"]["per_codebooks"]["4"])
    assert set(report["codec"]["original"]) == {"harmonic_share", "flatness"}
    assert 0 <= report["semantic_tokens"]["accuracy"] <= 1
    assert set(report["semantic_tokens"]["chord_movement"]) == {"tokens", "accompaniment"}


@pytest.mark.slow
def test_a_second_run_skips_every_finished_step(quick_run, capsys):
    before = json.loads((quick_run / "recipe.json").read_text())
    assert main(["recipe", "chorales", "--out", str(quick_run), "--quick"]) == 0
    assert json.loads((quick_run / "recipe.json").read_text()) == before
    assert capsys.readouterr().err.count("done earlier") == len(before["steps"])


def test_the_unseen_voice_gap_is_a_share_of_the_seen_one_once_that_is_positive():
    assert gap_ratio({"gap": 0.1}, {"gap": 0.2}) == pytest.approx(0.5)
    assert gap_ratio({"gap": 0.1}, {"gap": 0.0}) is None


def test_an_interrupted_step_keeps_its_time_and_runs_again(tmp_path):
    recipe = Recipe(tmp_path, QUICK, "quick")
    calls = []

    def interrupted(report):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt

    step = Step("render", "render", interrupted, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        recipe.run_step(step, lambda *_: None)
    assert not Recipe(tmp_path, QUICK, "quick").is_done(step)
    recipe.run_step(step, lambda *_: None)
    reloaded = Recipe(tmp_path, QUICK, "quick")
    assert reloaded.is_done(step) and len(calls) == 2


def test_a_run_folder_of_other_settings_is_refused(tmp_path):
    recipe = Recipe(tmp_path, QUICK, "quick")
    recipe.run_step(Step("render", "render", lambda report: None, tmp_path), lambda *_: None)
    with pytest.raises(UserError, match="other settings"):
        Recipe(tmp_path, QUICK, "full")


def test_a_run_folder_of_another_codec_names_the_steps_that_would_run_again(tmp_path):
    """Tokens of two codecs must never mix: a changed codec refuses the folder and names every step from the codec
    on, and nothing in the folder changes."""
    recipe = Recipe(tmp_path, QUICK, "quick")
    recipe.run_step(Step("render", "render", lambda report: None, tmp_path), lambda *_: None)
    before = (tmp_path / "recipe.json").read_text()
    other_codec = dataclasses.replace(QUICK, codec=dataclasses.replace(QUICK.codec, steps=QUICK.codec.steps + 1))
    with pytest.raises(UserError, match=r"\(codec\): with these, steps codec, semantic-encoder, kmeans, prepare"):
        Recipe(tmp_path, other_codec, "quick")
    other_music = dataclasses.replace(QUICK, tune_songs=QUICK.tune_songs + 1)
    with pytest.raises(UserError, match=r"\(tune_songs\): with these, steps sampling, verify, evaluate would"):
        Recipe(tmp_path, other_music, "quick")
    assert (tmp_path / "recipe.json").read_text() == before


def test_every_setting_names_the_first_step_it_shapes(tmp_path):
    assert set(FIRST_STEP_USING) == {field.name for field in dataclasses.fields(RecipeSettings)}
    assert set(FIRST_STEP_USING.values()) <= {step.name for step in Recipe(tmp_path, QUICK, "quick").steps()}
