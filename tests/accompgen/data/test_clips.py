import numpy as np
import pytest

from accompgen.core.errors import UserError
from accompgen.data.clips import ClipSettings, audible_clips, held_out_songs, noisy_vocals, rms_db, song_splits
from accompgen.data.stems import Song


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


def test_about_one_song_in_ten_is_held_out_at_least_four_and_never_the_validation_songs_alone():
    names = [f"song{i}" for i in range(400)]
    held = held_out_songs(names)
    assert 25 <= len(held) <= 60 and held == [name for name in names if name in held]
    assert set(held) <= set(held_out_songs([*names, "new song"]))  # adding a song moves none
    validation = {name for name, split in song_splits(names, 20).items() if split == "val"}
    assert validation - set(held)  # the stages keep validation songs of their own
    assert len(held_out_songs(names[:12])) == 4 and len(held_out_songs(names[:5])) == 2
