"""The simulator is strict, and the library's pieces hold on their own."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lupa import lua53, lua54

from .conftest import SCRIPTS
from .simulator import VERSIONS, ApiError, Project, Simulation, split_posix, split_windows


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda version: f"reaper{version.number}")
def lua(request, tmp_path_factory):
    """One Lua state per modelled REAPER for the module: the library holds no state between calls."""
    project = Project(tmp_path_factory.mktemp("project"))
    sim = Simulation(project, SCRIPTS / "AccompGen - Settings.lua", version=request.param)
    lib = sim.lua.execute(f"return dofile('{SCRIPTS / 'accompgen_lib.lua'}')")
    return sim, lib


REFUSED = (ApiError, lua53.LuaError, lua54.LuaError)  # raised in Python or passed on through Lua


def test_unknown_names_and_wrong_types_fail(lua):
    sim, _ = lua
    with pytest.raises(REFUSED, match="does not exist in REAPER"):
        sim.lua.execute("reaper.MakeItSound()")
    with pytest.raises(REFUSED, match="must be integer"):
        sim.lua.execute("reaper.GetSelectedMediaItem(0, 'first')")
    with pytest.raises(REFUSED, match="takes 2 arguments"):
        sim.lua.execute("reaper.GetSelectedMediaItem(0)")
    with pytest.raises(REFUSED, match=r"gfx\.drawtext does not exist"):
        sim.lua.execute("gfx.drawtext('x')")
    sim.lua.execute("gfx.drawstr('x')")  # absent from the signatures file, present in REAPER
    with pytest.raises(REFUSED, match="not a gfx variable"):
        sim.lua.execute("gfx.colour = 1")


def test_the_library_runs_under_each_reapers_lua(lua):
    sim, _ = lua
    assert sim.lua.execute("return _VERSION") == f"Lua {sim.reaper.version.lua}"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=20),
    lambda children: (
        st.lists(children, min_size=1, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, min_size=1, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=100)
@given(JSON_VALUES)
def test_json_decoding_matches_python(lua, value):
    import json

    sim, lib = lua
    decoded, error = lib.json_decode(json.dumps(value)), None
    assert error is None
    assert to_python(decoded, lib, sim.lua.eval("rawequal")) == value


def to_python(value, lib, rawequal):
    if rawequal(value, lib.null):
        return None
    if hasattr(value, "items"):
        keys = list(value.keys())
        if keys and all(isinstance(k, int) for k in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
            return [to_python(value[k], lib, rawequal) for k in sorted(keys)]
        return {str(k): to_python(v, lib, rawequal) for k, v in value.items()}
    return value


@pytest.mark.parametrize("text", ["{", '{"a" 1}', "[1,]", '"open', "nul", "{} x"])
def test_bad_json_is_an_error_not_a_crash(lua, text):
    _, lib = lua
    value, error = lib.json_decode(text)
    assert value is None and error


ARGUMENTS = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)


@settings(max_examples=200)
@given(ARGUMENTS)
def test_posix_quoting_survives_reapers_own_splitting(lua, arg):
    _, lib = lua
    result = lib.quote(arg, False)  # Lua's one value comes back bare, two as a tuple
    quoted, problem = result if isinstance(result, tuple) else (result, None)
    if all(mark in arg for mark in "\"'`"):
        assert quoted is None and "REAPER cannot pass it" in problem
    else:
        assert split_posix(f"prog {quoted} next") == ["prog", arg, "next"]


@settings(max_examples=200)
@given(ARGUMENTS)
def test_windows_quoting_follows_the_c_runtime_rules(lua, arg):
    _, lib = lua
    quoted = lib.quote(arg, True)
    assert split_windows(f"prog {quoted} next") == ["prog", arg, "next"]


def test_exec_process_is_no_shell_and_a_missing_program_gives_nil(tmp_path):
    sim = Simulation(Project(tmp_path), SCRIPTS / "AccompGen - Settings.lua")
    assert sim.lua.execute("return reaper.ExecProcess('/bin/echo $HOME \\\\x `a b`', 5000)") == "0\n$HOME \\x a b\n"
    assert sim.lua.execute("return reaper.ExecProcess('accompgen-bridge-nowhere ping', 5000)") is None
    assert sim.lua.execute("return reaper.ExecProcess('env', 5000)").count("PATH=/usr/bin:/bin:/usr/sbin:/sbin") == 1


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (["", "", "3", "0.9", "", "1"], "bridge command"),
        (["x", "", "30", "0.9", "", "1"], "CFG scale"),
        (["x", "", "3", "hot", "", "1"], "Temperature"),
        (["x", "", "3", "0.9", "4.5", "1"], "Seed"),
        (["x", "", "3", "0.9", "", "9"], "Variations"),
        (["x", "", "3", "0.9", "", "0"], "Variations"),
        (["x", "", "", "-1", "", "1"], "Temperature"),
    ],
)
def test_settings_validation(lua, fields, problem):
    sim, lib = lua
    keys = ["bridge_command", "bundle", "cfg_scale", "temperature", "seed", "variations"]
    table = sim.lua.table_from(dict(zip(keys, fields, strict=True)))
    cleaned, message = lib.validate_settings(table)
    assert cleaned is None and problem in message


def test_blank_sampling_settings_are_valid(lua):
    sim, lib = lua
    table = sim.lua.table_from({"bridge_command": "x", "cfg_scale": " ", "temperature": "", "variations": "1"})
    cleaned = lib.validate_settings(table)
    assert (cleaned.cfg_scale, cleaned.temperature) == ("", "")


@pytest.mark.parametrize(
    "lua_code",
    [
        "reaper.ExecProcess('/bin/true', 5000)",
        "os.execute('true')",
        "local s = 0 for i = 1, 1000000 do s = s + i end",
    ],
)
def test_a_tick_that_would_hold_reapers_ui_is_heavy(tmp_path, lua_code):
    sim = Simulation(Project(tmp_path), SCRIPTS / "AccompGen - Settings.lua")
    sim._tick(lambda: sim.lua.execute(lua_code))
    assert [index for index, _ in sim.heavy_ticks()] == [0]


def test_a_tick_that_starts_a_program_or_reads_a_status_file_is_light(tmp_path):
    status = tmp_path / "status.json"
    status.write_text('{"state": "running"}')
    sim = Simulation(Project(tmp_path), SCRIPTS / "AccompGen - Settings.lua")
    sim._tick(lambda: sim.lua.execute("reaper.ExecProcess('/bin/sleep 0.3', -1)"))
    sim._tick(lambda: sim.lua.execute(f"local f = io.open({str(status)!r}) f:read('a') f:close()"))
    assert sim.heavy_ticks() == []
    assert [cost.bytes_read for cost in sim.ticks] == [0, len(status.read_text())]


def test_reading_a_file_whole_in_one_tick_is_heavy(tmp_path):
    audio = tmp_path / "take.wav"
    audio.write_bytes(bytes(3 << 20))
    sim = Simulation(Project(tmp_path), SCRIPTS / "AccompGen - Settings.lua")
    sim._tick(lambda: sim.lua.execute(f"local f = io.open({str(audio)!r}, 'rb') f:read('a') f:close()"))
    assert sim.ticks[0].bytes_read == 3 << 20 and len(sim.heavy_ticks()) == 1


@pytest.mark.parametrize(
    ("os_name", "folder", "name"),
    [
        ("Linux", "/models/my choir/", "my choir"),
        ("Linux", "/models/my choir/.", "my choir"),
        ("Linux", "/models/./my choir", "my choir"),
        ("Linux", "/models/back\\slash", "back\\slash"),  # a legal letter in a POSIX name
        ("Linux", "", None),
        ("Linux", "/", None),
        ("Win64", "C:\\models\\my choir\\", "my choir"),
        ("Win64", "C:/models/my choir", "my choir"),
        ("macOS-arm64", "/Users/me/bundles/rock", "rock"),
    ],
)
def test_a_bundle_is_asked_for_by_its_folders_name(tmp_path, os_name, folder, name):
    sim = Simulation(Project(tmp_path), SCRIPTS / "AccompGen - Settings.lua", os_name=os_name)
    lib = sim.lua.execute(f"return dofile('{SCRIPTS / 'accompgen_lib.lua'}')")
    assert lib.bundle_name(sim.lua.table_from({"bundle": folder})) == name


def test_the_bundle_served_as_chosen_has_its_name_and_folder(lua):
    sim, lib = lua
    served = [{"name": "chorales", "path": "/pkg/bundles/chorales", "summary": "chorales, int8"}]
    reply = sim.lua.table_from({"bundles": sim.lua.table_from([sim.lua.table_from(b) for b in served])})
    for chosen, found in (("/pkg/bundles/chorales/", True), ("/home/me/chorales", False), ("/x/rock", False)):
        bundle = lib.served_as_chosen(reply, sim.lua.table_from({"bundle": chosen}))
        assert (bundle is not None) == found, chosen
