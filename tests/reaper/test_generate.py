"""The Generate script end to end: real Lua 5.4, a strict simulated REAPER, a real bridge on 127.0.0.1."""

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from .conftest import GENERATE, bridge_command, simulate
from .simulator import Source


def vocal_project(project, vocal_file, position=12.5, startoffs=3.0, length=2.0):
    track = project.add_track("Vocals")
    item = project.add_audio_item(track, vocal_file, position, length, startoffs)
    item.selected = True
    return track, item


def run_generate(project, state_dir, on_cycle=None, **settings):
    sim = simulate(project, GENERATE, {"bridge_command": bridge_command(state_dir), "seed": "5", **settings})
    sim.run()
    sim.run_deferred(max_cycles=3000, on_cycle=on_cycle)
    return sim


def calls_of(sim, subcommand):
    """The bridge command lines the script ran for one subcommand, unquoted."""
    return [c.replace("'", "") for c in sim.reaper.exec_calls if f"'{subcommand}'" in c]


def assert_tidy(sim):
    assert sim.reaper.undo_open == 0 and sim.reaper.refresh_holds == 0
    assert not sim.gfx.open


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
    assert sim.reaper.undo_blocks == ["AccompGen: insert accompaniment"]
    assert_tidy(sim)
    # the region sent was the take's: 3 s into the file, 2 s long, from the quoted path
    (submit,) = calls_of(sim, "submit")
    assert "--start 3.000000" in submit and "--duration 2.000000" in submit and "“take 3” é.wav" in submit


def test_variations_become_takes_named_by_seed(project, vocal_file, running_bridge):
    vocal_project(project, vocal_file, length=1.0)
    sim = run_generate(project, running_bridge.state_dir, variations="3")
    (new,) = project.tracks[1].items
    assert [take.name for take in new.takes] == ["AccompGen seed 5", "AccompGen seed 6", "AccompGen seed 7"]
    audio = [sf.read(take.source.file)[0] for take in new.takes]
    assert not np.array_equal(audio[0], audio[1])
    assert sim.reaper.undo_blocks == ["AccompGen: insert accompaniment"]


def test_items_on_one_track_share_one_accompaniment_track(project, vocal_file, running_bridge):
    track = project.add_track("Vocals")
    for position in (0.0, 4.0):
        project.add_audio_item(track, vocal_file, position, 1.0, position).selected = True
    run_generate(project, running_bridge.state_dir)
    assert [t.name for t in project.tracks] == ["Vocals", "Vocals - accompaniment"]
    assert [i.position for i in project.tracks[1].items] == [0.0, 4.0]


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
    assert sim.reaper.messages == ["Cancelled: nothing was inserted."]
    (cancel,) = calls_of(sim, "cancel")
    job_id = cancel.split()[-1]
    status = json.loads((running_bridge.state_dir / "status" / f"{job_id}.json").read_text())
    assert status["state"] == "cancelled"
    assert sim.reaper.undo_blocks == []
    assert_tidy(sim)


def test_a_take_with_playrate_is_rendered_and_the_temporary_take_and_file_removed(project, vocal_file, running_bridge):
    _, item = vocal_project(project, vocal_file, length=1.5)
    item.active.playrate = 1.25
    sim = run_generate(project, running_bridge.state_dir)
    assert sim.reaper.commands == [40601, 40129]
    assert len(item.takes) == 1 and item.active.playrate == 1.25  # the user's take, untouched
    assert item.selected  # the selection restored
    assert not list(Path(project.path).glob("*render*.wav"))  # the rendered vocal deleted once its job ended
    assert sim.reaper.undo_blocks == ["AccompGen: render vocal take for generation", "AccompGen: insert accompaniment"]
    (new,) = project.tracks[1].items
    assert sf.info(new.takes[0].source.file).frames == round(1.5 * 44100)
    assert_tidy(sim)


def test_a_section_source_is_followed_to_its_file(project, vocal_file, running_bridge):
    _, item = vocal_project(project, vocal_file, startoffs=0.5, length=1.0)
    parent = item.active.source
    item.active.source = Source("", 8.0, kind="SECTION", parent=parent, section=(4.0, 8.0, False))
    sim = run_generate(project, running_bridge.state_dir)
    (submit,) = calls_of(sim, "submit")
    assert "--start 4.500000" in submit
    assert sim.reaper.commands == []  # a plain section needs no render
    assert len(project.tracks) == 2
