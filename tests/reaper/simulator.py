"""A strict REAPER stand-in for running the real ReaScripts under Lua 5.4 (lupa).

Every `reaper.*` and `gfx.*` name a script touches is checked against api-signatures.txt (REAPER 7.40): a name
REAPER does not have, or an argument of the wrong type, raises and fails the test. The project model holds
just what the scripts use: tracks, items, takes, sources (with sections), ExtState, undo blocks, UI-refresh
holds, deferred callbacks (run when the test says), gfx calls (recorded) and ExecProcess (runs the command).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from lupa.lua54 import LuaRuntime

SIGNATURES = Path(__file__).with_name("api-signatures.txt")
# Lua-only functions: the signature file lists them without their (callback) parameters.
UNCHECKED = {"atexit", "defer", "get_action_context", "gmem_attach", "gmem_read", "gmem_write", "runloop"}
GFX_VARIABLES = {"w", "h", "x", "y", "r", "g", "b", "a", "mouse_x", "mouse_y", "mouse_cap", "mouse_wheel", "texth"}


def load_signatures() -> dict[str, list[str] | None]:
    """'reaper.Name' or 'gfx.name' -> parameter types, or None where the file cannot tell."""
    signatures: dict[str, list[str] | None] = {}
    pattern = re.compile(r"^(reaper|gfx)\.(\w+)\((.*)\)")
    for line in SIGNATURES.read_text().splitlines():
        match = pattern.match(line)
        if not match:
            continue
        table, name, params = match.groups()
        types = [p.split(":", 1)[1].strip() for p in params.split(", ")] if params else []
        signatures[f"{table}.{name}"] = None if table == "gfx" or name in UNCHECKED else types
    return signatures


class ApiError(Exception):
    """A call REAPER would refuse: the test fails with this message."""


@dataclass(eq=False)
class Source:
    file: str
    length: float
    kind: str = "WAVE"  # WAVE, MIDI or SECTION
    parent: Source | None = None
    section: tuple[float, float, bool] = (0.0, 0.0, False)  # offset, length, reversed (SECTION only)


@dataclass(eq=False)
class Take:
    source: Source
    name: str = ""
    startoffs: float = 0.0
    playrate: float = 1.0
    fx: int = 0
    stretch_markers: int = 0


@dataclass(eq=False)
class Item:
    track: Track
    position: float = 0.0
    length: float = 0.0
    takes: list[Take] = field(default_factory=list)
    active: Take | None = None
    selected: bool = False


@dataclass(eq=False)
class Track:
    name: str = ""
    items: list[Item] = field(default_factory=list)


@dataclass(eq=False)
class Project:
    path: Path
    tracks: list[Track] = field(default_factory=list)

    def add_track(self, name: str) -> Track:
        track = Track(name)
        self.tracks.append(track)
        return track

    def add_audio_item(self, track: Track, file: Path, position: float, length: float, startoffs: float = 0.0) -> Item:
        info = sf.info(str(file))
        take = Take(Source(str(file), info.frames / info.samplerate), name=file.stem, startoffs=startoffs)
        item = Item(track, position, length, [take], take)
        track.items.append(item)
        return item

    def items(self) -> list[Item]:
        return [item for track in self.tracks for item in track.items]


TYPES = {
    "MediaTrack": Track,
    "MediaItem": Item,
    "MediaItem_Take": Take,
    "PCM_source": Source,
}


class Gfx:
    """gfx: variables scripts read and write, calls recorded; getchar answers from `keys`, then 0."""

    def __init__(self, signatures: dict[str, list[str] | None]):
        self._names = {name.split(".", 1)[1] for name in signatures if name.startswith("gfx.")}
        self.calls: list[tuple[str, tuple]] = []
        self.keys: list[int] = []
        self.open = False
        self.w = self.h = self.x = self.y = self.mouse_x = self.mouse_y = self.mouse_cap = self.mouse_wheel = 0
        self.r = self.g = self.b = self.a = 1.0
        self.texth = 15

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)  # Python's own protocol probes (lupa asks for __getitem__)
        if name not in self._names:
            raise ApiError(f"gfx.{name} does not exist in REAPER")
        return lambda *args: self._call(name, args)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and name not in GFX_VARIABLES | {"calls", "keys", "open"}:
            raise ApiError(f"gfx.{name} is not a gfx variable")
        object.__setattr__(self, name, value)

    def _call(self, name: str, args: tuple) -> Any:
        self.calls.append((name, args))
        if name == "init":
            self.open, self.w, self.h = True, int(args[1]), int(args[2])
        elif name == "quit":
            self.open = False
        elif name == "getchar":
            if not self.open:
                return -1
            return self.keys.pop(0) if self.keys else 0
        return None

    def texts(self) -> list[str]:
        return [" ".join(str(a) for a in args[1:]) for name, args in self.calls if name == "printf"]


class Reaper:
    """The `reaper` table. Public attributes hold what tests inspect."""

    def __init__(self, project: Project, script: Path, os_name: str = "Linux"):
        self._signatures = load_signatures()
        self._impl: dict[str, Callable[..., Any]] = {
            name[4:]: getattr(self, name) for name in dir(type(self)) if name.startswith("api_")
        }
        self.project = project
        self.script = script
        self.os_name = os_name
        self.ext_state: dict[tuple[str, str], str] = {}
        self.messages: list[str] = []
        self.console: list[str] = []
        self.user_inputs: list[tuple[bool, str]] = []  # answers GetUserInputs gives, in order
        self.user_input_calls: list[tuple[str, int, str, str]] = []
        self.deferred: list[Any] = []
        self.exit_hooks: list[Any] = []
        self.undo_open = 0
        self.undo_blocks: list[str] = []  # descriptions, one per closed block
        self.refresh_holds = 0
        self.commands: list[int] = []
        self.exec_calls: list[str] = []
        self.background: list[subprocess.Popen] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        key = f"reaper.{name}"
        if key not in self._signatures:
            raise ApiError(f"reaper.{name} does not exist in REAPER")
        if name not in self._impl:
            raise ApiError(f"reaper.{name} exists but this simulator does not model it: add it to the simulator")
        types, impl = self._signatures[key], self._impl[name]

        def checked(*args: Any) -> Any:
            if types is not None:
                self._check(name, types, args)
            return impl(*args)

        return checked

    @staticmethod
    def _check(name: str, types: list[str], args: tuple) -> None:
        required = [t for t in types if t != "optional"]
        if not len(required) <= len(args) <= len(types):
            raise ApiError(f"reaper.{name} takes {len(types)} arguments, got {len(args)}: {args!r}")
        for i, (kind, value) in enumerate(zip(types, args, strict=False)):
            if not _matches(kind, value):
                raise ApiError(f"reaper.{name} argument {i + 1} must be {kind}, got {type(value).__name__} {value!r}")

    # -- the script's own context -----------------------------------------------------------------------------

    def api_get_action_context(self) -> tuple:
        return (False, str(self.script), 0, 0, -1, -1, -1, "")

    def api_defer(self, fn: Any) -> None:
        self.deferred.append(fn)

    def api_atexit(self, fn: Any) -> None:
        self.exit_hooks.append(fn)

    def api_GetOS(self) -> str:
        return self.os_name

    def api_time_precise(self) -> float:
        return time.monotonic()

    def api_ShowMessageBox(self, msg: str, title: str, kind: int) -> int:
        self.messages.append(msg)
        return 1

    def api_ShowConsoleMsg(self, msg: str) -> None:
        self.console.append(msg)

    def api_GetUserInputs(self, title: str, n: int, captions: str, defaults: str) -> tuple[bool, str]:
        self.user_input_calls.append((title, n, captions, defaults))
        return self.user_inputs.pop(0) if self.user_inputs else (False, "")

    def api_GetExtState(self, section: str, key: str) -> str:
        return self.ext_state.get((section, key), "")

    def api_SetExtState(self, section: str, key: str, value: str, persist: bool) -> None:
        self.ext_state[(section, key)] = value

    def api_file_exists(self, path: str) -> bool:
        return Path(path).is_file()

    def api_ExecProcess(self, cmdline: str, timeout_ms: int) -> str | None:
        self.exec_calls.append(cmdline)
        if timeout_ms == -1:  # REAPER starts it and does not wait
            self.background.append(
                subprocess.Popen(cmdline, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            return None
        timeout = None if timeout_ms == 0 else timeout_ms / 1000
        try:
            done = subprocess.run(cmdline, shell=True, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return None
        return f"{done.returncode}\n{done.stdout}"

    # -- undo and refresh -------------------------------------------------------------------------------------

    def api_Undo_BeginBlock(self) -> None:
        self.undo_open += 1

    def api_Undo_EndBlock(self, description: str, flags: int) -> None:
        if self.undo_open == 0:
            raise ApiError("Undo_EndBlock without Undo_BeginBlock")
        self.undo_open -= 1
        self.undo_blocks.append(description)

    def api_PreventUIRefresh(self, count: int) -> None:
        self.refresh_holds += count
        if self.refresh_holds < 0:
            raise ApiError("PreventUIRefresh released more often than held")

    def api_UpdateArrange(self) -> None:
        pass

    # -- items, takes, sources --------------------------------------------------------------------------------

    def _selected(self) -> list[Item]:
        return [item for item in self.project.items() if item.selected]

    def api_CountSelectedMediaItems(self, proj: Any) -> int:
        return len(self._selected())

    def api_GetSelectedMediaItem(self, proj: Any, index: int) -> Item | None:
        selected = self._selected()
        return selected[index] if 0 <= index < len(selected) else None

    def api_SelectAllMediaItems(self, proj: Any, selected: bool) -> None:
        for item in self.project.items():
            item.selected = selected

    def api_SetMediaItemSelected(self, item: Item, selected: bool) -> None:
        item.selected = selected

    def api_GetActiveTake(self, item: Item) -> Take | None:
        return item.active

    def api_SetActiveTake(self, take: Take) -> None:
        for item in self.project.items():
            if take in item.takes:
                item.active = take

    def api_TakeIsMIDI(self, take: Take) -> bool:
        return take.source.kind == "MIDI"

    def api_GetMediaItemTake_Source(self, take: Take) -> Source:
        return take.source

    def api_GetMediaSourceParent(self, source: Source) -> Source | None:
        return source.parent

    def api_PCM_Source_GetSectionInfo(self, source: Source) -> tuple:
        if source.kind != "SECTION":
            return (False, 0.0, source.length, False)
        offset, length, reversed_ = source.section
        return (True, offset, length, reversed_)

    def api_GetMediaSourceFileName(self, source: Source) -> str:
        return source.file

    def api_GetMediaSourceLength(self, source: Source) -> tuple:
        return (source.length, False)  # (length, lengthIsQN)

    def api_GetMediaItemInfo_Value(self, item: Item, name: str) -> float:
        values = {"D_POSITION": item.position, "D_LENGTH": item.length, "B_UISEL": float(item.selected)}
        if name not in values:
            raise ApiError(f"GetMediaItemInfo_Value: the simulator has no {name}")
        return values[name]

    def api_SetMediaItemInfo_Value(self, item: Item, name: str, value: float) -> bool:
        if name == "D_POSITION":
            item.position = value
        elif name == "D_LENGTH":
            item.length = value
        else:
            raise ApiError(f"SetMediaItemInfo_Value: the simulator has no {name}")
        return True

    def api_GetMediaItemTakeInfo_Value(self, take: Take, name: str) -> float:
        values = {"D_STARTOFFS": take.startoffs, "D_PLAYRATE": take.playrate}
        if name not in values:
            raise ApiError(f"GetMediaItemTakeInfo_Value: the simulator has no {name}")
        return values[name]

    def api_GetSetMediaItemTakeInfo_String(self, take: Take, name: str, value: str, set_value: bool) -> tuple:
        if name != "P_NAME":
            raise ApiError(f"GetSetMediaItemTakeInfo_String: the simulator has no {name}")
        if set_value:
            take.name = value
        return (True, take.name)

    def api_TakeFX_GetCount(self, take: Take) -> int:
        return take.fx

    def api_GetTakeNumStretchMarkers(self, take: Take) -> int:
        return take.stretch_markers

    def api_GetMediaItem_Track(self, item: Item) -> Track:
        return item.track

    def api_AddMediaItemToTrack(self, track: Track) -> Item:
        item = Item(track)
        track.items.append(item)
        return item

    def api_AddTakeToMediaItem(self, item: Item) -> Take:
        take = Take(Source("", 0.0))
        item.takes.append(take)
        item.active = item.active or take
        return take

    def api_PCM_Source_CreateFromFile(self, filename: str) -> Source:
        info = sf.info(filename)
        return Source(filename, info.frames / info.samplerate)

    def api_SetMediaItemTake_Source(self, take: Take, source: Source) -> bool:
        take.source = source
        return True

    def api_Main_OnCommand(self, command: int, flag: int) -> None:
        self.commands.append(command)
        actions = {40601: self._render_to_new_take, 40129: self._delete_active_take}
        if command not in actions:
            raise ApiError(f"the simulator does not model action {command}")
        for item in self._selected():
            actions[command](item)

    def _render_to_new_take(self, item: Item) -> None:
        """What the listener hears: the section, offset, playrate, reversal and looping applied (FX are not)."""
        take = item.active
        source, offset, reversed_ = take.source, 0.0, False
        while source.parent is not None:
            offset += source.section[0]
            reversed_ |= source.section[2]
            source = source.parent
        audio, rate = sf.read(source.file, dtype="float32", always_2d=True)
        start = round((offset + take.startoffs) * rate)
        positions = start + (np.arange(round(item.length * rate)) * take.playrate).astype(int)
        rendered = audio[positions % len(audio)]
        if reversed_:
            rendered = rendered[::-1]
        path = self.project.path / f"{take.name or 'take'}-render-{len(item.takes)}.wav"
        sf.write(path, rendered, rate)
        new = Take(Source(str(path), item.length), name=f"{take.name} render")
        item.takes.append(new)
        item.active = new

    def _delete_active_take(self, item: Item) -> None:
        item.takes.remove(item.active)
        item.active = item.takes[0] if item.takes else None

    # -- tracks -----------------------------------------------------------------------------------------------

    def api_GetMediaTrackInfo_Value(self, track: Track, name: str) -> float:
        if name != "IP_TRACKNUMBER":
            raise ApiError(f"GetMediaTrackInfo_Value: the simulator has no {name}")
        return float(self.project.tracks.index(track) + 1)

    def api_GetSetMediaTrackInfo_String(self, track: Track, name: str, value: str, set_value: bool) -> tuple:
        if name != "P_NAME":
            raise ApiError(f"GetSetMediaTrackInfo_String: the simulator has no {name}")
        if set_value:
            track.name = value
        return (True, track.name)

    def api_InsertTrackAtIndex(self, index: int, defaults: bool) -> None:
        self.project.tracks.insert(index, Track())

    def api_GetTrack(self, proj: Any, index: int) -> Track | None:
        return self.project.tracks[index] if 0 <= index < len(self.project.tracks) else None

    def api_CountTracks(self, proj: Any) -> int:
        return len(self.project.tracks)


def _matches(kind: str, value: Any) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "ReaProject":
        return value is None or value == 0 or isinstance(value, Project)
    if kind in TYPES:
        return isinstance(value, TYPES[kind])
    return True  # optional, identifier and the like


class Simulation:
    """One script run: the Lua state, the reaper and gfx tables, and the defer loop the test drives."""

    def __init__(self, project: Project, script: Path, os_name: str = "Linux"):
        self.lua = LuaRuntime(unpack_returned_tuples=True)
        self.reaper = Reaper(project, script, os_name)
        self.gfx = Gfx(self.reaper._signatures)
        self.lua.globals().reaper = self.reaper
        self.lua.globals().gfx = self.gfx
        self.script = script

    def run(self) -> None:
        self.lua.execute(f"dofile({_lua_string(str(self.script))})")

    def run_deferred(
        self, max_cycles: int = 10_000, cycle_s: float = 0.01, on_cycle: Callable[[int], None] | None = None
    ) -> int:
        """Run deferred callbacks one REAPER cycle at a time until none is left; returns the cycles run."""
        for cycle in range(max_cycles):
            if not self.reaper.deferred:
                self._exit()
                return cycle
            if on_cycle:
                on_cycle(cycle)
            pending, self.reaper.deferred = self.reaper.deferred, []
            for fn in pending:
                fn()
            time.sleep(cycle_s)
        raise AssertionError(f"the script was still deferring after {max_cycles} cycles")

    def _exit(self) -> None:
        hooks, self.reaper.exit_hooks = self.reaper.exit_hooks, []
        for hook in hooks:
            hook()


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
