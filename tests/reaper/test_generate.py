"""The Generate script end to end: real Lua 5.4, a strict simulated REAPER, a real bridge on 127.0.0.1."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import GENERATE, REGENERATE, TIME_SELECTION, bridge_command, simulate, submitted_requests
from .simulator import Envelope, Project, Source, TrackFx

pytestmark = pytest.mark.usefixtures("each_reaper_version")  # every test on each modelled REAPER


def vocal_project(project, vocal_file, position=12.5, startoffs=3.0, length=2.0):
    track = project.add_track("Vocals")
    item = project.add_audio_item(track, vocal_file, position, length, startoffs)
    item.selected = True
    return track, item


def run_generate(project, state_dir, on_cycle=None, os_name="Linux", **settings):
    sim = simulate(project, GENERATE, {"bridge_command": bridge_command(state_dir), "seed": "5", **settings}, os_name)
    sim.run()
    sim.run_deferred(max_cycles=3000, on_cycle=on_cycle)
    return sim


def assert_tidy(sim, project):
    assert project.undo_open == 0 and sim.reaper.refresh_holds == 0
    assert not sim.gfx.open
    assert sim.open_files == []  # no file held past a tick: on Windows it would block the bridge's replace
    assert sim.heavy_ticks() == []


def test_a_track_appears_under_the_vocal_aligned_to_the_item(project, vocal_file, running_bridge):
    vocal_project(project, vocal_file)
    project.add_track("Drums")
    sim = run_generate(project, running_bridge.state_dir)
    assert sim.reaper.messages == []
    assert [t.name for t in project.tracks] == ["Vocals", "Vocals - accompaniment", "Drums"]
    (new,) = project.tracks[1].items
    assert (new.position, new.length) == (12.5, 2.0)
    (take,) = new.takes
    assert take.name == "AccompGen seed 5" and new.active is take
    info = sf.info(take.source.file)
    assert info.frames == round(2.0 * 44100) and info.samplerate == 44100
    assert Path(take.source.file).parent == project.media_path  # the project keeps its accompaniment
    assert project.undo_blocks == ["AccompGen: insert accompaniment"]
    assert_tidy(sim, project)
    # the region sent was the take's: 3 s into the file, 2 s long, the path with its quotes and letters intact
    request = submitted_requests(running_bridge.state_dir)[-1]
    assert (request["input_path"], request["start_s"], request["duration_s"]) == (str(vocal_file), 3.0, 2.0)


def test_blank_sampling_settings_leave_the_choice_to_the_bundle(project, vocal_file, running_bridge):
    """A bundle carries the guidance and temperature tuned for its model; only what the user set overrides them."""
    vocal_project(project, vocal_file, length=1.0)
    run_generate(project, running_bridge.state_dir, cfg_scale="", temperature="0.7")
    request = submitted_requests(running_bridge.state_dir)[-1]
    assert request["cfg_scale"] is None  # the bundle's default
    assert request["temperature"] == pytest.approx(0.7)  # OSC carries 32-bit floats


def test_the_bundle_chosen_is_asked_for_by_its_folder_name(project, vocal_file, running_bridge, tiny_bundle):
    vocal_project(project, vocal_file)
    run_generate(project, running_bridge.state_dir)
    run_generate(project, running_bridge.state_dir, bundle=str(tiny_bundle) + "/")
    default, chosen = (request["bundle"] for request in submitted_requests(running_bridge.state_dir)[-2:])
    assert default == chosen == tiny_bundle.name  # blank: the bridge's default, which the job store names


def test_a_bundle_the_bridge_does_not_serve_is_named_with_those_it_does(project, vocal_file, running_bridge):
    vocal_project(project, vocal_file)
    sim = run_generate(project, running_bridge.state_dir, bundle="/models/rock band")
    (message,) = sim.reaper.messages
    assert "bundle 'rock band' is not served: this bridge serves tiny" in message
    assert len(project.tracks) == 1 and project.undo_blocks == []


def test_the_paths_survive_windows_command_line_splitting(project, vocal_file, running_bridge):
    vocal_project(project, vocal_file, length=1.0)
    sim = run_generate(project, running_bridge.state_dir, os_name="Win64")
    assert sim.reaper.messages == []
    assert submitted_requests(running_bridge.state_dir)[-1]["input_path"] == str(vocal_file)
    assert len(project.tracks) == 2


def test_variations_become_takes_named_by_seed(project, vocal_file, running_bridge):
    vocal_project(project, vocal_file, length=1.0)
    sim = run_generate(project, running_bridge.state_dir, variations="3")
    (new,) = project.tracks[1].items
    assert [take.name for take in new.takes] == ["AccompGen seed 5", "AccompGen seed 6", "AccompGen seed 7"]
    audio = [sf.read(take.source.file)[0] for take in new.takes]
    assert not np.array_equal(audio[0], audio[1])
    assert project.undo_blocks == ["AccompGen: insert accompaniment"]
    assert_tidy(sim, project)


def test_items_on_one_track_share_one_accompaniment_track(project, vocal_file, running_bridge):
    track = project.add_track("Vocals")
    for position in (0.0, 4.0):
        project.add_audio_item(track, vocal_file, position, 1.0, position).selected = True
    sim = run_generate(project, running_bridge.state_dir)
    assert [t.name for t in project.tracks] == ["Vocals", "Vocals - accompaniment"]
    assert [i.position for i in project.tracks[1].items] == [0.0, 4.0]
    assert_tidy(sim, project)


def test_cancel_mid_job_inserts_nothing_and_cancels_the_bridge_job(project, vocal_file, running_bridge):
    vocal_project(project, vocal_file, startoffs=0.0, length=15.0)
    sim = simulate(project, GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.run()

    def press_escape_once_running(cycle):
        texts = sim.gfx.texts()
        if texts and any("%" in text for text in texts[-3:]) and not sim.gfx.keys:
            sim.gfx.keys.append(27)

    sim.run_deferred(max_cycles=3000, on_cycle=press_escape_once_running)
    assert [t.name for t in project.tracks] == ["Vocals"]
    assert sim.reaper.messages == ["Cancelled 1 unfinished job(s). Nothing was inserted."]
    (cancel,) = [argv for argv in sim.reaper.exec_argv if "cancel" in argv]
    job_id = cancel[cancel.index("cancel") + 1]
    for process in sim.reaper.background:
        process.wait(timeout=30)
    status = json.loads((running_bridge.state_dir / "status" / f"{job_id}.json").read_text())
    assert status["state"] == "cancelled"
    assert project.undo_blocks == []
    assert_tidy(sim, project)


def test_a_take_with_playrate_is_rendered_and_the_temporary_take_and_file_removed(project, vocal_file, running_bridge):
    _, item = vocal_project(project, vocal_file, length=1.5)
    item.active.playrate = 1.25
    sim = run_generate(project, running_bridge.state_dir)
    assert sim.reaper.commands == [40601, 40129, 40047]  # render, delete the temporary take, build peaks
    assert len(item.takes) == 1 and item.active.playrate == 1.25  # the user's take, untouched
    assert item.selected  # the selection restored
    # the rendered vocal and the peaks REAPER built for it deleted once its job ended
    assert [p for p in project.media_path.iterdir() if "-accomp-" not in p.name] == []
    assert project.undo_blocks == ["AccompGen: render vocal take for generation", "AccompGen: insert accompaniment"]
    (new,) = project.tracks[1].items
    assert sf.info(new.takes[0].source.file).frames == round(1.5 * 44100)
    assert_tidy(sim, project)


def test_a_section_source_is_followed_to_its_file(project, vocal_file, running_bridge):
    _, item = vocal_project(project, vocal_file, startoffs=0.5, length=1.0)
    parent = item.active.source
    item.active.source = Source("", 8.0, kind="SECTION", parent=parent, section=(4.0, 8.0, False))
    run_generate(project, running_bridge.state_dir)
    request = submitted_requests(running_bridge.state_dir)[-1]
    assert request["start_s"] == 4.5 and request["input_path"] == str(vocal_file)
    assert len(project.tracks) == 2


def rendered_for(project, running_bridge, vocal_file, prepare):
    """Run Generate on a take `prepare` changed; returns the commands REAPER ran and the file the bridge read."""
    _, item = vocal_project(project, vocal_file, length=1.0, startoffs=1.0)
    prepare(item)
    sim = run_generate(project, running_bridge.state_dir)
    assert len(project.tracks) == 2, sim.reaper.messages
    return sim.reaper.commands, submitted_requests(running_bridge.state_dir)[-1]["input_path"]


def test_what_the_user_hears_is_rendered_first(tmp_path, running_bridge, vocal_file):
    def pitched(item):
        item.active.pitch = 2.0

    def left_channel(item):
        item.active.chanmode = 3

    def enveloped(item):
        item.active.envelopes["Volume"] = Envelope(points=[(0.0, 1.0), (1.0, 0.0)])

    def pitch_enveloped(item):  # sung a tone higher than its file: another key
        item.active.envelopes["Pitch"] = Envelope(points=[(0.0, 2.0), (1.0, 2.0)])

    def mute_enveloped(item):
        item.active.envelopes["Mute"] = Envelope(points=[(0.0, 0.0), (0.5, 1.0)])

    def looped_section(item):  # a 0.5 s section looping under a 1 s item: the file alone has other audio
        item.active.source = Source("", 0.5, kind="SECTION", parent=item.active.source, section=(2.0, 0.5, False))
        item.active.startoffs = 0.0

    for i, prepare in enumerate((pitched, left_channel, enveloped, pitch_enveloped, mute_enveloped, looped_section)):
        commands, read = rendered_for(Project(tmp_path / f"song{i}"), running_bridge, vocal_file, prepare)
        assert commands[:2] == [40601, 40129], prepare.__name__
        assert read != str(vocal_file), prepare.__name__


def test_an_inactive_envelope_and_a_section_within_bounds_need_no_render(tmp_path, running_bridge, vocal_file):
    def inactive_envelope(item):
        item.active.envelopes["Volume"] = Envelope(active=False, points=[(0.0, 0.0)])

    commands, read = rendered_for(Project(tmp_path / "song"), running_bridge, vocal_file, inactive_envelope)
    assert commands == [40047] and read == str(vocal_file)


def test_a_format_libsndfile_cannot_read_is_rendered(project, vocal_file, running_bridge, tmp_path):
    m4a = tmp_path / "phone take.m4a"
    m4a.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))  # AAC in MP4: REAPER decodes it, libsndfile cannot
    _, item = vocal_project(project, vocal_file, length=1.0)
    item.active.source = Source(str(m4a), 20.0, kind="MP4", decoded=str(vocal_file))
    sim = run_generate(project, running_bridge.state_dir)
    assert sim.reaper.commands == [40601, 40129, 40047] and sim.reaper.messages == []
    assert len(project.tracks) == 2


def test_the_accompaniment_goes_into_the_project_it_was_made_for(project, vocal_file, running_bridge, tmp_path):
    other = Project(tmp_path / "Other song")
    other.add_track("Piano")
    vocal_project(project, vocal_file, length=1.0)
    sim = simulate([project, other], GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.run()
    sim.reaper.current = other  # the user switched project tabs meanwhile
    sim.run_deferred(max_cycles=3000)
    assert [t.name for t in project.tracks] == ["Vocals", "Vocals - accompaniment"]
    assert [t.name for t in other.tracks] == ["Piano"] and other.undo_blocks == []
    assert_tidy(sim, project)


def test_a_closed_project_loses_nothing(project, vocal_file, running_bridge, tmp_path):
    other = Project(tmp_path / "Other song")
    vocal_project(project, vocal_file, length=1.0)
    sim = simulate([project, other], GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.run()
    sim.reaper.projects.remove(project)  # its tab closed meanwhile
    sim.reaper.current = other
    sim.run_deferred(max_cycles=3000)
    (message,) = sim.reaper.messages
    assert "project was closed" in message and str(project.media_path) in message
    assert other.tracks == [] and other.undo_blocks == []


def test_an_unsaved_project_keeps_its_files_in_reapers_recording_path(tmp_path, vocal_file, running_bridge):
    """As REAPER's own recordings and renders do: not in a folder the bridge purges after a week."""
    untitled = Project(tmp_path / "untitled", saved=False)
    vocal_project(untitled, vocal_file, length=1.0)
    sim = run_generate(untitled, running_bridge.state_dir)
    assert sim.reaper.messages == []
    (new,) = untitled.tracks[1].items
    assert Path(new.takes[0].source.file).parent == sim.reaper.recording_path(untitled)


def test_a_pitch_corrected_track_is_rendered_with_its_fx(project, vocal_file, running_bridge):
    """Action 40601 leaves out the track's FX, where pitch correction sits: the bridge would hear the uncorrected
    take. 40209 (Apply track/take FX) renders them."""
    track, item = vocal_project(project, vocal_file, length=1.0)
    track.fx = [TrackFx("ReaTune", pitch=1.0), TrackFx("ReaEQ", enabled=False)]
    sim = run_generate(project, running_bridge.state_dir)
    assert sim.reaper.commands[:2] == [40209, 40129] and sim.reaper.messages == []
    assert len(item.takes) == 1 and len(project.tracks) == 2
    assert_tidy(sim, project)


def test_bypassed_track_fx_need_no_render(project, vocal_file, running_bridge):
    track, _ = vocal_project(project, vocal_file, length=1.0)
    track.fx = [TrackFx("ReaTune", pitch=1.0, enabled=False)]
    sim = run_generate(project, running_bridge.state_dir)
    assert 40209 not in sim.reaper.commands and 40601 not in sim.reaper.commands
    track.fx_enabled, track.fx = False, [TrackFx("ReaTune", pitch=1.0)]  # the whole chain bypassed
    sim = run_generate(project, running_bridge.state_dir)
    assert 40209 not in sim.reaper.commands and 40601 not in sim.reaper.commands


@pytest.mark.parametrize(
    ("tracks", "vocal", "expected"),
    [
        # (name, folder depth) of each track; the vocal's index; names and depths after
        (
            [("Vocals", 1), ("Double", 0), ("Harmony", -1), ("Drums", 0)],
            0,
            [("Vocals", 1), ("Double", 0), ("Harmony", -1), ("Vocals - accompaniment", 0), ("Drums", 0)],
        ),
        (
            [("Band", 1), ("Guitar", 0), ("Vocals", -1), ("Drums", 0)],
            2,
            [("Band", 1), ("Guitar", 0), ("Vocals", 0), ("Vocals - accompaniment", -1), ("Drums", 0)],
        ),
        (
            [("Band", 1), ("Vocals", 1), ("Double", -2), ("Drums", 0)],
            1,
            [("Band", 1), ("Vocals", 1), ("Double", -1), ("Vocals - accompaniment", -1), ("Drums", 0)],
        ),
    ],
    ids=["vocal-is-a-folder", "vocal-is-the-last-child", "vocal-folder-closes-its-parent"],
)
def test_the_new_track_sits_beside_the_vocal_at_its_folder_level(
    project, vocal_file, running_bridge, tracks, vocal, expected
):
    """Right under a folder parent it would be its first child (its sound through the vocal bus); right under a last
    child it would fall out of the folder."""
    made = [project.add_track(name, depth) for name, depth in tracks]
    project.add_audio_item(made[vocal], vocal_file, 0.0, 1.0).selected = True
    sim = run_generate(project, running_bridge.state_dir)
    assert [(t.name, t.folder_depth) for t in project.tracks] == expected
    (new,) = [t for t in project.tracks if t.name == "Vocals - accompaniment"]
    assert new.defaults  # made with the user's default track settings
    assert_tidy(sim, project)


def test_the_new_takes_have_peaks(project, vocal_file, running_bridge):
    vocal_project(project, vocal_file, length=1.0)
    sim = run_generate(project, running_bridge.state_dir, variations="2")
    assert all(take.source.peaks for take in project.tracks[1].items[0].takes)
    assert_tidy(sim, project)


def test_regenerate_adds_a_new_variation_as_another_take(project, vocal_file, running_bridge):
    _, vocal = vocal_project(project, vocal_file, length=1.0)
    run_generate(project, running_bridge.state_dir)
    (accompaniment,) = project.tracks[1].items
    vocal.selected, accompaniment.selected = False, True
    settings = {"bridge_command": bridge_command(running_bridge.state_dir), "seed": "5"}
    sim = simulate(project, REGENERATE, settings)
    sim.run()
    sim.run_deferred(max_cycles=3000)
    assert sim.reaper.messages == []
    assert [take.name for take in accompaniment.takes] == ["AccompGen seed 5", "AccompGen seed 6"]
    assert accompaniment.active is accompaniment.takes[1]
    assert len(project.tracks) == 2 and project.undo_blocks[-1] == "AccompGen: regenerate accompaniment"
    request = submitted_requests(running_bridge.state_dir)[-1]
    assert (request["input_path"], request["seed"], request["variations"]) == (str(vocal_file), 6, 1)
    assert_tidy(sim, project)


def test_regenerate_says_what_it_cannot_regenerate(project, vocal_file, running_bridge):
    track, vocal = vocal_project(project, vocal_file, length=1.0)
    run_generate(project, running_bridge.state_dir)
    (accompaniment,) = project.tracks[1].items
    accompaniment.selected = True  # the vocal item is selected too: AccompGen did not make it
    sim = simulate(project, REGENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.run()
    sim.run_deferred(max_cycles=3000)
    assert any("AccompGen did not make it" in line for line in sim.reaper.messages[0].splitlines())
    assert len(accompaniment.takes) == 2
    track.items.remove(vocal)
    sim = simulate(project, REGENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.run()
    sim.run_deferred(max_cycles=3000)
    assert sim.reaper.messages == ["item 1 skipped: the vocal item it accompanies was deleted"]


def test_a_time_selection_is_rendered_as_heard_and_accompanied_as_one_piece(project, vocal_file, running_bridge):
    """A comped vocal: several items on the track, pitch correction on it; one job over the time selection."""
    vocal = project.add_track("Vocals")
    vocal.fx, vocal.selected = [TrackFx("ReaTune", pitch=1.0)], True
    drums = project.add_track("Drums")
    for position in (0.0, 1.5):
        project.add_audio_item(vocal, vocal_file, position, 1.0, startoffs=position)
    project.time_selection = (0.5, 2.0)
    sim = simulate(project, TIME_SELECTION, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.run()
    sim.run_deferred(max_cycles=3000)
    assert sim.reaper.messages == []
    assert [t.name for t in project.tracks] == ["Vocals", "Vocals - accompaniment", "Drums"]
    (new,) = project.tracks[1].items
    assert (new.position, new.length) == (0.5, 1.5)
    request = submitted_requests(running_bridge.state_dir)[-1]
    assert (request["start_s"], request["duration_s"]) == (0.0, 1.5) and request["input_path"] != str(vocal_file)
    assert not vocal.muted and vocal.selected and not drums.selected  # as the user left them
    assert project.undo_blocks == ["AccompGen: render vocal for generation", "AccompGen: insert accompaniment"]
    assert [p for p in project.media_path.iterdir() if "-accomp-" not in p.name] == []  # the stem and its peaks
    assert_tidy(sim, project)


def test_a_time_selection_needs_a_selection_and_a_track(project, vocal_file, running_bridge):
    track, _ = vocal_project(project, vocal_file, length=1.0)
    for time_selection, selected, message in (
        ((0.0, 0.0), True, "Make a time selection over the vocal first."),
        ((0.0, 1.0), False, "Select the vocal track first."),
    ):
        project.time_selection, track.selected = time_selection, selected
        sim = simulate(project, TIME_SELECTION, {"bridge_command": bridge_command(running_bridge.state_dir)})
        sim.run()
        sim.run_deferred()
        assert sim.reaper.messages == [message] and sim.reaper.exec_calls == []
