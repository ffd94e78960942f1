import itertools

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from accompgen.core.errors import UserError
from accompgen.data.stems import SongError, folder_songs, load_song_folder, spread_over


def write(path, seconds=1.0, rate=44100, amplitude=0.3, freq=220.0):
    t = np.arange(round(seconds * rate)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, amplitude * np.sin(2 * np.pi * freq * t), rate)


def test_other_stems_are_summed_and_mixture_ignored(tmp_path):
    song = tmp_path / "a"
    write(song / "vocals.wav")
    write(song / "drums.wav", amplitude=0.1)
    write(song / "bass.flac", amplitude=0.2)
    write(song / "mixture.wav", amplitude=0.9)
    loaded = load_song_folder(song)
    assert loaded.sample_rate == 44100 and len(loaded.vocals) == 44100
    assert np.abs(loaded.accompaniment).max() == pytest.approx(0.3, abs=1e-3)


def test_an_accompaniment_file_is_used_as_is(tmp_path):
    song = tmp_path / "a"
    write(song / "vocals.wav")
    write(song / "accompaniment.wav", amplitude=0.25)
    write(song / "drums.wav", amplitude=0.5)
    assert np.abs(load_song_folder(song).accompaniment).max() == pytest.approx(0.25, abs=1e-3)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"drums.wav": {}}, "has no vocals file"),
        ({"vocals.wav": {}}, "neither accompaniment.wav nor other stems"),
        ({"vocals.wav": {}, "drums.wav": {"rate": 48000}}, "drums.wav is at 48000 Hz but vocals.wav at 44100 Hz"),
        ({"vocals.wav": {}, "drums.wav": {"seconds": 2.0}}, "drums.wav lasts 2.00 s but vocals.wav 1.00 s"),
        ({"vocals.wav": {"amplitude": 0.0}, "drums.wav": {}}, "the vocals are silent"),
    ],
)
def test_bad_songs_name_the_file_and_the_problem(tmp_path, files, message):
    song = tmp_path / "bad"
    for name, options in files.items():
        write(song / name, **options)
    with pytest.raises(SongError, match=message):
        load_song_folder(song)


def test_unreadable_audio(tmp_path):
    song = tmp_path / "bad"
    write(song / "drums.wav")
    (song / "vocals.wav").write_bytes(b"RIFF not really")
    with pytest.raises(SongError, match=r"vocals\.wav is not readable audio"):
        load_song_folder(song)


def test_song_folders_are_found_recursively(tmp_path):
    for name in ("x/one", "x/two", "three"):
        write(tmp_path / name / "vocals.wav")
        write(tmp_path / name / "other.wav")
    (tmp_path / "notes").mkdir()
    assert [s.name for s in folder_songs(tmp_path)] == ["three", "x/one", "x/two"]
    with pytest.raises(UserError, match="no song folders"):
        folder_songs(tmp_path / "notes")


@given(st.integers(0, 300), st.integers(1, 50))
def test_a_spread_takes_up_to_count_songs_in_order_from_the_first_over_the_whole_list(n, count):
    songs = list(range(n))  # stand-ins: only the order matters
    picked = spread_over(songs, count)
    assert len(picked) == min(n, count)
    assert picked == sorted(set(picked)) and picked[:1] == songs[:1]
    assert len({b - a for a, b in itertools.pairwise(picked)}) <= 1  # evenly spaced
    if count >= 2 and n >= 2 * count:  # enough songs to skip some: the picks reach past the first half
        assert picked[-1] >= n // 2 - 1
