"""`--set KEY=VALUE` on the recipe's settings: real settings, typed values, one clear message for every mistake."""

import contextlib
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accompgen.apps.cli import main
from accompgen.apps.recipe import FULL
from accompgen.apps.settings_override import override
from accompgen.core.errors import UserError


def test_a_nested_field_changes_and_nothing_else():
    changed = override(FULL, "codec.semantic_weight=1")
    assert changed.codec.semantic_weight == 1.0 and isinstance(changed.codec.semantic_weight, float)
    assert changed == dataclasses.replace(FULL, codec=dataclasses.replace(FULL.codec, semantic_weight=1.0))


def test_a_stage_inside_the_dict_of_stages_changes_alone():
    changed = override(FULL, "stages.coarse.steps=2500")
    assert changed.stages["coarse"].steps == 2500
    assert {k: v for k, v in changed.stages.items() if k != "coarse"} == {
        k: v for k, v in FULL.stages.items() if k != "coarse"
    }


def test_lists_become_tuples_and_null_clears_an_optional_setting():
    assert override(FULL, "corpus.training_vocals=[52, 53]").corpus.training_vocals == (52, 53)
    assert override(override(FULL, "corpus.limit=3"), "corpus.limit=null").corpus.limit is None


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("codec.semantic_weight", "takes KEY=VALUE"),
        ("=1", "takes KEY=VALUE"),
        ("codec.nope=1", "no 'nope' here; choose one of steps, batch_size"),
        ("stages.middle.steps=1", "no 'middle' here; choose one of semantic, coarse, fine"),
        ("codec.steps=1.5", "1.5 is not a int like 3000"),
        ("codec.steps.more=1", "inside a plain value"),
        ("codec=3", "a group of settings"),
        ("stages.coarse.attention=fast", "attention must be one of auto, blocked, sdpa"),
        ("codec.steps=[1", "is not a value"),
    ],
)
def test_every_mistake_gets_one_message_naming_it(assignment, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        override(FULL, assignment)


KEYS = st.sampled_from(["codec.steps", "codec.semantic_weight", "stages.coarse.lr", "corpus.limit", "config", "x.y"])


@given(st.one_of(st.text(max_size=40), st.builds("{}={}".format, KEYS, st.text(max_size=20))))
def test_any_text_gives_settings_or_a_user_error(assignment):
    with contextlib.suppress(UserError):
        override(FULL, assignment)


def test_the_recipe_command_refuses_a_bad_setting_before_it_starts(tmp_path, capsys):
    assert main(["recipe", "chorales", "--out", str(tmp_path / "run"), "--set", "codec.nope=1"]) == 2
    assert "no 'nope' here" in capsys.readouterr().err and not (tmp_path / "run").exists()
