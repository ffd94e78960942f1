"""What differs between the REAPER versions a user may have: functions that do not exist yet, and Lua 5.3."""

import pytest

from .conftest import GENERATE, SCRIPTS, bridge_command, simulate, submitted_requests
from .simulator import VERSIONS, Project, ReaperVersion, Simulation

REAPER_6 = VERSIONS[0]
REAPER_7_0 = VERSIONS[1]


def test_a_function_newer_than_the_reaper_is_nil_as_in_that_reaper(tmp_path):
    sim = Simulation(Project(tmp_path), SCRIPTS / "AccompGen - Settings.lua", version=REAPER_7_0)
    assert sim.lua.execute("return reaper.InsertTrackInProject") is None
    assert sim.lua.execute("return reaper.APIExists('InsertTrackInProject')") is False
    assert sim.lua.execute("return reaper.APIExists('InsertTrackAtIndex')") is True
    assert sim.lua.execute("return reaper.GetAppVersion()") == "7.0/linux-x86_64"
    latest = Simulation(Project(tmp_path), SCRIPTS / "AccompGen - Settings.lua")
    assert latest.lua.execute("return reaper.APIExists('InsertTrackInProject')") is True


@pytest.mark.parametrize(("version", "lua"), [(REAPER_6, "Lua 5.3"), (REAPER_7_0, "Lua 5.4")])
def test_each_reaper_runs_its_own_lua(tmp_path, version, lua):
    sim = Simulation(Project(tmp_path), SCRIPTS / "AccompGen - Settings.lua", version=version)
    assert sim.lua.execute("return _VERSION") == lua


def test_an_old_reaper_is_told_the_version_needed_before_any_work(project, vocal_file):
    track = project.add_track("Vocals")
    project.add_audio_item(track, vocal_file, 0.0, 1.0).selected = True
    sim = simulate(project, GENERATE, {"bridge_command": "accompgen-bridge"}, version=ReaperVersion("5.99", "5.3"))
    sim.run()
    sim.run_deferred()
    assert sim.reaper.messages == [
        "AccompGen needs REAPER 6.0 or newer; this is REAPER 5.99/linux-x86_64. Update REAPER from reaper.fm."
    ]
    assert sim.reaper.exec_calls == [] and sim.reaper.commands == []


def test_on_reaper_6_each_run_draws_a_new_seed(project, vocal_file, running_bridge):
    """Lua 5.3 starts every script with the same random sequence: unseeded, a blank seed would repeat."""
    track = project.add_track("Vocals")
    project.add_audio_item(track, vocal_file, 0.0, 0.5).selected = True
    for _ in range(2):
        sim = simulate(
            project, GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)}, version=REAPER_6
        )
        sim.run()
        sim.run_deferred(max_cycles=3000)
    first, second = submitted_requests(running_bridge.state_dir)[-2:]
    assert first["seed"] != second["seed"]


@pytest.mark.parametrize("version", [REAPER_6, REAPER_7_0], ids=lambda v: f"reaper{v.number}")
def test_before_7_18_the_track_goes_into_the_jobs_tab_and_the_users_tab_stays_in_front(
    project, vocal_file, running_bridge, tmp_path, version
):
    """Without InsertTrackInProject, InsertTrackAtIndex inserts into the tab in front: the script brings the job's
    tab forward for the insert and gives the user back the tab they were working in."""
    other = Project(tmp_path / "Other song")
    other.add_track("Piano")
    track = project.add_track("Vocals")
    project.add_audio_item(track, vocal_file, 0.0, 1.0).selected = True
    sim = simulate(
        [project, other], GENERATE, {"bridge_command": bridge_command(running_bridge.state_dir)}, version=version
    )
    sim.run()
    sim.reaper.current = other
    sim.run_deferred(max_cycles=3000)
    assert [t.name for t in project.tracks] == ["Vocals", "Vocals - accompaniment"]
    assert [t.name for t in other.tracks] == ["Piano"] and sim.reaper.current is other
