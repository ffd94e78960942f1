import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accompgen_bridge.errors import JobError
from accompgen_bridge.job_request import KEYS, GenerateRequest, parse_generate


def test_defaults_and_a_random_seed():
    request = parse_generate(["/a.wav", 1, 2.5])
    assert (request.input_path, request.start_s, request.duration_s) == ("/a.wav", 1.0, 2.5)
    assert request.variations == 1 and request.quality == "full" and request.cfg_scale is None
    assert 0 <= request.seed < 2**31


def test_every_key():
    request = parse_generate(
        [
            "/a.wav",
            0.0,
            1.0,
            "seed",
            4,
            "cfg_scale",
            2,
            "temperature",
            0.5,
            "top_k",
            50.0,
            "variations",
            3,
            "quality",
            "preview",
            "sample_rate",
            48000,
            "output_dir",
            "/tmp/o",
            "reply_port",
            9100,
            "bundle",
            "my choir",
        ]
    )
    assert json.loads(request.to_json()) == {
        "input_path": "/a.wav",
        "start_s": 0.0,
        "duration_s": 1.0,
        "seed": 4,
        "cfg_scale": 2.0,
        "temperature": 0.5,
        "top_k": 50,
        "variations": 3,
        "quality": "preview",
        "sample_rate": 48000,
        "output_dir": "/tmp/o",
        "reply_port": 9100,
        "bundle": "my choir",
        "local": False,  # set by the dispatcher alone, for a request that carries the bridge's local key
    }


@given(st.lists(st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.binary()), max_size=10))
def test_any_arguments_parse_or_fail_with_bad_argument(args):
    try:
        request = parse_generate(args)
    except JobError as err:
        assert err.code == "bad_argument" and str(err)
    else:
        assert isinstance(request.input_path, str) and request.input_path
        assert GenerateRequest.from_json(request.to_json()) == request  # the store gets back what it put in


@given(st.sampled_from(sorted(KEYS)), st.one_of(st.text(max_size=5), st.floats(), st.integers(), st.booleans()))
def test_each_key_checks_its_value(key, value):
    try:
        request = parse_generate(["/a.wav", 0, 1, key, value])
    except JobError as err:
        assert err.code == "bad_argument" and key in str(err)
    else:
        assert getattr(request, key) == value or float(getattr(request, key)) == float(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_numbers_must_be_finite(value):
    with pytest.raises(JobError, match="finite"):
        parse_generate(["/a.wav", value, 1.0])


def test_an_osc_array_is_no_key():
    with pytest.raises(JobError, match="unknown key") as err:
        parse_generate(["/a.wav", 0, 1, ["seed"], 3])
    assert err.value.code == "bad_argument"


def test_a_huge_path_is_refused_and_not_echoed_whole():
    path = "/" + "x" * 60_000 + ".wav"
    with pytest.raises(JobError) as err:
        parse_generate([path, 0, 1])
    assert err.value.code == "bad_argument" and len(str(err.value)) < 400
