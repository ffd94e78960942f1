"""The chorale corpus from music21's real scores, rendered with the real soundfont."""

import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from accompgen.data.chorales import (
    ADDITIVE_SINGER,
    BPM_RANGE,
    HOLDOUT_EVERY,
    TRAINING_VOCALS,
    TRANSPOSE_RANGE,
    VOCAL_PATCHES,
    CorpusSettings,
    Rendition,
    SoundfontRenderer,
    chorale_paths,
    default_soundfont,
    random_renditions,
    read_chorale,
    render_chorale,
    write_corpus,
    write_song,
)
from accompgen.data.stems import SongError, folder_songs
from accompgen.data.vocal_chain import VocalChain

pytest.importorskip("music21")
pytest.importorskip("tinysoundfont")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    write_corpus(out, CorpusSettings(renditions=2, limit=2))
    return out


def test_every_tenth_chorale_is_held_out_and_rendered_once(corpus):
    paths = chorale_paths()
    held_out = {p.name.removesuffix(p.suffix) for i, p in enumerate(paths) if i % HOLDOUT_EVERY == 0}
    test_songs = {p.name for p in (corpus / "test").iterdir()}
    train_songs = {p.name for p in (corpus / "train").iterdir()}
    assert test_songs and test_songs <= held_out
    assert not {name.rsplit("-r", 1)[0] for name in train_songs} & held_out
    assert all(name.endswith(("-r0", "-r1")) for name in train_songs)


def test_songs_are_folders_prepare_reads(corpus):
    songs = folder_songs(corpus / "train")
    song = songs[0].load()
    assert song.sample_rate == 24000
    assert len(song.vocals) == len(song.accompaniment) > 10 * song.sample_rate
    assert np.sqrt(np.mean(song.vocals**2)) > 0.01 and np.sqrt(np.mean(song.accompaniment**2)) > 0.01


def test_a_second_run_keeps_what_is_there(corpus):
    before = {p: p.stat().st_mtime_ns for p in corpus.rglob("*.flac")}
    report = write_corpus(corpus, CorpusSettings(renditions=2, limit=2))
    assert not report.written and len(report.reused) == 4
    assert before == {p: p.stat().st_mtime_ns for p in corpus.rglob("*.flac")}


def test_renditions_are_drawn_from_the_name_and_stay_in_range():
    assert random_renditions("bwv1.6", 3) == random_renditions("bwv1.6", 3)
    assert random_renditions("bwv1.6", 3) != random_renditions("bwv10.7", 3)


def test_held_out_songs_keep_the_rendition_every_published_score_was_measured_on():
    assert random_renditions("bwv1.6", 1) == [Rendition(-4, 78.0, 52, 49, 97, vocal_chain=None)]


@given(st.text(min_size=1, max_size=20), st.integers(min_value=1, max_value=4))
def test_rendition_settings_lie_in_their_ranges(name, count):
    for rendition in random_renditions(name, count):
        assert -TRANSPOSE_RANGE <= rendition.transpose <= TRANSPOSE_RANGE
        assert BPM_RANGE[0] <= rendition.bpm <= BPM_RANGE[1]
        assert rendition.vocal_patch in VOCAL_PATCHES and rendition.vocal_chain is None
    for rendition in random_renditions(name, count, TRAINING_VOCALS, chained=True):
        assert rendition.vocal_patch in TRAINING_VOCALS and rendition.vocal_chain is not None


def test_a_score_that_does_not_parse_is_a_song_error(tmp_path):
    bad = tmp_path / "broken.mxl"
    bad.write_bytes(b"not a score")
    with pytest.raises(SongError, match=r"broken\.mxl"):
        read_chorale(bad, 3)


def test_a_score_without_four_voices_is_skipped_with_the_parts_it_has(tmp_path):
    from music21 import note, stream

    score = stream.Score([stream.Part([note.Note("C4")], id="Violin")])
    score.parts[0].partName = "Violin"
    path = tmp_path / "solo.musicxml"
    score.write("musicxml", fp=str(path))
    with pytest.raises(SongError, match=r"no Soprano, Alto, Tenor, Bass part .*Violin"):
        read_chorale(path, 1)


def test_the_render_follows_the_score(corpus):
    """The soprano's loudest pitch class in the first seconds is the first note's, transposed."""
    from accompgen.core.music import chroma

    name = sorted(p.name for p in (corpus / "test").iterdir())[0]
    index = [p.name.removesuffix(p.suffix) for p in chorale_paths()].index(name)
    chorale = read_chorale(chorale_paths()[index], index)
    rendition = random_renditions(name, 1)[0]
    onset, length, pitch = chorale.voices["Soprano"][0]
    vocal, rate = sf.read(corpus / "test" / name / "vocals.flac", dtype="float32")
    spq = rendition.seconds_per_quarter
    first = vocal[round(onset * spq * rate) : round((onset + length) * spq * rate)]
    assert chroma(first, rate).vectors.mean(axis=0).argmax() == (pitch + rendition.transpose) % 12


def test_the_unseen_voice_sings_only_held_out_songs_over_the_same_accompaniment(corpus, tmp_path):
    report = write_corpus(tmp_path, CorpusSettings(limit=1, unseen_voice=True))
    assert [p.name for p in tmp_path.iterdir()] == ["test"] and len(report.written) == 1
    song = tmp_path / "test" / report.written[0]
    patch, _ = sf.read(corpus / "test" / song.name / "vocals.flac", dtype="float32")
    sung, _ = sf.read(song / "vocals.flac", dtype="float32")
    accompaniment, _ = sf.read(corpus / "test" / song.name / "accompaniment.flac", dtype="float32")
    assert np.array_equal(sf.read(song / "accompaniment.flac", dtype="float32")[0], accompaniment)
    assert len(sung) == len(accompaniment) and not np.allclose(sung, patch, atol=0.01)
    assert np.sqrt(np.mean(sung**2)) == pytest.approx(np.sqrt(np.mean(patch**2)), rel=0.01)


def test_a_training_vocal_may_be_the_additive_singer_through_a_recording_chain():
    from accompgen.core.music import chroma

    index = 1  # a training chorale
    chorale = read_chorale(chorale_paths()[index], index)
    chain = VocalChain(gain_db=-6.0, tilt_db=3.0, reverb=0.2, rt60_s=0.4, noise_snr_db=30.0)
    rendition = Rendition(2, 90.0, ADDITIVE_SINGER, 48, 90, vocal_chain=chain)
    renderer = SoundfontRenderer(default_soundfont(), 24000)
    vocal, accompaniment = render_chorale(chorale, rendition, renderer)
    assert len(vocal) == len(accompaniment) and vocal.dtype == np.float32
    onset, length, pitch = chorale.voices["Soprano"][0]
    spq = rendition.seconds_per_quarter
    first = vocal[round(onset * spq * 24000) : round((onset + length) * spq * 24000)]
    assert chroma(first, 24000).vectors.mean(axis=0).argmax() == (pitch + rendition.transpose) % 12


def test_a_render_does_not_hear_the_one_before_it():
    """A long release (choir pads ring for seconds) must not leak into the next part or song: the corpus is then
    the same whether rendered whole, limited or resumed."""
    renderer = SoundfontRenderer(default_soundfont(), 24000)
    rendition = Rendition(0, 90.0, 52, 52, 97)
    held = [(0.0, 4.0, 60), (0.0, 4.0, 64), (0.0, 4.0, 67)]
    short = [(0.0, 1.0, 72)]
    alone = renderer.render(short, rendition, rendition.vocal_patch)
    renderer.render(held, rendition, rendition.vocal_patch)
    after = renderer.render(short, rendition, rendition.vocal_patch)
    np.testing.assert_array_equal(after, alone)


def test_a_song_written_beside_another_writer_of_it_leaves_both_whole(tmp_path):
    """Two renders into one folder (two shells, or a rerun while one still runs) write the same songs."""
    audio = np.zeros(2400, np.float32), np.full(2400, 0.1, np.float32)
    others = tmp_path / ".bwv1.6.partial"  # the staging folder of a writer that started first
    others.mkdir()
    (others / "vocals.flac").write_bytes(b"half written")
    write_song(tmp_path / "bwv1.6", *audio, 24000)
    assert (others / "vocals.flac").read_bytes() == b"half written"
    write_song(tmp_path / "bwv1.6", *audio, 24000)  # the other writer finished first
    assert sorted(p.name for p in (tmp_path / "bwv1.6").iterdir()) == ["accompaniment.flac", "vocals.flac"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bwv1.6.partial", "bwv1.6"]


def test_a_written_song_folder_gets_the_permissions_a_plain_folder_gets(tmp_path):
    """A corpus is shared (other accounts, a training machine's user): staging must not leave it private."""
    (tmp_path / "plain").mkdir()
    write_song(tmp_path / "bwv1.6", np.zeros(2400, np.float32), np.zeros(2400, np.float32), 24000)
    assert stat.S_IMODE((tmp_path / "bwv1.6").stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)
