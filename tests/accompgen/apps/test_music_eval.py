import numpy as np

from accompgen.apps.music_eval import MusicEvalSettings, pairing_scores, read_clips
from accompgen.data.stems import folder_songs
from tests.accompgen.conftest import write_song
from tests.accompgen.core.test_music import RATE, tones

ROOTS = [48, 50, 52, 53, 55, 57, 59, 49]  # eight keys


def test_accompaniments_in_the_vocals_keys_beat_the_cross_pairing():
    vocals = [tones([root + 24], 1.0) for root in ROOTS]
    accompaniments = [tones([root, root + 4, root + 7], 1.0) for root in ROOTS]
    scores = pairing_scores(vocals, accompaniments, RATE, permutations=2000)
    assert scores["matched"] > 0.5
    assert scores["gap"] > 0.3
    assert scores["p_value"] < 0.01


def test_accompaniments_that_ignore_the_vocal_show_no_gap():
    vocals = [tones([root + 24], 1.0) for root in ROOTS]
    same = tones([48, 52, 55], 1.0)
    scores = pairing_scores(vocals, [same] * len(vocals), RATE, permutations=2000)
    assert abs(scores["gap"]) < 1e-9
    assert scores["p_value"] > 0.5


def test_noise_scores_low_and_evenly():
    rng = np.random.default_rng(0)
    vocals = [tones([root + 24], 1.0) for root in ROOTS]
    noise = [rng.standard_normal(RATE).astype(np.float32) for _ in ROOTS]
    scores = pairing_scores(vocals, noise, RATE, permutations=500)
    assert scores["matched"] < 0.4 and abs(scores["gap"]) < 0.1


def test_songs_at_other_rates_are_scored_at_the_first_ones(tmp_path):
    for i, rate in enumerate((24000, 16000, 44100, 24000)):
        write_song(tmp_path / f"song{i}", seconds=6.0, seed=i, rate=rate)
    clips, skipped = read_clips(folder_songs(tmp_path), MusicEvalSettings(songs=4, seconds=3.0))
    assert not skipped and {clip.sample_rate for clip in clips} == {24000}
    assert {len(clip.vocal) for clip in clips} == {len(clip.accompaniment) for clip in clips} == {3 * 24000}
