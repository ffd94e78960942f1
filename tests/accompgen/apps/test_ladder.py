"""The evaluation ladder on the tiny random bundle: every rung rendered and scored alike (a smoke run: random
weights have nothing to show, so it asserts what each rung must be, not how good)."""

import json

import pytest
import soundfile as sf

from accompgen.apps.cli import main
from accompgen.apps.ladder import RUNGS
from accompgen.core.synth import sung_phrase
from tests.accompgen.conftest import write_song


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ladder-songs")
    for i in range(4):
        write_song(root / f"song{i}", seconds=4.5, seed=i, rate=24000)
    return root


@pytest.fixture(scope="module")
def tiny_codec_dir(tmp_path_factory, tiny_parts):
    """The codec the tiny bundle was exported with, saved as a run folder keeps it."""
    out = tmp_path_factory.mktemp("codec")
    tiny_parts.codec.model.save_pretrained(out)
    return out


@pytest.mark.slow
def test_every_rung_is_rendered_and_scored(tiny_bundle, tiny_codec_dir, songs, tmp_path, capsys):
    out = tmp_path / "ladder.json"
    args = ["eval-music", "--bundle", str(tiny_bundle), "--data", str(songs), "--songs", "4", "--seconds", "2"]
    ladder = ["--ladder", "--codec", str(tiny_codec_dir), "--first-codebooks", "2,1", "--out", str(out)]
    assert main([*args, *ladder]) == 0
    report = json.loads(out.read_text())
    assert list(report["rungs"]) == [*RUNGS, "B_1", "B_2", "E_1", "E_2"] and "not_measured" not in report
    real = report["rungs"]["A"]
    assert real["frechet_log_mel"] == pytest.approx(0.0, abs=1e-6)  # the real accompaniments against themselves
    for scores in report["rungs"].values():
        assert {"matched", "gap", "p_value", "harmonic_share", "flatness", "chord_movement"} <= set(scores)
        assert 0 <= scores["harmonic_share"] <= 1 and 0 <= scores["flatness"] <= 1
    printed = capsys.readouterr().out
    assert "B_coarse: codec round trip, coarse codebooks" in printed and "E_1: E's first 1 codebook(s)" in printed


@pytest.mark.slow
def test_without_the_codec_the_codec_rungs_are_named_as_not_measured(tiny_bundle, songs, tmp_path, capsys):
    out = tmp_path / "ladder.json"
    args = ["eval-music", "--bundle", str(tiny_bundle), "--data", str(songs), "--songs", "4", "--seconds", "2"]
    assert main([*args, "--ladder", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["rungs"]) == {"A", "E", "C", "D"}
    assert set(report["not_measured"]) == {"B", "B_coarse", "F"}
    assert "F not measured: needs the codec's encoder (--codec RUN/codec)" in capsys.readouterr().out


def test_too_few_songs_short_songs_and_songs_without_accompaniment_are_named(tiny_bundle, songs, tmp_path, capsys):
    data = tmp_path / "data"
    for i in range(2):
        write_song(data / f"ok{i}", seconds=4.5, seed=i, rate=24000)
    write_song(data / "short", seconds=1.0, seed=3, rate=24000)
    (data / "vocals-only").mkdir()
    sf.write(data / "vocals-only" / "vocals.wav", sung_phrase(3.0, 24000), 24000)
    args = ["eval-music", "--bundle", str(tiny_bundle), "--data", str(data), "--seconds", "2"]
    assert main([*args, "--ladder", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "only 2 usable song(s): eval-music needs at least 4" in err
    assert "short: shorter than 4 s" in err and "vocals-only" in err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("extra", [["--codec", "."], ["--first-codebooks", "1"]])
def test_ladder_options_without_the_ladder_are_refused(tiny_bundle, songs, extra, capsys):
    assert main(["eval-music", "--bundle", str(tiny_bundle), "--data", str(songs), *extra]) == 2
    assert "--codec and --first-codebooks serve the ladder's rungs: give --ladder too" in capsys.readouterr().err


@pytest.mark.parametrize("counts", ["0", "1,8"])
def test_first_codebooks_outside_the_bundles_are_refused(tiny_bundle, songs, tmp_path, counts, capsys):
    args = ["eval-music", "--bundle", str(tiny_bundle), "--data", str(songs), "--ladder", "--first-codebooks", counts]
    assert main([*args, "--out", str(tmp_path / "x.json")]) == 2
    assert "each must lie in 1..7, fewer than the bundle's 8" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_first_codebooks_must_be_numbers(capsys):
    with pytest.raises(SystemExit):
        main(["eval-music", "--bundle", ".", "--data", ".", "--ladder", "--first-codebooks", "1,two"])
    assert "give whole numbers separated by commas, e.g. 1,2; not '1,two'" in capsys.readouterr().err
