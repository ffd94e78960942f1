import json

import numpy as np
import pytest

from accompgen.apps.cli import main
from accompgen.core.errors import UserError
from accompgen.data.prepare import ClipSettings, audible_clips, noisy_vocals, rms_db, song_splits
from accompgen.data.stems import Song

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


def test_silent_vocal_clips_are_dropped_and_vocals_get_noise():
    rate = 1000
    vocals = np.concatenate([np.zeros(2000), 0.5 * np.sin(np.arange(2000) / 3)]).astype(np.float32)
    song = Song("s", vocals, np.ones(4000, np.float32), rate)
    settings = ClipSettings(clip_s=1.0, hop_s=1.0, vocal_noise_snr_db=20.0)
    starts = audible_clips(song, settings)
    assert starts == [2000, 3000]
    noisy = noisy_vocals(song, starts, settings, np.random.default_rng(0))
    assert rms_db(noisy - vocals) == pytest.approx(rms_db(vocals[2000:]) - 20.0, abs=0.5)


def test_clip_lengths_off_the_frame_grid_are_refused():
    with pytest.raises(UserError, match=r"multiple of 0\.04"):
        ClipSettings(clip_s=1.01, hop_s=0.5)


def test_splits_hold_out_about_one_song_in_twenty_and_never_none():
    names = [f"song{i}" for i in range(400)]
    splits = song_splits(names, 20)
    held_out = [name for name, split in splits.items() if split == "val"]
    assert 10 <= len(held_out) <= 35
    assert all(song_splits([*names, "new song"], 20)[name] == "val" for name in held_out)  # adding moves none
    assert sorted(song_splits(["a", "b"], 20).values()) == ["train", "val"]
