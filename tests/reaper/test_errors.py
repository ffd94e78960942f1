"""Every way the Generate script can meet bad input or a bridge gone: a clear message, the project untouched."""

import json
import os
import signal
import time

import numpy as np
import soundfile as sf

from ..bridge.conftest import start_bridge
from .conftest import GENERATE, bridge_command, simulate
from .simulator import Source


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
