import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from accompgen.apps.demo import shipped_bundle
from accompgen.apps.music_eval import (
    GAP_TOLERANCE,
    MusicEvalSettings,
    choose_sampling,
    pairing_scores,
    pick_sampling,
    read_clips,
)
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


def tried(*rows: tuple[float, float]) -> list[dict]:
    return [{"sampling": {"cfg_scale": float(i)}, "gap": g, "harmonic_share": h} for i, (g, h) in enumerate(rows)]


def test_of_the_settings_as_close_to_the_vocal_the_one_with_most_partials_is_chosen():
    assert pick_sampling(tried((0.34, 0.60), (0.33, 0.65), (0.35, 0.58))) == {"cfg_scale": 1.0}


def test_partials_do_not_buy_a_setting_that_follows_the_vocal_less():
    assert pick_sampling(tried((0.34, 0.60), (0.34 - 2 * GAP_TOLERANCE, 0.80))) == {"cfg_scale": 0.0}


@given(st.lists(st.tuples(st.floats(-1, 1), st.floats(0, 1)), min_size=1, max_size=8))
def test_the_choice_is_within_tolerance_of_the_best_gap_and_none_there_has_more_partials(rows):
    rows = tried(*rows)
    chosen = next(row for row in rows if row["sampling"] == pick_sampling(rows))
    best = max(row["gap"] for row in rows)
    assert chosen["gap"] >= best - GAP_TOLERANCE
    assert all(row["harmonic_share"] <= chosen["harmonic_share"] for row in rows if row["gap"] >= best - GAP_TOLERANCE)


def test_every_candidate_is_generated_and_scored_and_one_is_chosen(tmp_path):
    for i in range(4):
        write_song(tmp_path / f"song{i}", seconds=4.0, seed=i, rate=24000)
    candidates = [{"cfg_scale": 1.0, "top_k": 4}, {"cfg_scale": 3.0, "top_k": 8}]
    settings = MusicEvalSettings(songs=4, seconds=1.0, offset_s=0.5, permutations=100)
    chosen, scored = choose_sampling(shipped_bundle(), folder_songs(tmp_path), candidates, settings)
    assert [row["sampling"] for row in scored] == candidates and chosen in candidates
    assert all(0 <= row["harmonic_share"] <= 1 and -1 <= row["gap"] <= 1 for row in scored)
