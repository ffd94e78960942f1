"""TrainSettings on the command line: every field an option of `accompgen train`, and a settings object given whole."""

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from accompgen.apps.cli import build_parser
from accompgen.train.train_settings import ATTENTIONS, PRECISIONS, TrainSettings, option_words, settings_from

settings = st.builds(
    TrainSettings,
    steps=st.integers(1, 10**6),
    batch_size=st.integers(1, 512),
    lr=st.floats(1e-7, 1.0),
    min_lr_ratio=st.floats(0.0, 1.0),
    cond_dropout=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
    precision=st.sampled_from(PRECISIONS),
    attention=st.sampled_from(ATTENTIONS),
    compile=st.booleans(),
)


def train_args(words):
    return build_parser().parse_args(["train", "--stage", "fine", "--model-dir", "m", "--data", "d", *words])


@given(settings)
def test_the_words_of_a_settings_object_give_it_back_whole(chosen):
    assert settings_from(train_args(option_words(chosen))) == chosen


def test_every_field_is_an_option_and_an_option_left_out_keeps_the_default():
    assert settings_from(train_args([])) == TrainSettings()
    words = option_words(TrainSettings())
    names = ["--" + field.name.replace("_", "-") for field in dataclasses.fields(TrainSettings)]
    assert [word for word in words if word.startswith("--")] == names
