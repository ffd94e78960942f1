"""Every way the Generate script can meet bad input or a bridge gone: a clear message, the project untouched."""

import json
import os
import signal
import sqlite3
import time

import numpy as np
import pytest
import soundfile as sf

from ..bridge.conftest import start_bridge
from .conftest import GENERATE, bridge_command, simulate
from .simulator import Source

pytestmark = pytest.mark.usefixtures("each_reaper_version")  # every test on each modelled REAPER


def run(project, settings, os_name="Linux"):
    sim = simulate(project, GENERATE, settings, os_name)
    sim.run()
    sim.run_deferred(max_cycles=3000)
    assert project.undo_open == 0 and sim.reaper.refresh_holds == 0 and not sim.gfx.open
    return sim


def test_no_item_selected(project, running_bridge):
    project.add_track("Vocals")
    sim = run(project, {"bridge_command": bridge_command(running_bridge.state_dir)})
    assert sim.reaper.messages == ["Select one or more vocal items first."]
    assert sim.reaper.exec_calls == [] and len(project.tracks) == 1


def test_a_midi_item_is_skipped_and_said(project, running_bridge, vocal_file):
    track = project.add_track("Keys")
    item = project.add_audio_item(track, vocal_file, 0.0, 1.0)
    item.active.source = Source("", 1.0, kind="MIDI")
    item.selected = True
    sim = run(project, {"bridge_command": bridge_command(running_bridge.state_dir)})
    assert len(sim.reaper.messages) == 1 and "MIDI item" in sim.reaper.messages[0]
    assert sim.reaper.exec_calls == [] and len(project.tracks) == 1


def test_an_offline_source_is_skipped_and_said(project, running_bridge, tmp_path, vocal_file):
    track = project.add_track("Vocals")
    item = project.add_audio_item(track, vocal_file, 0.0, 1.0)
    item.active.source = Source(str(tmp_path / "gone.wav"), 5.0)
    item.selected = True
    sim = run(project, {"bridge_command": bridge_command(running_bridge.state_dir)})
    assert "offline or missing" in sim.reaper.messages[0] and "gone.wav" in sim.reaper.messages[0]
    assert len(project.tracks) == 1


def test_a_bridge_command_that_is_not_installed_is_named_with_where_to_set_it(project, vocal_file):
    track = project.add_track("Vocals")
    project.add_audio_item(track, vocal_file, 0.0, 1.0).selected = True
    for command in ("accompgen-bridge-not-installed-here", "/opt/nowhere/bin/accompgen-bridge"):
        sim = run(project, {"bridge_command": command})
        (message,) = sim.reaper.messages
        assert "was not found" in message and "AccompGen: Settings" in message
        assert sim.reaper.exec_calls == [] and len(project.tracks) == 1


def test_on_macos_a_bare_command_in_a_venv_is_not_on_reapers_path(project, vocal_file, tmp_path):
    """Started from the Finder, REAPER sees PATH=/usr/bin:/bin:/usr/sbin:/sbin: a command found by the user's
    shell is not found by REAPER, and the script says so instead of running nothing."""
    track = project.add_track("Vocals")
    project.add_audio_item(track, vocal_file, 0.0, 1.0).selected = True
    sim = run(project, {"bridge_command": "accompgen-bridge"}, os_name="macOS-arm64")
    (message,) = sim.reaper.messages
    assert "accompgen-bridge was not found" in message and "full path" in message


def test_the_bridge_is_not_running(project, vocal_file, tmp_path):
    track = project.add_track("Vocals")
    project.add_audio_item(track, vocal_file, 0.0, 1.0).selected = True
    sim = run(project, {"bridge_command": bridge_command(tmp_path / "no-bridge-here") + " --log-level error"})
    (message,) = sim.reaper.messages
    assert "no bridge is listening" in message and "Start or check bridge" in message
    assert len(project.tracks) == 1


def test_a_job_that_fails_inserts_nothing(project, running_bridge, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(44100 * 2, np.float32), 44100)
    track = project.add_track("Vocals")
    project.add_audio_item(track, silent, 0.0, 1.0).selected = True
    sim = run(project, {"bridge_command": bridge_command(running_bridge.state_dir)})
    (message,) = sim.reaper.messages
    assert "failed" in message and "silence" in message
    assert len(project.tracks) == 1 and project.undo_blocks == []


def test_a_failed_render_leaves_no_temporary_take(project, running_bridge, vocal_file, monkeypatch):
    track = project.add_track("Vocals")
    item = project.add_audio_item(track, vocal_file, 0.0, 1.0)
    item.active.fx = 1
    item.selected = True
    sim = simulate(project, GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})
    monkeypatch.setattr(sim.reaper, "_render_to_new_take", lambda project, item: None)  # REAPER rendered nothing
    sim.run()
    sim.run_deferred()
    assert "could not render" in sim.reaper.messages[0] and "take FX" in sim.reaper.messages[0]
    assert len(item.takes) == 1 and len(project.tracks) == 1


def test_a_bridge_killed_mid_job_ends_the_window_with_an_error(project, vocal_file, tiny_bundle, tmp_path):
    """The status file stops being rewritten; the script pings, gets no answer, and says so within seconds."""
    server = start_bridge(tiny_bundle, tmp_path / "state")
    try:
        track = project.add_track("Vocals")
        project.add_audio_item(track, vocal_file, 0.0, 15.0).selected = True
        sim = simulate(project, GENERATE, {"bridge_command": bridge_command(server.state_dir)})
        sim.run()
        killed_at = []

        def kill_once_running(cycle):
            statuses = list((server.state_dir / "status").glob("*.json"))
            if not killed_at and statuses and json.loads(statuses[0].read_text())["state"] == "running":
                os.kill(server.process.pid, signal.SIGKILL)
                killed_at.append(time.monotonic())

        sim.run_deferred(max_cycles=5000, on_cycle=kill_once_running)
        assert killed_at, "the job never ran"
        (message,) = sim.reaper.messages
        assert "stopped answering" in message and "Start or check bridge" in message
        assert time.monotonic() - killed_at[0] < 30  # heartbeat stale after 10 s, ping answered or not within 5 s
        assert len(project.tracks) == 1 and project.undo_blocks == []
    finally:
        server.stop()


def vocal_item(project, vocal_file, length=1.0):
    track = project.add_track("Vocals")
    item = project.add_audio_item(track, vocal_file, 0.0, length)
    item.selected = True
    return track, item


@pytest.mark.parametrize(
    ("text", "executable"),
    [("not a program", False), ("#!/nonexistent/venv/bin/python3\n", True)],
    ids=["not-executable", "its-python-is-gone"],
)
def test_a_bridge_command_reaper_cannot_start_is_named_at_once(project, vocal_file, tmp_path, text, executable):
    """ExecProcess gives nil when the program cannot be started (not executable; a venv whose Python was removed):
    said at once, naming what was run and where to set it, not after 30 s of waiting for a reply."""
    program = tmp_path / "accompgen-bridge"
    program.write_text(text)
    program.chmod(0o755 if executable else 0o644)
    vocal_item(project, vocal_file)
    sim = run(project, {"bridge_command": str(program)})
    (message,) = sim.reaper.messages
    assert "REAPER could not start" in message and str(program) in message and "AccompGen: Settings" in message
    assert len(project.tracks) == 1


def test_another_song_opened_into_the_tab_gets_nothing(project, vocal_file, running_bridge, tmp_path):
    """The tab keeps its ReaProject* when File > Open replaces its song: the accompaniment must not land there."""
    vocal_item(project, vocal_file)
    sim = simulate(project, GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.run()
    project.open_into_tab(tmp_path / "Another song")
    project.add_track("Piano")
    sim.run_deferred(max_cycles=3000)
    assert [t.name for t in project.tracks] == ["Piano"] and project.undo_blocks == []
    (message,) = sim.reaper.messages
    assert "another project was opened in its tab" in message
    (output,) = message.splitlines()[1:]
    assert sf.info(output).frames == 44100  # where the files are, and they are there


def test_a_deleted_vocal_item_gets_nothing_and_its_files_are_named(project, vocal_file, running_bridge):
    track, _ = vocal_item(project, vocal_file)
    project.add_track("Drums")
    sim = simulate(project, GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.run()
    project.delete_track(track)  # while the job runs: REAPER stays responsive
    sim.run_deferred(max_cycles=3000)
    assert [t.name for t in project.tracks] == ["Drums"] and project.undo_blocks == []
    (message,) = sim.reaper.messages
    assert "its vocal item was deleted" in message and str(project.media_path) in message


def test_an_error_while_inserting_closes_the_undo_block_and_names_the_files(project, vocal_file, running_bridge):
    vocal_item(project, vocal_file)
    sim = simulate(project, GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})

    def failing(*args):
        raise RuntimeError("out of memory")

    sim.reaper.override("AddMediaItemToTrack", failing)
    sim.run()
    sim.run_deferred(max_cycles=3000)  # the simulator fails the run if the block or the UI hold stays open
    (message,) = sim.reaper.messages
    assert "inserting failed" in message and "out of memory" in message and str(project.media_path) in message
    assert project.undo_blocks == ["AccompGen: insert accompaniment"]


def test_an_accompaniment_reaper_cannot_read_is_reported_not_inserted_silent(project, vocal_file, running_bridge):
    vocal_item(project, vocal_file)
    sim = simulate(project, GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.reaper.override("PCM_Source_CreateFromFile", lambda path: None)  # REAPER cannot read it
    sim.run()
    sim.run_deferred(max_cycles=3000)
    (message,) = sim.reaper.messages
    assert "REAPER cannot read" in message and "inserting failed" in message


def bridge_jobs(state_dir):
    with sqlite3.connect(state_dir / "jobs.sqlite3") as db:
        return dict(db.execute("SELECT id, state FROM jobs"))


def test_cancel_while_a_job_is_being_submitted_cancels_it_in_the_bridge(project, vocal_file, running_bridge):
    vocal_item(project, vocal_file, length=15.0)
    before = set(bridge_jobs(running_bridge.state_dir))
    sim = simulate(project, GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.gfx.keys.append(27)  # Esc at the first frame: the submit has been started, its answer not yet read
    sim.run()
    sim.run_deferred(max_cycles=3000)
    for process in sim.reaper.background:
        process.wait(timeout=30)
    new = {job: state for job, state in bridge_jobs(running_bridge.state_dir).items() if job not in before}
    assert list(new.values()) == ["cancelled"]
    assert sim.reaper.messages == ["Cancelled 1 unfinished job(s). Nothing was inserted."]
    assert not project.media_path.exists() or not list(project.media_path.glob("*.wav"))
    assert len(project.tracks) == 1


def test_cancel_keeps_what_had_finished(project, vocal_file, running_bridge):
    track = project.add_track("Vocals")
    project.add_audio_item(track, vocal_file, 0.0, 1.0).selected = True
    project.add_audio_item(track, vocal_file, 2.0, 15.0).selected = True
    sim = simulate(project, GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.run()

    def escape_once_the_first_is_done(cycle):
        if any(text.endswith(": done") for text in sim.gfx.texts()[-3:]) and not sim.gfx.keys:
            sim.gfx.keys.append(27)

    sim.run_deferred(max_cycles=3000, on_cycle=escape_once_the_first_is_done)
    assert sim.reaper.messages == ["Cancelled 1 unfinished job(s). The 1 that had finished were inserted."]
    (new,) = project.tracks[1].items
    assert new.position == 0.0
