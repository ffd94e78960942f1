import pytest
import yaml

from accompgen.core.errors import UserError
from accompgen.model.config import ModelConfig, preset_names


def test_presets_are_listed_and_load():
    assert preset_names() == ["base", "chorales", "small", "tiny"]
    for name in preset_names():
        assert ModelConfig.load(name).name == name


def test_a_yaml_file_round_trips(tmp_path, tiny_config):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(tiny_config.to_dict()))
    assert ModelConfig.load(path) == tiny_config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\n", "missing key 'tokens'"),
        ("[1, 2", "not valid YAML"),
        ("- a\n- b\n", "YAML mapping"),
    ],
)
def test_bad_config_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        ModelConfig.load(path)


def test_a_bad_stage_value_names_the_problem(tiny_config):
    data = tiny_config.to_dict()
    data["stages"]["fine"]["n_heads"] = 3
    with pytest.raises(UserError, match="not divisible"):
        ModelConfig.from_dict(data)


def test_unknown_names_and_missing_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="use one of base, chorales, small, tiny"):
        ModelConfig.load("huge")
    with pytest.raises(UserError, match="does not exist"):
        ModelConfig.load(tmp_path / "absent.yaml")
