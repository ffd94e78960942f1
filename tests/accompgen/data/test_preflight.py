"""Preflight on a corpus made for it: every listed problem in a song of its own, each caught and named."""

import numpy as np
import pytest
import soundfile as sf

from accompgen.apps.cli import main
from accompgen.core.synth import sung_phrase
from accompgen.data.clips import ClipSettings
from accompgen.data.preflight import CorpusMinimum, bleed_share, preflight
from accompgen.data.stems import folder_songs

RATE = 24000
CLIPS = ClipSettings(clip_s=2.0, hop_s=1.0)
SMALL = CorpusMinimum(test_songs=4, train_songs=8, train_minutes=1.0)


def write(
    folder, seed, seconds=8.0, rate=RATE, bleed=0.0, gain=1.0, vocal_gain=1.0, channels=1, suffix="wav", chord=None
):
    """A sung phrase over a chord (by default the seed's) whose loudness changes every second, as a song's does."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    vocals = vocal_gain * sung_phrase(seconds, rate, seed=seed)
    level = np.repeat(rng.uniform(0.05, 0.4, int(seconds) + 1), rate)[: len(t)]
    root = (seed if chord is None else chord) % 5
    tones = sum(np.sin(2 * np.pi * f * t) for f in 110 * 2 ** (np.array([0, 4, 7]) / 12 + root / 12))
    accompaniment = np.clip(gain * level * tones / 3 + bleed * vocals, -1, 1)
    folder.mkdir(parents=True)
    for name, audio in (("vocals", vocals), ("accompaniment", accompaniment)):
        sf.write(folder / f"{name}.{suffix}", np.stack([audio] * channels, axis=1), rate)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("preflight")
    for seed in range(8):
        write(root / "train" / f"good{seed}", seed)
    write(root / "train" / "clipped", 20, gain=8.0)
    write(root / "train" / "mixdown", 21, bleed=1.0)
    write(root / "train" / "lofi", 22, rate=16000)
    write(root / "train" / "stereo", 23, channels=2)
    write(root / "train" / "whispered", 24, vocal_gain=1e-3)
    (root / "train" / "broken").mkdir()
    (root / "train" / "broken" / "vocals.wav").write_bytes(b"RIFF but not audio")
    (root / "train" / "broken" / "accompaniment.wav").write_bytes(b"RIFF but not audio")
    for seed in range(30, 33):
        write(root / "test" / f"held{seed}", seed)
    write(root / "test" / "good3 again", 3, suffix="flac")  # the same song, encoded again
    write(root / "test" / "good5 in another key", 5, chord=7)  # the same loudness, other notes: another song
    return root


@pytest.fixture(scope="module")
def report(corpus):
    return preflight(folder_songs(corpus / "train"), folder_songs(corpus / "test"), CLIPS, minimum=SMALL)


def problems(report, name):
    (song,) = [song for song in report.songs if song.name == name]
    return song.unusable or " | ".join(song.problems)


def test_good_songs_are_counted_and_have_no_problems(report):
    assert [s.name for s in report.usable("train") if not s.problems][:8] == [f"good{i}" for i in range(8)]
    good = report.usable("train")[0]
    assert good.seconds == pytest.approx(8.0) and good.clips == 7 and good.sample_rate == RATE
    assert len(report.usable("test")) == 5 and report.refusal is None


@pytest.mark.parametrize(
    ("song", "words"),
    [
        ("clipped", "the accompaniment clip"),
        ("mixdown", "the accompaniment holds the vocal"),
        ("lofi", "recorded at 16000 Hz, below the codec's 24000 Hz"),
        ("whispered", "no 2 s stretch of the vocals is louder than -40 dBFS"),
        ("broken", "is not readable audio"),
    ],
)
def test_each_problem_is_named_by_song_with_what_to_do(report, song, words):
    assert words in problems(report, song)


def test_the_unusable_are_left_out_and_the_rest_kept(report):
    assert {s.name for s in report.songs if not s.usable} == {"whispered", "broken"}
    assert problems(report, "stereo") == ""


def test_a_held_out_song_that_is_a_training_song_is_named(report):
    assert [(train, test) for train, test, *_ in report.duplicates] == [("good3", "good3 again")]


def test_mixed_rates_and_channel_layouts_are_noted(report):
    assert any("sample rates differ (16000 Hz, 24000 Hz)" in note for note in report.notes)
    assert any("mono and stereo files are mixed" in note for note in report.notes)


def test_independent_parts_share_nothing_and_a_late_copy_is_still_bleed():
    rng = np.random.default_rng(0)
    vocals, other = rng.standard_normal(RATE), rng.standard_normal(RATE)
    assert bleed_share(vocals, other, RATE) < 0.01
    late = np.concatenate([np.zeros(100), vocals[:-100]])  # 4 ms late
    assert bleed_share(vocals, 0.5 * late + 0.5 * other, RATE) == pytest.approx(0.5, abs=0.05)


def test_too_small_a_corpus_is_refused_naming_the_minimum(corpus):
    report = preflight(folder_songs(corpus / "train"), folder_songs(corpus / "test"), CLIPS, minimum=CorpusMinimum())
    assert "12 usable song(s), 1.6 minutes to train on: at least 8 songs and 20 minutes are needed" in report.refusal
    few = preflight(folder_songs(corpus / "train"), folder_songs(corpus / "test")[:2], CLIPS, minimum=SMALL)
    assert "only 2 usable held-out song(s): the evaluation needs at least 4" in few.refusal


def test_without_a_test_folder_the_recipes_own_split_is_checked(corpus):
    report = preflight(folder_songs(corpus / "train"), None, CLIPS, minimum=SMALL)
    held = {s.name for s in report.songs if s.split == "test"}
    assert held and held < {s.name for s in report.songs}


def test_the_command_prints_the_problems_and_refuses_a_small_corpus(corpus, capsys):
    args = ["preflight", "--data", str(corpus / "train"), "--test", str(corpus / "test"), "--clip-seconds", "2"]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert "12 song(s) to train on: 1.6 minutes" in out and "mixdown: the accompaniment holds the vocal" in out
    assert "good3 (train) and good3 again (held out)" in out and "2 song(s) left out" in out
    assert "error: too little to train on: 12 usable song(s)" in err


def test_a_folder_of_loose_files_is_named_for_what_it_is(tmp_path, capsys):
    sf.write(tmp_path / "take1.wav", np.zeros(RATE), RATE)
    assert main(["preflight", "--data", str(tmp_path)]) == 2
    assert "holds 1 audio file(s) but no song folder: give each song a folder of its own" in capsys.readouterr().err
