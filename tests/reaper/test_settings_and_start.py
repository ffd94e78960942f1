"""The Settings and Start-or-check-bridge scripts."""

from .conftest import SETTINGS, START, bridge_command, simulate


def saved(sim):
    return {key: value for (section, key), value in sim.reaper.ext_state.items() if section == "AccompGen"}


def test_settings_are_stored_in_ext_state(project):
    sim = simulate(project, SETTINGS)
    sim.reaper.user_inputs = [(True, "/opt/ag/bin/accompgen-bridge,/bundles/base,2.5,0.8,42,3")]
    sim.run()
    assert saved(sim) == {
        "bridge_command": "/opt/ag/bin/accompgen-bridge",
        "bundle": "/bundles/base",
        "cfg_scale": "2.5",
        "temperature": "0.8",
        "seed": "42",
        "variations": "3",
    }
    _title, count, captions, defaults = sim.reaper.user_input_calls[0]
    assert count == 6 and defaults == "accompgen-bridge,,3.0,0.9,,1" and "extrawidth" in captions


def test_bad_settings_are_explained_and_asked_again(project):
    sim = simulate(project, SETTINGS)
    sim.reaper.user_inputs = [
        (True, "accompgen-bridge,,3.0,0.9,-4,1"),
        (True, "accompgen-bridge,,3.0,0.9,,12"),
        (False, ""),
    ]
    sim.run()
    assert sim.reaper.messages == [
        "Seed must be a whole number, or blank for a random one.",
        "Variations must be a whole number from 1 to 8.",
    ]
    assert saved(sim) == {}  # cancelled in the end: nothing stored
    assert sim.reaper.user_input_calls[1][3] == "accompgen-bridge,,3.0,0.9,-4,1"  # the entry offered again


def test_check_finds_a_running_bridge(project, running_bridge):
    sim = simulate(project, START, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.run()
    sim.run_deferred()
    (message,) = sim.reaper.messages
    assert message.startswith("The AccompGen bridge 0.1.0 is running") and str(running_bridge.tcp_port) in message


def test_start_launches_a_bridge_in_the_background(project, tiny_bundle, tmp_path):
    state = tmp_path / "state"
    command = bridge_command(state) + " --log-level error"
    sim = simulate(project, START, {"bridge_command": command, "bundle": str(tiny_bundle)})
    try:
        sim.run()
        sim.run_deferred(max_cycles=2000, cycle_s=0.02)
        (message,) = sim.reaper.messages
        assert message.startswith("Started the AccompGen bridge 0.1.0")
        assert (state / "bridge.json").is_file()
    finally:
        stop_started_bridge(sim, state)


def stop_started_bridge(sim, state):
    """The script started `sh -c BRIDGE`: stop the bridge itself and wait until it is gone."""
    import json
    import os
    import signal
    import time

    address = state / "bridge.json"
    if address.is_file():
        pid = json.loads(address.read_text())["pid"]
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while address.is_file() and time.monotonic() < deadline:  # removed by the bridge as it stops
            time.sleep(0.05)
    for process in sim.reaper.background:
        process.wait(timeout=30)


def test_start_says_when_the_command_is_missing(project):
    sim = simulate(project, START, {"bridge_command": "accompgen-bridge-not-installed-here", "bundle": "/b"})
    sim.run()
    (message,) = sim.reaper.messages
    assert "was not found" in message


def test_start_needs_a_bundle(project, tmp_path):
    sim = simulate(project, START, {"bridge_command": bridge_command(tmp_path / "nothing")})
    sim.run()
    assert "no bundle folder is set" in sim.reaper.messages[0]
    sim = simulate(project, START, {"bridge_command": bridge_command(tmp_path / "nothing"), "bundle": str(tmp_path)})
    sim.run()
    assert "holds no manifest.yaml" in sim.reaper.messages[0]
