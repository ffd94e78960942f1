"""The Settings and Start-or-check-bridge scripts."""

import json
import os
import shutil
import signal
import stat
import time

import pytest

from ..bridge.conftest import start_bridge
from .conftest import CHOOSE, SETTINGS, SHOW_LOG, START, STOP, bridge_command, simulate

pytestmark = pytest.mark.usefixtures("each_reaper_version")  # every test on each modelled REAPER


def saved(sim):
    return {key: value for (section, key), value in sim.reaper.ext_state.items() if section == "AccompGen"}


def fake_program(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_settings_are_stored_one_per_line_so_commas_survive(project, tmp_path):
    program = fake_program(tmp_path / "venv, 3.11" / "bin" / "accompgen-bridge")
    sim = simulate(project, SETTINGS)
    sim.reaper.user_inputs = [(True, [str(program), "/bundles/base, v2", "2.5", "0.8", "42", "3"])]
    sim.run()
    assert saved(sim) == {
        "bridge_command": f'"{program}"',
        "bundle": "/bundles/base, v2",
        "cfg_scale": "2.5",
        "temperature": "0.8",
        "seed": "42",
        "variations": "3",
    }
    _title, count, captions, defaults = sim.reaper.user_input_calls[0]
    assert count == 6 and defaults == "accompgen-bridge\n\n\n\n\n1"  # blank sampling: the bundle's own defaults
    assert captions.endswith(",extrawidth=220,separator=\n")


def test_a_bare_command_is_stored_as_the_full_path_found(project):
    """REAPER started from the macOS Finder does not see the shell's PATH: Settings stores where it found it."""
    home = project.path / "home"  # the simulated desktop's HOME
    program = fake_program(home / ".local" / "bin" / "accompgen-bridge")
    sim = simulate(project, SETTINGS, os_name="macOS-arm64")
    sim.reaper.user_inputs = [(True, ["accompgen-bridge", "", "3.0", "0.9", "", "1"])]
    sim.run()
    assert saved(sim)["bridge_command"] == f'"{program}"'


def test_bad_settings_are_explained_and_asked_again(project):
    sim = simulate(project, SETTINGS)
    sim.reaper.user_inputs = [
        (True, ["accompgen-bridge", "", "3.0", "0.9", "-4", "1"]),
        (True, ["accompgen-bridge", "", "3.0", "0.9", "", "12"]),
        (True, ["accompgen-bridge-nowhere", "", "3.0", "0.9", "", "1"]),
        (False, []),
    ]
    sim.run()
    assert sim.reaper.messages[:2] == [
        "Seed must be a whole number from 0 to 2147483647, or blank.",
        "Variations must be a whole number from 1 to 8.",
    ]
    assert "accompgen-bridge-nowhere was not found" in sim.reaper.messages[2]
    assert saved(sim) == {}  # cancelled in the end: nothing stored
    assert sim.reaper.user_input_calls[1][3] == "accompgen-bridge\n\n3.0\n0.9\n-4\n1"  # the entry offered again


def test_check_finds_a_running_bridge(project, running_bridge):
    sim = simulate(project, START, {"bridge_command": bridge_command(running_bridge.state_dir)})
    sim.run()
    sim.run_deferred(max_cycles=3000)
    (message,) = sim.reaper.messages
    assert message.startswith("The AccompGen bridge 0.1.0 is running") and str(running_bridge.tcp_port) in message
    assert sim.heavy_ticks() == []


def test_start_launches_a_bridge_in_the_background_without_blocking(project, tiny_bundle, tmp_path):
    state = tmp_path / "state"
    command = bridge_command(state) + " --log-level error"
    sim = simulate(project, START, {"bridge_command": command, "bundle": str(tiny_bundle)})
    try:
        sim.run()
        sim.run_deferred(max_cycles=3000, cycle_s=0.02)
        (message,) = sim.reaper.messages
        assert message.startswith("Started the AccompGen bridge 0.1.0")
        assert (state / "bridge.json").is_file()
        assert sim.heavy_ticks() == []  # pings are started, never waited for
    finally:
        stop_started_bridge(sim, state)
    assert len(sim.reaper.exec_calls) < 15  # about one ping a second, not one a tick
    assert list((sim.reaper.resource_path / "Data" / "AccompGen").glob("reply-*")) == []  # every reply was read


def stop_started_bridge(sim, state):
    address = state / "bridge.json"
    if address.is_file():
        os.kill(json.loads(address.read_text())["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 30
        while address.is_file() and time.monotonic() < deadline:  # removed by the bridge as it stops
            time.sleep(0.05)
    for process in sim.reaper.background:
        process.wait(timeout=30)


def test_start_says_when_the_command_is_missing(project):
    sim = simulate(project, START, {"bridge_command": "accompgen-bridge-not-installed-here", "bundle": "/b"})
    sim.run()
    (message,) = sim.reaper.messages
    assert "was not found" in message and sim.reaper.exec_calls == []


def test_start_needs_the_chosen_folder_to_be_a_bundle(project, tmp_path):
    sim = simulate(project, START, {"bridge_command": bridge_command(tmp_path / "nothing"), "bundle": str(tmp_path)})
    sim.run()
    sim.run_deferred(max_cycles=3000)
    assert "holds no manifest.yaml" in sim.reaper.messages[0]
    assert not [argv for argv in sim.reaper.exec_argv if "serve" in argv]


def start_and_wait(project, settings):
    sim = simulate(project, START, settings)
    sim.run()
    sim.run_deferred(max_cycles=3000, cycle_s=0.02)
    return sim


def test_without_a_chosen_bundle_start_serves_every_bundle_found(project, tiny_bundle, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(tiny_bundle, state / "bundles" / "my choir")
    sim = start_and_wait(project, {"bridge_command": bridge_command(state) + " --log-level error"})
    try:
        (serve,) = [argv for argv in sim.reaper.exec_argv if "serve" in argv]
        assert "--bundle" not in serve
        (message,) = sim.reaper.messages
        assert message.startswith("Started the AccompGen bridge 0.1.0, serving chorales (chorales, int8")
        assert message.endswith("my choir (tiny, fp32).")
    finally:
        stop_started_bridge(sim, state)


def test_start_serves_the_chosen_bundle_first_and_says_when_a_running_bridge_lacks_it(project, tiny_bundle, tmp_path):
    state = tmp_path / "state"
    settings = {"bridge_command": bridge_command(state) + " --log-level error", "bundle": str(tiny_bundle)}
    sim = start_and_wait(project, settings)
    try:
        (serve,) = [argv for argv in sim.reaper.exec_argv if "serve" in argv]
        assert serve[serve.index("--bundle") + 1] == str(tiny_bundle) and "--found" in serve
        assert sim.reaper.messages[0].startswith("Started the AccompGen bridge 0.1.0, serving tiny (tiny, fp32), ")
        sim = start_and_wait(project, {**settings, "bundle": "/models/rock band"})
        (message,) = sim.reaper.messages
        assert "is running" in message and "It does not serve rock band from /models/rock band, the bundle" in message
        assert not [argv for argv in sim.reaper.exec_argv if "serve" in argv]
    finally:
        stop_started_bridge(sim, state)


def test_a_bridge_whose_bundle_does_not_load_says_so(project, tiny_bundle, tmp_path):
    """A running bridge that cannot generate answers every request with why, instead of queueing forever."""
    import shutil

    import yaml

    from accompgen.core.bundle import sha256_file

    from ..bridge.conftest import start_bridge

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "stage_fine.onnx").write_bytes(b"not a graph")  # hashed into the manifest: onnxruntime refuses it
    manifest = yaml.safe_load((broken / "manifest.yaml").read_text())
    manifest["graphs"]["stage_fine"]["sha256"] = sha256_file(broken / "stage_fine.onnx")
    (broken / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    server = start_bridge(broken, tmp_path / "state")
    try:
        deadline = time.monotonic() + 30
        while True:  # the worker loads the graphs in the background
            sim = simulate(project, START, {"bridge_command": bridge_command(server.state_dir)})
            sim.run()
            sim.run_deferred(max_cycles=3000)
            if "cannot generate" in sim.reaper.messages[0] or time.monotonic() > deadline:
                break
        (message,) = sim.reaper.messages
        assert "cannot generate" in message and "could not be loaded" in message
    finally:
        server.stop()


def run_to_the_end(sim):
    sim.run()
    sim.run_deferred(max_cycles=3000)
    assert sim.heavy_ticks() == []
    return sim


def test_stop_bridge_stops_it_and_then_says_none_runs(project, tiny_bundle, tmp_path):
    server = start_bridge(tiny_bundle, tmp_path / "state")
    try:
        settings = {"bridge_command": bridge_command(server.state_dir)}
        sim = run_to_the_end(simulate(project, STOP, settings))
        assert sim.reaper.messages == ["The AccompGen bridge has stopped."]
        assert server.process.wait(timeout=30) == 0
        sim = run_to_the_end(simulate(project, STOP, settings))
        assert sim.reaper.messages == ["No AccompGen bridge is running."]
    finally:
        server.stop()


def test_show_bridge_log_prints_its_end_and_where_it_is(project, running_bridge):
    sim = run_to_the_end(simulate(project, SHOW_LOG, {"bridge_command": bridge_command(running_bridge.state_dir)}))
    assert sim.reaper.messages == []
    (text,) = sim.reaper.console
    assert str(running_bridge.state_dir / "bridge.log") in text and "listening on 127.0.0.1" in text


def test_on_windows_the_console_less_launcher_is_used(project, tmp_path):
    """accompgen-bridge.exe opens a console window at every call, and closing it kills a bridge started from it."""
    scripts = tmp_path / "venv" / "Scripts"
    fake_program(scripts / "accompgen-bridge.exe")
    fake_program(scripts / "accompgen-bridgew.exe")
    sim = simulate(project, SETTINGS, os_name="Win64")
    sim.reaper.user_inputs = [(True, [str(scripts / "accompgen-bridge.exe"), "", "", "", "", "1"])]
    sim.run()
    assert saved(sim)["bridge_command"] == f'"{scripts / "accompgen-bridgew.exe"}"'


def test_a_pip_user_install_on_macos_is_found(project):
    home = project.path / "home"  # the simulated desktop's HOME
    program = fake_program(home / "Library" / "Python" / "3.12" / "bin" / "accompgen-bridge")
    sim = simulate(project, SETTINGS, os_name="macOS-arm64")
    sim.reaper.user_inputs = [(True, ["accompgen-bridge", "", "", "", "", "1"])]
    sim.run()
    assert saved(sim)["bridge_command"] == f'"{program}"'


def chosen(sim):
    return {key: value for key, value in saved(sim).items() if key in ("bundle", "device")}


def menus(sim):
    return [args[0].split("|") for name, args in sim.gfx.calls if name == "showmenu"]


def test_choose_bundle_and_device_lists_what_the_bridge_finds(project, tiny_bundle, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(tiny_bundle, state / "bundles" / "my choir")
    sim = simulate(project, CHOOSE, {"bridge_command": bridge_command(state)})
    sim.gfx.menu_answers = [2, 0]  # the second bundle; then the device menu is dismissed: nothing is stored
    run_to_the_end(sim)
    bundles, devices = menus(sim)
    assert bundles[0].startswith("chorales (chorales, int8") and bundles[1].startswith("my choir (")
    assert bundles[-1].startswith("Other folder") and devices[0] == "!auto" and "cpu" in devices
    assert chosen(sim) == {} and sim.reaper.messages == []
    sim = simulate(project, CHOOSE, {"bridge_command": bridge_command(state)})
    sim.gfx.menu_answers = [2, devices.index("cpu") + 1]
    run_to_the_end(sim)
    assert chosen(sim) == {"bundle": str(state / "bundles" / "my choir"), "device": "cpu"}
    assert sim.reaper.messages == [
        "AccompGen will generate with my choir on cpu. AccompGen: Start or check bridge starts a bridge with it."
    ]


def test_choosing_a_bundle_the_running_bridge_serves_needs_no_restart(project, tiny_bundle, tmp_path):
    from accompgen_bridge.providers import usable_devices

    from ..bridge.conftest import start_bridge

    state = tmp_path / "state"
    shutil.copytree(tiny_bundle, state / "bundles" / "my choir")
    server = start_bridge(tiny_bundle, state, "--found")
    try:
        for device, words in (("auto", "The running bridge serves it already."), ("cpu", "Stop bridge")):
            sim = simulate(project, CHOOSE, {"bridge_command": bridge_command(state)})
            sim.gfx.menu_answers = [2, usable_devices().index(device) + 1]  # my choir, after the installed one
            run_to_the_end(sim)
            assert chosen(sim)["bundle"] == str(state / "bundles" / "my choir")
            (message,) = sim.reaper.messages
            assert message.startswith(f"AccompGen will generate with my choir on {device}.") and words in message
    finally:
        server.stop()


def test_another_bundle_folder_can_be_picked_by_its_manifest(project, tiny_bundle, tmp_path):
    sim = simulate(project, CHOOSE, {"bridge_command": bridge_command(tmp_path / "state")})
    sim.gfx.menu_answers = [2, 1]  # "Other folder..." (after the installed bundle), then auto
    sim.reaper.files_chosen = [str(tiny_bundle / "manifest.yaml")]
    run_to_the_end(sim)
    assert chosen(sim) == {"bundle": str(tiny_bundle), "device": "auto"}


def test_start_serves_the_chosen_device(project, tiny_bundle, tmp_path):
    state = tmp_path / "state"
    settings = {"bridge_command": bridge_command(state) + " --log-level error", "bundle": str(tiny_bundle)}
    sim = simulate(project, START, {**settings, "device": "cpu"})
    try:
        run_to_the_end(sim)
        assert sim.reaper.messages[0].startswith("Started the AccompGen bridge")
        (serve,) = [argv for argv in sim.reaper.exec_argv if "serve" in argv]
        assert serve[serve.index("--device") + 1] == "cpu"
    finally:
        stop_started_bridge(sim, state)


def test_a_setting_holding_a_lone_quote_is_kept_and_shifts_no_box(project, tmp_path):
    """REAPER fills GetUserInputs' boxes by CSV-like rules: a default with an odd number of ' or " (Tom's bundle)
    runs on into the next box, and OK would store every later setting in the wrong place."""
    program = fake_program(tmp_path / "bin" / "accompgen-bridge")
    stored = {"bridge_command": f'"{program}"', "bundle": "/bundles/Tom's 12\" mix", "seed": "7", "variations": "2"}
    sim = simulate(project, SETTINGS, stored)
    sim.reaper.user_inputs = [(True, None)]  # OK, nothing typed
    sim.run()
    (shown,) = sim.reaper.shown
    assert shown[2:] == ["", "", "7", "2"]  # every box holds its own setting
    assert {key: saved(sim)[key] for key in stored} == stored
