import json
import shutil

import numpy as np

from accompgen.apps.cli import main

from ..conftest import write_song


def run_prepare(model_dir, stems, out, *extra):
    return main(["prepare", "--model-dir", str(model_dir), "--data", str(stems), "--out", str(out), *extra])


def test_stems_become_shards_and_bad_songs_are_reported(model_dir, stems, tmp_path, capsys):
    out = tmp_path / "tokens"
    assert run_prepare(model_dir, stems, out) == 0
    index = json.loads((out / "index.json").read_text())
    assert sorted(index["songs"]) == ["song0", "song1", "song2"]
    assert "neither accompaniment.wav nor other stems" in index["skipped"]["no-accompaniment"]
    assert "skipped 1 song(s)" in capsys.readouterr().err
    shard = np.load(out / "shards" / index["songs"]["song0"]["shard"])
    clips = index["songs"]["song0"]["clips"]  # 6 s songs, 2 s clips every 1 s
    assert clips == 5
    assert shard["vocal_semantic"].shape == (clips, 100) and shard["inst_semantic"].shape == (clips, 100)
    assert shard["codes"].shape == (clips, 8, 150)
    assert shard["vocal_semantic"].max() < 16 and shard["codes"].max() < 32


def test_a_second_run_skips_finished_songs(model_dir, stems, tmp_path, capsys):
    out = tmp_path / "tokens"
    run_prepare(model_dir, stems, out)
    shards = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    write_song(stems.parent / "more" / "song3", seed=3)
    capsys.readouterr()
    assert run_prepare(model_dir, stems.parent / "more", out) == 0
    assert "1 song(s) prepared" in capsys.readouterr().out
    assert run_prepare(model_dir, stems, out) == 0
    assert "3 already done" in capsys.readouterr().out
    assert all((out / "shards" / name).stat().st_mtime_ns == t for name, t in shards.items())


def test_tokens_of_another_setting_are_not_mixed(model_dir, stems, tmp_path, capsys):
    out = tmp_path / "tokens"
    run_prepare(model_dir, stems, out)
    assert run_prepare(model_dir, stems, out, "--clip-seconds", "1.0") == 2
    assert "prepared with another clips" in capsys.readouterr().err


def test_tokens_of_another_codec_with_the_same_centroids_are_not_mixed(model_dir, stems, tmp_path, capsys):
    """A model directory pointed at another codec (or HuBERT) keeps its k-means centroids: the tokens still differ."""
    import yaml

    from accompgen.model.config import ModelConfig
    from accompgen.tokenizers.codec import random_codec

    out = tmp_path / "tokens"
    run_prepare(model_dir, stems, out)
    other = tmp_path / "model"
    shutil.copytree(model_dir, other)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["tokenizer"]["encodec"] = str(tmp_path / "other-encodec")
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    random_codec(ModelConfig.load(other / "config.yaml").tokens, tiny=True, seed=1).model.save_pretrained(
        tmp_path / "other-encodec"
    )
    capsys.readouterr()
    assert run_prepare(other, stems, out) == 2
    assert "prepared with another tokenizer" in capsys.readouterr().err


def test_tokens_of_an_earlier_version_that_named_no_tokenizer_are_not_mixed(model_dir, stems, tmp_path, capsys):
    out = tmp_path / "tokens"
    run_prepare(model_dir, stems, out)
    index = json.loads((out / "index.json").read_text())
    del index["tokenizer_sha256"]
    (out / "index.json").write_text(json.dumps(index))
    capsys.readouterr()
    assert run_prepare(model_dir, stems, out) == 2
    assert "prepared by an earlier version" in capsys.readouterr().err
