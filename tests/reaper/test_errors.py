"""Every way the Generate script can meet bad input: a clear message, the project untouched, nothing left over."""

import numpy as np
import soundfile as sf

from .conftest import GENERATE, bridge_command, simulate
from .simulator import Source


def run(project, settings):
    sim = simulate(project, GENERATE, settings)
    sim.run()
    sim.run_deferred(max_cycles=3000)
    assert sim.reaper.undo_open == 0 and sim.reaper.refresh_holds == 0 and not sim.gfx.open
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


def test_the_bridge_command_is_not_installed(project, vocal_file):
    track = project.add_track("Vocals")
    project.add_audio_item(track, vocal_file, 0.0, 1.0).selected = True
    sim = run(project, {"bridge_command": "accompgen-bridge-not-installed-here"})
    (message,) = sim.reaper.messages
    assert "was not found" in message and "pip install accompgen" in message
    assert len(project.tracks) == 1


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
    assert len(project.tracks) == 1 and sim.reaper.undo_blocks == []


def test_a_failed_render_leaves_no_temporary_take(project, running_bridge, vocal_file, monkeypatch):
    track = project.add_track("Vocals")
    item = project.add_audio_item(track, vocal_file, 0.0, 1.0)
    item.active.fx = 1
    item.selected = True
    sim = simulate(project, GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)})
    monkeypatch.setattr(sim.reaper, "_render_to_new_take", lambda item: None)  # REAPER rendered nothing
    sim.run()
    sim.run_deferred()
    assert "could not render" in sim.reaper.messages[0] and "take FX" in sim.reaper.messages[0]
    assert len(item.takes) == 1 and len(project.tracks) == 1
