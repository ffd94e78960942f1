"""The chorale recipe, for real, at its quick size: rendered scores to an evaluated bundle."""

import json

import pytest

from accompgen.apps.cli import main
from accompgen.apps.recipe import QUICK, Recipe, Step
from accompgen.core.errors import UserError

pytest.importorskip("music21")
pytest.importorskip("tinysoundfont")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe") / "run"
    assert main(["recipe", "chorales", "--out", str(out), "--quick"]) == 0
    return out


@pytest.mark.slow
def test_every_stage_learns_from_its_condition(quick_run):
    """Held-out windows: each stage predicts its targets better from their own condition than from another
    clip's. At the quick sizes the margins are small (measured: semantic 2 %, coarse 0.7-1.6 %, fine 3-4 %; the
    tokenizers had seconds of training) but above float noise: 32 batches of held-out windows, seeded runs."""
    tokens = json.loads((quick_run / "evaluation.json").read_text())["tokens"]
    for stage in ("semantic", "coarse", "fine"):
        assert tokens[stage]["true"]["loss"] < tokens[stage]["shuffled"]["loss"], (stage, tokens[stage])
    report = json.loads((quick_run / "evaluation.json").read_text())
    assert report["semantic_tokens"]["accuracy"] > report["semantic_tokens"]["chance"]  # the tokens hear pitch


@pytest.mark.slow
def test_the_run_leaves_verified_bundles_and_a_full_report(quick_run):
    report = json.loads((quick_run / "evaluation.json").read_text())
    assert {"trained", "trained_int8", "random_init", "real"} <= set(report["music"])
    for bundle in ("bundle", "bundle-int8"):
        checks = json.loads((quick_run / bundle / "verify.json").read_text())
        assert all(check["passed"] for check in checks), checks
        assert (quick_run / bundle / "demo_vocal.flac").is_file()
    assert set(report["codec"]["per_codebooks"]) == {"2", "4", "8"}
    assert 0 <= report["semantic_tokens"]["accuracy"] <= 1


@pytest.mark.slow
def test_a_second_run_skips_every_finished_step(quick_run, capsys):
    before = json.loads((quick_run / "recipe.json").read_text())
    assert main(["recipe", "chorales", "--out", str(quick_run), "--quick"]) == 0
    assert json.loads((quick_run / "recipe.json").read_text()) == before
    assert capsys.readouterr().err.count("done earlier") == len(before["steps"])


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
