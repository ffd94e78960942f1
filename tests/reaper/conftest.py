"""A real bridge for the ReaScripts to talk to, and projects for them to edit."""

from __future__ import annotations

import json
import shlex
import sqlite3
import sys
from pathlib import Path

import pytest
import soundfile as sf

from accompgen.core.synth import sung_phrase

from ..bridge.conftest import start_bridge
from .simulator import LATEST, VERSIONS, Project, ReaperVersion, Simulation

SCRIPTS = Path(__file__).resolve().parents[2] / "reaper_scripts" / "AccompGen"
GENERATE = SCRIPTS / "AccompGen - Generate accompaniment for selected items.lua"
SETTINGS = SCRIPTS / "AccompGen - Settings.lua"
START = SCRIPTS / "AccompGen - Start or check bridge.lua"
STOP = SCRIPTS / "AccompGen - Stop bridge.lua"
SHOW_LOG = SCRIPTS / "AccompGen - Show bridge log.lua"
REGENERATE = SCRIPTS / "AccompGen - Regenerate this take.lua"
CHOOSE = SCRIPTS / "AccompGen - Choose bundle and device.lua"
TIME_SELECTION = SCRIPTS / "AccompGen - Generate accompaniment for time selection.lua"


def bridge_command(state_dir: Path) -> str:
    """The bridge CLI of this environment, absolute, pointed at one state directory, as a user would set it."""
    return shlex.join([sys.executable, "-m", "accompgen_bridge.cli", "--state-dir", str(state_dir)])


def submitted_requests(state_dir: Path) -> list[dict]:
    """What the bridge's job store holds for every job, oldest first: the request as the bridge received it."""
    with sqlite3.connect(state_dir / "jobs.sqlite3") as db:
        return [json.loads(row[0]) for row in db.execute("SELECT request FROM jobs ORDER BY created")]


@pytest.fixture(scope="module")
def running_bridge(tiny_bundle, tmp_path_factory):
    server = start_bridge(tiny_bundle, tmp_path_factory.mktemp("reaper-bridge"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vocal_file(tmp_path_factory) -> Path:
    """20 s of singing in a folder and file name with spaces, both quotes, a comma and non-ASCII letters."""
    folder = tmp_path_factory.mktemp("audio") / 'my session\'s "best" audio, take 2'
    folder.mkdir()
    path = folder / "Lead vocal “take 3” é.wav"
    sf.write(path, sung_phrase(20.0, 44100), 44100)
    return path


@pytest.fixture
def project(tmp_path) -> Project:
    return Project(tmp_path / "Song")


_modelled = [LATEST]  # the REAPER the next simulation models: set per test by `each_reaper_version`


@pytest.fixture(params=VERSIONS, ids=lambda version: f"reaper{version.number}")
def each_reaper_version(request) -> ReaperVersion:
    """Runs the test once per modelled REAPER version (and its Lua): use with pytest.mark.usefixtures."""
    _modelled[0] = request.param
    yield request.param
    _modelled[0] = LATEST


def simulate(
    project: Project | list[Project],
    script: Path,
    settings: dict[str, str] | None = None,
    os_name: str = "Linux",
    version: ReaperVersion | None = None,
) -> Simulation:
    sim = Simulation(project, script, os_name, version or _modelled[0])
    for key, value in (settings or {}).items():
        sim.reaper.ext_state[("AccompGen", key)] = value
    return sim
