"""Retention: the bridge deletes only its own old WAVs in its outputs folder."""

import os
import time

from accompgen_bridge.outputs import remove_old_outputs


def test_only_the_bridges_own_old_wavs_are_removed(tmp_path):
    old, recent = tmp_path / "take-accomp-1.wav", tmp_path / "take-accomp-2.wav"
    users = [tmp_path / "take.wav", tmp_path / "notes-accomp.txt", tmp_path / "mix-accomp.wav"]
    for path in (old, recent, *users):
        path.write_bytes(b"RIFF")
    ten_days_ago = time.time() - 10 * 86400
    for path in (old, *users):
        os.utime(path, (ten_days_ago, ten_days_ago))
    assert remove_old_outputs(tmp_path, keep_days=7) == 1
    assert not old.exists() and recent.exists() and all(path.exists() for path in users)


def test_a_missing_folder_is_nothing_to_clean(tmp_path):
    assert remove_old_outputs(tmp_path / "never-made", keep_days=7) == 0
