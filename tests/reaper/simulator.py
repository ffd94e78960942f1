"""A strict REAPER stand-in for running the real ReaScripts under Lua (lupa): it models REAPER, not Linux.

Every `reaper.*` and `gfx.*` name a script touches is checked against api-signatures.txt (REAPER 7.40): a name
REAPER does not have, or an argument of the wrong type, raises and fails the test, even inside the script's own
pcall. What the real REAPER does and a kinder stand-in would hide:
- Versions: a function newer than the modelled REAPER is nil (calling it is "attempt to call a nil value"), and
  APIExists says so; REAPER 6 embeds Lua 5.3 (random numbers unseeded: every run draws the same), REAPER 7 Lua 5.4.
- Undo blocks and PreventUIRefresh must be closed within the defer cycle that opened them.
- ExecProcess is no shell. On macOS and Linux REAPER splits the line itself (", ' and ` group words, nothing else
  is special); on Windows the program splits it by the C runtime's rules. The program runs without a shell, with
  the PATH a GUI app gets (macOS Finder: /usr/bin:/bin:/usr/sbin:/sbin); one that cannot be started gives nil.
  Waiting calls block the UI: the simulator counts what every script tick costs REAPER's UI thread (Lua
  instructions, programs waited on, bytes read), so a slow tick fails the test on any machine, however loaded.
- Several projects (tabs); pointers are only valid in their own project, and a deleted track, item or take or a
  closed project used in a call fails the test (REAPER would crash or corrupt the project). Opening another .rpp
  into a tab keeps its ReaProject* but replaces everything in it.
- Takes have pitch, channel mode, Volume/Pitch/Mute envelopes and sections that loop over their own length; tracks
  have FX (pitch correction) that action 40601 does not render and 40209 does; renders go to the project's recording
  path with a .reapeaks file beside them; sources may be in formats only REAPER decodes (M4A, ...): their file is
  not audio to libsndfile, and PCM_Source_CreateFromFile gives nil for a file it cannot read.
- Tracks sit in folders (I_FOLDERDEPTH); a new track gets the user's default settings only when asked for them.
- On Windows, a file a script has open cannot be replaced: the simulator records whether the script leaves a
  status file open past its tick.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from lupa import lua53, lua54

SIGNATURES = Path(__file__).with_name("api-signatures.txt")
# Lua-only functions: the signature file lists them without their (callback) parameters.
UNCHECKED = {"atexit", "defer", "get_action_context", "gmem_attach", "gmem_read", "gmem_write", "runloop"}
GFX_VARIABLES = {"w", "h", "x", "y", "r", "g", "b", "a", "mouse_x", "mouse_y", "mouse_cap", "mouse_wheel", "texth"}
GFX_MISSING_FROM_SIGNATURES = {"drawstr"}  # exists in REAPER; the signatures file omits it
GUI_PATH = {  # the PATH REAPER sees when started from the desktop
    "Linux": "/usr/bin:/bin:/usr/sbin:/sbin",
    "macOS-arm64": "/usr/bin:/bin:/usr/sbin:/sbin",
    "Win64": r"C:\Windows\system32;C:\Windows",
}


@dataclass(frozen=True)
class ReaperVersion:
    """One REAPER release as a script sees it: which functions exist, and which Lua runs the script."""

    number: str
    lua: str  # "5.3" (REAPER 6) or "5.4" (REAPER 7)

    def __str__(self) -> str:
        return f"REAPER {self.number} (Lua {self.lua})"

    def has(self, function: str) -> bool:
        added = ADDED_IN.get(function)
        return added is None or tuple(int(part) for part in self.number.split(".")) >= added


# Functions the scripts may touch that are newer than REAPER 6.0 (api-signatures.txt is 7.40's list). From REAPER's
# API documentation changelogs: InsertTrackInProject arrived in 7.18.
ADDED_IN = {"InsertTrackInProject": (7, 18)}
VERSIONS = (ReaperVersion("6.83", "5.3"), ReaperVersion("7.0", "5.4"), ReaperVersion("7.40", "5.4"))
LATEST = VERSIONS[-1]
LUA_RUNTIMES = {"5.3": lua53.LuaRuntime, "5.4": lua54.LuaRuntime}
PLATFORMS = {"Linux": "linux-x86_64", "macOS-arm64": "macOS-arm64", "Win64": "x64"}  # as GetAppVersion names them


@dataclass(frozen=True)
class TickCost:
    """What one script run or deferred callback made REAPER's UI thread do. Counted rather than timed: a count is
    the same on a loaded two-core test machine as on a musician's laptop, and it is the script's alone (the
    simulator's own Python work and the bridge working beside the test are not in it)."""

    kilo_instructions: int = 0  # Lua VM instructions, in thousands
    programs_waited: int = 0  # programs run to completion (ExecProcess with a timeout, os.execute, io.popen)
    bytes_read: int = 0  # from files the script opened

    def __sub__(self, earlier: TickCost) -> TickCost:
        return TickCost(*(now - then for now, then in zip(astuple(self), astuple(earlier), strict=True)))

    def exceeds(self, budget: TickCost) -> bool:
        return any(cost > limit for cost, limit in zip(astuple(self), astuple(budget), strict=True))


# The most a script may do in one tick. REAPER's Lua 5.4 runs some 50 million instructions a second on an old
# laptop, so 500 thousand are about 10 ms of a 30 Hz UI cycle; a program waited on blocks for its whole run (a
# Python start alone takes a second on a slow disk); a megabyte is a status file many times over, not audio.
TICK_BUDGET = TickCost(kilo_instructions=500, programs_waited=0, bytes_read=1 << 20)


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
    for name in GFX_MISSING_FROM_SIGNATURES:
        signatures[f"gfx.{name}"] = None
    return signatures


class ApiError(Exception):
    """A call REAPER would refuse: the test fails with this message."""


def split_posix(line: str) -> list[str]:
    """REAPER's own splitting on macOS and Linux: ", ' and ` group words; backslashes are plain characters."""
    words, i = [], 0
    while i < len(line):
        c = line[i]
        if c.isspace():
            i += 1
        elif c in "\"'`":
            close = line.find(c, i + 1)
            close = len(line) if close < 0 else close
            words.append(line[i + 1 : close])
            i = close + 1
        else:
            match = re.compile(r"[\s\"'`]").search(line, i)
            stop = match.start() if match else len(line)
            words.append(line[i:stop])
            i = stop
    return words


def split_windows(line: str) -> list[str]:
    """How a Windows program splits its command line (CommandLineToArgvW / the C runtime): double quotes group,
    2n backslashes before a quote give n and the quote counts, 2n+1 give n and a literal quote."""
    words, current, quoted, i, started = [], [], False, 0, False
    while i < len(line):
        c = line[i]
        if c == "\\":
            run = len(line) - i - len(line[i:].lstrip("\\"))
            if i + run < len(line) and line[i + run] == '"':
                current.append("\\" * (run // 2))
                if run % 2:
                    current.append('"')
                    i += run + 1
                else:
                    i += run
                started = True
                continue
            current.append("\\" * run)
            i += run
            started = True
        elif c == '"':
            quoted, started = not quoted, True
            i += 1
        elif c in " \t" and not quoted:
            if started:
                words.append("".join(current))
                current, started = [], False
            i += 1
        else:
            current.append(c)
            started = True
            i += 1
    if started:
        words.append("".join(current))
    return words


@dataclass(eq=False)
class Source:
    file: str
    length: float
    kind: str = "WAVE"  # WAVE, MIDI, SECTION, or another format REAPER decodes itself (MP4 for M4A, ...)
    parent: Source | None = None
    section: tuple[float, float, bool] = (0.0, 0.0, False)  # offset, length, reversed (SECTION only)
    decoded: str | None = None  # for formats libsndfile cannot read: a WAV of what REAPER's decoder gives
    peaks: bool = False  # REAPER has built its peaks (the waveform the user sees)


@dataclass(eq=False)
class Envelope:
    active: bool = True
    points: list[tuple[float, float]] = field(default_factory=list)  # (time, value): gain, semitones or mute


def new_guid() -> str:
    """A GUID as REAPER writes it: {8-4-4-4-12} in capitals."""
    return "{" + str(uuid.uuid4()).upper() + "}"


@dataclass(eq=False)
class Take:
    source: Source
    name: str = ""
    startoffs: float = 0.0
    playrate: float = 1.0
    pitch: float = 0.0  # semitones
    chanmode: int = 0  # 0 normal, 1 reverse stereo, 2 downmix, 3 left, 4 right
    fx: int = 0
    stretch_markers: int = 0
    envelopes: dict[str, Envelope] = field(default_factory=dict)  # "Volume" (gain), "Pitch" (semitones), "Mute"


@dataclass(eq=False)
class Item:
    track: Track
    position: float = 0.0
    length: float = 0.0
    takes: list[Take] = field(default_factory=list)
    active: Take | None = None
    selected: bool = False
    guid: str = field(default_factory=new_guid)
    ext: dict[str, str] = field(default_factory=dict)  # P_EXT: what scripts keep with the item


@dataclass(eq=False)
class TrackFx:
    name: str
    pitch: float = 0.0  # semitones it shifts by: pitch correction, as the listener hears it
    enabled: bool = True


@dataclass(eq=False)
class Track:
    name: str = ""
    items: list[Item] = field(default_factory=list)
    fx: list[TrackFx] = field(default_factory=list)
    fx_enabled: bool = True  # the chain's own bypass switch
    folder_depth: int = 0  # 1 folder parent, 0 normal, -n last track of n folders
    defaults: bool = True  # made with the user's default track settings (False: InsertTrack... asked for none)
    selected: bool = False
    muted: bool = False
    guid: str = field(default_factory=new_guid)


@dataclass(eq=False)
class Project:
    """One project tab. `path` is its folder; `saved` says whether it has a file (else it is untitled)."""

    path: Path
    tracks: list[Track] = field(default_factory=list)
    saved: bool = True
    undo_open: int = 0
    undo_blocks: list[str] = field(default_factory=list)  # descriptions, one per closed block
    time_selection: tuple[float, float] = (0.0, 0.0)  # start, end; equal: none

    def add_track(self, name: str, folder_depth: int = 0) -> Track:
        track = Track(name, folder_depth=folder_depth)
        self.tracks.append(track)
        return track

    def delete_track(self, track: Track) -> None:
        self.tracks.remove(track)

    def open_into_tab(self, path: Path) -> None:
        """File > Open of another .rpp into this tab: the ReaProject* stays, everything it held is gone."""
        self.path, self.tracks, self.saved, self.undo_blocks = path, [], True, []

    def add_audio_item(self, track: Track, file: Path, position: float, length: float, startoffs: float = 0.0) -> Item:
        info = sf.info(str(file))
        take = Take(Source(str(file), info.frames / info.samplerate), name=file.stem, startoffs=startoffs)
        item = Item(track, position, length, [take], take)
        track.items.append(item)
        return item

    def items(self) -> list[Item]:
        return [item for track in self.tracks for item in track.items]

    @property
    def file(self) -> str:
        return str(self.path / "project.rpp") if self.saved else ""

    @property
    def media_path(self) -> Path:
        return self.path / "Media"


TYPES = {
    "MediaTrack": Track,
    "MediaItem": Item,
    "MediaItem_Take": Take,
    "PCM_source": Source,
    "TrackEnvelope": Envelope,
}


class Gfx:
    """gfx: variables scripts read and write, calls recorded; getchar answers from `keys`, then 0."""

    def __init__(self, signatures: dict[str, list[str] | None]):
        self._names = {name.split(".", 1)[1] for name in signatures if name.startswith("gfx.")}
        self.calls: list[tuple[str, tuple]] = []
        self.keys: list[int] = []
        self.menu_answers: list[int] = []  # what the user picks in each popup menu (1-based; 0: none)
        self.open = False
        self.w = self.h = self.x = self.y = self.mouse_x = self.mouse_y = self.mouse_cap = self.mouse_wheel = 0
        self.r = self.g = self.b = self.a = 1.0
        self.texth = 15

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)  # Python's own protocol probes (lupa asks for __getitem__)
        if name not in self._names:
            raise ApiError(f"gfx.{name} does not exist in REAPER")
        return functools.partial(self._call, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and name not in GFX_VARIABLES | {"calls", "keys", "menu_answers", "open"}:
            raise ApiError(f"gfx.{name} is not a gfx variable")
        object.__setattr__(self, name, value)

    def _call(self, name: str, *args: Any) -> Any:
        self.calls.append((name, args))
        if name == "init":
            self.open, self.w, self.h = True, int(args[1]), int(args[2])
        elif name == "quit":
            self.open = False
        elif name == "showmenu":
            if not self.menu_answers:
                raise ApiError(f"the script showed a menu the test did not answer: {args[0]}")
            return self.menu_answers.pop(0)
        elif name == "getchar":
            if not self.open:
                return -1
            return self.keys.pop(0) if self.keys else 0
        return None

    def texts(self) -> list[str]:
        return [str(args[0]) for name, args in self.calls if name == "drawstr"]


class Reaper:
    """The `reaper` table. Public attributes hold what tests inspect."""

    def __init__(
        self, projects: list[Project], script: Path, os_name: str, resource_path: Path, version: ReaperVersion
    ):
        self._signatures = load_signatures()
        self.version = version
        self.api_errors: list[str] = []  # every refused call, also those a script's pcall caught
        self._impl: dict[str, Callable[..., Any]] = {
            name[4:]: getattr(self, name) for name in dir(type(self)) if name.startswith("api_")
        }
        self.projects = list(projects)  # open tabs
        self.current = projects[0]
        self.script = script
        self.os_name = os_name
        self.resource_path = resource_path
        self.ext_state: dict[tuple[str, str], str] = {}
        self.messages: list[str] = []
        self.answers: list[int] = []  # what ShowMessageBox answers to questions (yes/no boxes), in order
        self.console: list[str] = []
        self.user_inputs: list[tuple[bool, list[str]]] = []  # OK or cancel, and the text of every box
        self.user_input_calls: list[tuple[str, int, str, str]] = []
        self.shown: list[list[str]] = []  # what each GetUserInputs dialog's boxes held
        self.files_chosen: list[str] = []
        self.deferred: list[Any] = []
        self.exit_hooks: list[Any] = []
        self.refresh_holds = 0
        self.commands: list[int] = []
        self.exec_calls: list[str] = []  # command lines, as the script built them
        self.exec_argv: list[list[str]] = []  # what the program received, split as REAPER splits
        self.background: list[subprocess.Popen] = []
        self.programs_waited = 0  # programs ExecProcess ran to completion: each blocks REAPER's UI for its run

    @property
    def project(self) -> Project:
        return self.current

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        key = f"reaper.{name}"
        if key not in self._signatures:
            raise self._refuse(f"reaper.{name} does not exist in REAPER")
        if not self.version.has(name):
            return None  # as in that REAPER: the script sees nil
        if name not in self._impl:
            raise self._refuse(f"reaper.{name} exists but this simulator does not model it: add it to the simulator")
        types, impl = self._signatures[key], self._impl[name]

        def checked(*args: Any) -> Any:
            if types is not None:
                self._check(name, types, args)
            try:
                return impl(*args)
            except ApiError as err:
                raise self._refuse(str(err)) from None

        return checked

    def override(self, name: str, impl: Callable[..., Any]) -> None:
        """Let REAPER answer `name` with `impl` from now on: a failure to model (a full disk, a file it cannot read)."""
        self._impl[name] = impl

    def _refuse(self, message: str) -> ApiError:
        self.api_errors.append(message)
        return ApiError(message)

    def _check(self, name: str, types: list[str], args: tuple) -> None:
        required = [t for t in types if t != "optional"]
        if not len(required) <= len(args) <= len(types):
            raise self._refuse(f"reaper.{name} takes {len(types)} arguments, got {len(args)}: {args!r}")
        for i, (kind, value) in enumerate(zip(types, args, strict=False)):
            if not _matches(kind, value):
                message = f"reaper.{name} argument {i + 1} must be {kind}, got {type(value).__name__} {value!r}"
                raise self._refuse(message)
            if name not in ("ValidatePtr", "ValidatePtr2"):
                self._alive(name, value)

    def _alive(self, name: str, value: Any) -> None:
        """A pointer to something deleted, or into a closed project, would crash REAPER."""
        if isinstance(value, Project) and value not in self.projects:
            raise self._refuse(f"reaper.{name} was given a project that has been closed")
        if isinstance(value, Track) and self._project_of_track(value) is None:
            raise self._refuse(f"reaper.{name} was given a track that has been deleted")
        if isinstance(value, Item) and self._item_alive(value) is None:
            raise self._refuse(f"reaper.{name} was given an item that has been deleted")
        if isinstance(value, Take) and not any(value in item.takes for item in self._all_items()):
            raise self._refuse(f"reaper.{name} was given a take that has been deleted")

    def _all_items(self) -> list[Item]:
        return [item for project in self.projects for item in project.items()]

    def _item_alive(self, item: Item) -> Project | None:
        return next((p for p in self.projects if item in p.items()), None)

    def _project_of_track(self, track: Track) -> Project | None:
        return next((p for p in self.projects if track in p.tracks), None)

    def _proj(self, proj: Any) -> Project:
        return self.current if proj is None or proj == 0 else proj

    # -- the script's own context -----------------------------------------------------------------------------

    def api_get_action_context(self) -> tuple:
        return (False, str(self.script), 0, 0, -1, -1, -1, "")

    def api_defer(self, fn: Any) -> None:
        self.deferred.append(fn)

    def api_atexit(self, fn: Any) -> None:
        self.exit_hooks.append(fn)

    def api_GetOS(self) -> str:
        return self.os_name

    def api_GetAppVersion(self) -> str:
        return f"{self.version.number}/{PLATFORMS[self.os_name]}"

    def api_APIExists(self, name: str) -> bool:
        return f"reaper.{name}" in self._signatures and self.version.has(name)

    def api_time_precise(self) -> float:
        return time.monotonic()

    def api_GetResourcePath(self) -> str:
        return str(self.resource_path)

    def api_RecursiveCreateDirectory(self, path: str, ignored: int) -> int:
        Path(path).mkdir(parents=True, exist_ok=True)
        return 1

    def api_ShowMessageBox(self, msg: str, title: str, kind: int) -> int:
        self.messages.append(msg)
        if kind == 0:
            return 1
        if not self.answers:
            raise ApiError(f"the script asked a question the test did not answer: {msg}")
        return self.answers.pop(0)

    def api_ShowConsoleMsg(self, msg: str) -> None:
        self.console.append(msg)

    def api_GetUserInputs(self, title: str, n: int, captions: str, defaults: str) -> tuple[bool, str]:
        """As REAPER does: the captions end with options (extrawidth=, separator=); the boxes' texts come back
        joined by the separator, a comma unless another is named, whatever the texts hold. The defaults are split
        by REAPER's undisclosed CSV-like rules: a field holding an odd number of " or of ' swallows the separator
        after it, so every later default shows in the box before its own (`shown` records what the boxes held).
        A test's answer of None for the boxes is OK pressed on what was shown."""
        self.user_input_calls.append((title, n, captions, defaults))
        entries = captions.split(",")
        options = dict(e.split("=", 1) for e in entries if e.startswith(("extrawidth=", "separator=")))
        labels = [e for e in entries if not e.startswith(("extrawidth=", "separator="))]
        if len(labels) != n:
            raise ApiError(f"GetUserInputs got {n} inputs but {len(labels)} captions: {captions!r}")
        separator = options.get("separator", ",")
        shown = _split_defaults(defaults, separator, n)
        self.shown.append(shown)
        if not self.user_inputs:
            return False, ""
        ok, boxes = self.user_inputs.pop(0)  # what the user typed into each box
        return ok, separator.join(shown if boxes is None else boxes)

    def api_GetExtState(self, section: str, key: str) -> str:
        return self.ext_state.get((section, key), "")

    def api_SetExtState(self, section: str, key: str, value: str, persist: bool) -> None:
        self.ext_state[(section, key)] = value

    def api_GetUserFileNameForRead(self, initial: str, title: str, extension: str) -> tuple[bool, str]:
        """The file the user picks: from `files_chosen`, in order; none left is Cancel."""
        if not self.files_chosen:
            return (False, initial)
        return (True, self.files_chosen.pop(0))

    def api_file_exists(self, path: str) -> bool:
        return Path(path).is_file()

    def api_ExecProcess(self, cmdline: str, timeout_ms: int) -> str | None:
        self.exec_calls.append(cmdline)
        argv = split_windows(cmdline) if self.os_name.startswith("Win") else split_posix(cmdline)
        self.exec_argv.append(argv)
        env = {**os.environ, "PATH": GUI_PATH.get(self.os_name, GUI_PATH["Linux"])}
        try:
            if timeout_ms in (-1, -2):  # REAPER starts it and does not wait
                self.background.append(
                    subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
                )
                return ""  # started; nil only when it could not be
            self.programs_waited += 1
            done = subprocess.run(
                argv, capture_output=True, text=True, env=env, check=False, timeout=timeout_ms / 1000 or None
            )
        except (OSError, IndexError, subprocess.TimeoutExpired):  # no such program, an empty line, too slow
            return None
        return f"{done.returncode}\n{done.stdout}"

    # -- projects, undo and refresh -----------------------------------------------------------------------------

    def api_EnumProjects(self, index: int) -> tuple:
        project = self.current if index == -1 else (self.projects[index] if 0 <= index < len(self.projects) else None)
        if project is None:
            return (None, "")
        return (project, project.file)

    def api_SelectProjectInstance(self, proj: Project) -> None:
        self.current = proj

    def api_ValidatePtr(self, pointer: Any, kind: str) -> bool:
        if kind == "ReaProject*":
            return isinstance(pointer, Project) and pointer in self.projects
        raise ApiError(f"ValidatePtr: the simulator models ReaProject* only, not {kind}")

    def api_ValidatePtr2(self, proj: Any, pointer: Any, kind: str) -> bool:
        project = self._proj(proj)
        if project not in self.projects:
            return False
        if kind == "MediaTrack*":
            return isinstance(pointer, Track) and pointer in project.tracks
        if kind == "MediaItem*":
            return isinstance(pointer, Item) and pointer in project.items()
        raise ApiError(f"ValidatePtr2: the simulator has no {kind}")

    def api_GetProjectName(self, proj: Any) -> str:
        project = self._proj(proj)
        return Path(project.file).name if project.saved else ""

    def api_GetProjectPathEx(self, proj: Any) -> str:
        """The recording path: the project's media folder, or for a project never saved the default one."""
        return str(self.recording_path(self._proj(proj)))

    def recording_path(self, project: Project) -> Path:
        return (
            project.media_path if project.saved else self.resource_path.parent / "home" / "Documents" / "REAPER Media"
        )

    def api_Undo_BeginBlock(self) -> None:
        self.current.undo_open += 1

    def api_Undo_EndBlock(self, description: str, flags: int) -> None:
        self.api_Undo_EndBlock2(self.current, description, flags)

    def api_Undo_BeginBlock2(self, proj: Any) -> None:
        self._proj(proj).undo_open += 1

    def api_Undo_EndBlock2(self, proj: Any, description: str, flags: int) -> None:
        project = self._proj(proj)
        if project.undo_open == 0:
            raise ApiError("Undo_EndBlock without Undo_BeginBlock")
        project.undo_open -= 1
        project.undo_blocks.append(description)

    def api_PreventUIRefresh(self, count: int) -> None:
        self.refresh_holds += count
        if self.refresh_holds < 0:
            raise ApiError("PreventUIRefresh released more often than held")

    def api_UpdateArrange(self) -> None:
        pass

    # -- items, takes, sources --------------------------------------------------------------------------------

    def _selected(self, proj: Any) -> list[Item]:
        return [item for item in self._proj(proj).items() if item.selected]

    def api_CountSelectedMediaItems(self, proj: Any) -> int:
        return len(self._selected(proj))

    def api_GetSelectedMediaItem(self, proj: Any, index: int) -> Item | None:
        selected = self._selected(proj)
        return selected[index] if 0 <= index < len(selected) else None

    def api_SelectAllMediaItems(self, proj: Any, selected: bool) -> None:
        for item in self._proj(proj).items():
            item.selected = selected

    def api_SetMediaItemSelected(self, item: Item, selected: bool) -> None:
        item.selected = selected

    def api_CountTakes(self, item: Item) -> int:
        return len(item.takes)

    def api_GetActiveTake(self, item: Item) -> Take | None:
        return item.active

    def api_SetActiveTake(self, take: Take) -> None:
        for project in self.projects:
            for item in project.items():
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

    def api_CountMediaItems(self, proj: Any) -> int:
        return len(self._proj(proj).items())

    def api_GetMediaItem(self, proj: Any, index: int) -> Item | None:
        items = self._proj(proj).items()
        return items[index] if 0 <= index < len(items) else None

    def api_GetSetMediaItemInfo_String(self, item: Item, name: str, value: str, set_value: bool) -> tuple:
        """GUID (read only) and P_EXT:xyz, extension data a script keeps with the item in the project."""
        if name.startswith("P_EXT:"):
            if set_value:
                item.ext[name[6:]] = value
            return (True, item.ext.get(name[6:], ""))
        if name != "GUID" or set_value:
            raise ApiError(f"GetSetMediaItemInfo_String: the simulator has no {name} (set: {set_value})")
        return (True, item.guid)

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
        values = {
            "D_STARTOFFS": take.startoffs,
            "D_PLAYRATE": take.playrate,
            "D_PITCH": take.pitch,
            "I_CHANMODE": float(take.chanmode),
        }
        if name not in values:
            raise ApiError(f"GetMediaItemTakeInfo_Value: the simulator has no {name}")
        return values[name]

    def api_GetSetMediaItemTakeInfo_String(self, take: Take, name: str, value: str, set_value: bool) -> tuple:
        if name != "P_NAME":
            raise ApiError(f"GetSetMediaItemTakeInfo_String: the simulator has no {name}")
        if set_value:
            take.name = value
        return (True, take.name)

    def api_GetTakeEnvelopeByName(self, take: Take, name: str) -> Envelope | None:
        if name not in ("Volume", "Pan", "Mute", "Pitch"):
            raise ApiError(f"GetTakeEnvelopeByName: REAPER has no take envelope {name!r}")
        return take.envelopes.get(name)

    def api_GetSetEnvelopeInfo_String(self, envelope: Envelope, name: str, value: str, set_value: bool) -> tuple:
        if name != "ACTIVE" or set_value:
            raise ApiError(f"GetSetEnvelopeInfo_String: the simulator reads ACTIVE only, not {name}")
        return (True, "1" if envelope.active else "0")

    def api_CountEnvelopePoints(self, envelope: Envelope) -> int:
        return len(envelope.points)

    def api_TrackFX_GetCount(self, track: Track) -> int:
        return len(track.fx)

    def api_TrackFX_GetEnabled(self, track: Track, fx: int) -> bool:
        return track.fx[fx].enabled

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

    def api_PCM_Source_CreateFromFile(self, filename: str) -> Source | None:
        try:
            info = sf.info(filename)
        except (OSError, RuntimeError):  # missing, unreadable or not audio
            return None
        return Source(filename, info.frames / info.samplerate)

    def api_SetMediaItemTake_Source(self, take: Take, source: Source) -> bool:
        take.source = source
        return True

    def api_Main_OnCommand(self, command: int, flag: int) -> None:
        self.api_Main_OnCommandEx(command, flag, self.current)

    def api_Main_OnCommandEx(self, command: int, flag: int, proj: Any) -> None:
        self.commands.append(command)
        if command == 40047:
            self._build_missing_peaks(self._proj(proj))
            return
        if command == 41719:
            self._render_stems(self._proj(proj))
            return
        actions: dict[int, Callable[[Project, Item], None]] = {
            40601: self._render_to_new_take,
            40209: lambda project, item: self._render_to_new_take(project, item, with_track_fx=True),
            40129: self._delete_active_take,
        }
        if command not in actions:
            raise ApiError(f"the simulator does not model action {command}")
        for item in self._selected(proj):
            actions[command](self._proj(proj), item)

    def _build_missing_peaks(self, project: Project) -> None:
        for item in project.items():
            for take in item.takes:
                take.source.peaks = True

    def _render_to_new_take(self, project: Project, item: Item, with_track_fx: bool = False) -> None:
        """The item as heard (the track's FX only with action 40209, Apply track/take FX, not 40601) as a new active
        take, written with its peaks file into the project's recording path."""
        take = item.active
        rendered, rate = self._heard(item, with_track_fx)
        path = self._write_render(project, f"{take.name or 'take'}-render-{len(item.takes)}.wav", rendered, rate)
        new = Take(Source(str(path), item.length, peaks=True), name=f"{take.name} render")
        item.takes.append(new)
        item.active = new

    def _write_render(self, project: Project, name: str, audio: np.ndarray, rate: int) -> Path:
        folder = self.recording_path(project)
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / name, audio, rate)
        Path(f"{folder / name}.reapeaks").write_bytes(b"RPKM")
        return folder / name

    def _heard(self, item: Item, with_track_fx: bool) -> tuple[np.ndarray, int]:
        """What the listener hears of an item: section (looping over its own length), offset, playrate, reversal,
        channel mode, pitch and take Pitch envelope (as a resampling, REAPER's is better), take Volume and Mute
        envelopes; with the track's FX (a pitch shift each) when asked."""
        take = item.active
        source, offset, reversed_, loop = take.source, 0.0, False, None
        while source.parent is not None:
            offset += source.section[0]
            reversed_ |= source.section[2]
            loop = loop or source.section[1]
            source = source.parent
        audio, rate = sf.read(source.decoded or source.file, dtype="float32", always_2d=True)
        loop_frames = round((loop or len(audio) / rate) * rate)
        semitones = take.pitch + _envelope_mean(take.envelopes.get("Pitch"))
        if with_track_fx and item.track.fx_enabled:
            semitones += sum(fx.pitch for fx in item.track.fx if fx.enabled)
        step = take.playrate * 2 ** (semitones / 12)
        positions = round(take.startoffs * rate) + (np.arange(round(item.length * rate)) * step).astype(int)
        rendered = audio[round(offset * rate) + positions % loop_frames]
        if reversed_:
            rendered = rendered[::-1]
        if take.chanmode in (2, 3, 4):
            channel = min(take.chanmode - 3, audio.shape[1] - 1)
            rendered = (rendered.mean(axis=1) if take.chanmode == 2 else rendered[:, channel])[:, None]
        for name in ("Volume", "Mute"):
            envelope = take.envelopes.get(name)
            if envelope and envelope.active and envelope.points:
                times, values = zip(*envelope.points, strict=True)
                gain = np.interp(np.arange(len(rendered)) / rate, times, values)
                rendered = rendered * (gain if name == "Volume" else gain < 0.5)[:, None]  # Mute: 1 mutes
        return rendered, rate

    def _render_stems(self, project: Project) -> None:
        """Action 41719, Render selected area of tracks to stereo stem tracks (and mute originals): each selected
        track's time selection as heard, every item mixed in with its take and the track's FX, on a new track
        above it holding one item of the selection's span; the original track muted."""
        start, end = project.time_selection
        if end <= start:
            return  # REAPER renders nothing without a time selection
        for track in [t for t in project.tracks if t.selected]:
            rate = 44100
            mix = np.zeros((round((end - start) * rate), 2), np.float32)
            for item in track.items:
                if item.position >= end or item.position + item.length <= start or item.active is None:
                    continue
                audio, item_rate = self._heard(item, with_track_fx=True)
                assert item_rate == rate, "the simulator mixes 44.1 kHz items only"
                first = round((item.position - start) * rate)
                clip = audio[max(0, -first) : max(0, -first) + len(mix) - max(0, first)]
                mix[max(0, first) : max(0, first) + len(clip)] += clip[:, :2]  # mono plays on both sides
            path = self._write_render(project, f"{track.name or 'track'} - stem.wav", mix, rate)
            stem = Track(f"{track.name} - stem")
            project.tracks.insert(project.tracks.index(track), stem)
            stem_item = Item(stem, start, end - start)
            stem_item.takes = [Take(Source(str(path), end - start, peaks=True), name=path.stem)]
            stem_item.active = stem_item.takes[0]
            stem.items.append(stem_item)
            track.muted = True

    def _delete_active_take(self, project: Project, item: Item) -> None:
        item.takes.remove(item.active)
        item.active = item.takes[0] if item.takes else None

    # -- tracks -----------------------------------------------------------------------------------------------

    def api_GetMediaTrackInfo_Value(self, track: Track, name: str) -> float:
        project = self._project_of_track(track)
        assert project is not None
        values = {
            "IP_TRACKNUMBER": project.tracks.index(track) + 1,
            "I_FOLDERDEPTH": track.folder_depth,
            "I_FXEN": int(track.fx_enabled),
            "B_MUTE": int(track.muted),
        }
        if name not in values:
            raise ApiError(f"GetMediaTrackInfo_Value: the simulator has no {name}")
        return float(values[name])

    def api_SetMediaTrackInfo_Value(self, track: Track, name: str, value: float) -> bool:
        if name == "I_FOLDERDEPTH":
            track.folder_depth = int(value)
        elif name == "B_MUTE":
            track.muted = bool(value)
        else:
            raise ApiError(f"SetMediaTrackInfo_Value: the simulator sets I_FOLDERDEPTH and B_MUTE, not {name}")
        return True

    def api_GetTrackMediaItem(self, track: Track, index: int) -> Item | None:
        return track.items[index] if 0 <= index < len(track.items) else None

    def api_GetTrackGUID(self, track: Track) -> str:
        return track.guid

    def api_DeleteTrack(self, track: Track) -> None:
        project = self._project_of_track(track)
        assert project is not None
        project.tracks.remove(track)

    def api_CountSelectedTracks(self, proj: Any) -> int:
        return sum(track.selected for track in self._proj(proj).tracks)

    def api_GetSelectedTrack(self, proj: Any, index: int) -> Track | None:
        selected = [track for track in self._proj(proj).tracks if track.selected]
        return selected[index] if 0 <= index < len(selected) else None

    def api_SetTrackSelected(self, track: Track, selected: bool) -> None:
        track.selected = selected

    def api_SetOnlyTrackSelected(self, track: Track) -> None:
        project = self._project_of_track(track)
        assert project is not None
        for other in project.tracks:
            other.selected = other is track

    def api_GetSet_LoopTimeRange2(
        self, proj: Any, is_set: bool, is_loop: bool, start: float, end: float, seek: bool
    ) -> tuple[float, float]:
        if is_set or is_loop:
            raise ApiError("GetSet_LoopTimeRange2: the simulator reads the time selection only")
        return self._proj(proj).time_selection

    def api_GetSetMediaTrackInfo_String(self, track: Track, name: str, value: str, set_value: bool) -> tuple:
        if name != "P_NAME":
            raise ApiError(f"GetSetMediaTrackInfo_String: the simulator has no {name}")
        if set_value:
            track.name = value
        return (True, track.name)

    def api_InsertTrackAtIndex(self, index: int, defaults: bool) -> None:
        tracks = self.current.tracks
        tracks.insert(max(0, min(index, len(tracks))), Track(defaults=defaults))

    def api_InsertTrackInProject(self, proj: Any, index: int, flags: int) -> None:
        tracks = self._proj(proj).tracks
        tracks.insert(max(0, min(index, len(tracks))), Track(defaults=bool(flags & 1)))

    def api_GetTrack(self, proj: Any, index: int) -> Track | None:
        tracks = self._proj(proj).tracks
        return tracks[index] if 0 <= index < len(tracks) else None

    def api_CountTracks(self, proj: Any) -> int:
        return len(self._proj(proj).tracks)


def _split_defaults(defaults: str, separator: str, boxes: int) -> list[str]:
    """GetUserInputs' defaults as REAPER fills the boxes: a field with an odd number of " or ' runs on into the
    next one."""
    fields: list[str] = []
    for part in defaults.split(separator):
        if fields and (fields[-1].count('"') % 2 or fields[-1].count("'") % 2):
            fields[-1] += separator + part
        else:
            fields.append(part)
    return (fields + [""] * boxes)[:boxes]


def _envelope_mean(envelope: Envelope | None) -> float:
    if envelope is None or not envelope.active or not envelope.points:
        return 0.0
    return float(np.mean([value for _, value in envelope.points]))


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

    def __init__(
        self,
        project: Project | list[Project],
        script: Path,
        os_name: str = "Linux",
        version: ReaperVersion = LATEST,
    ):
        projects = project if isinstance(project, list) else [project]
        self.lua = LUA_RUNTIMES[version.lua](unpack_returned_tuples=True)
        if version.lua == "5.3":
            # lupa's Lua 5.3 keeps Python objects in a weak table whose slots the collector can free and reuse while
            # Lua still holds them: a script then receives another object (scoder/lupa#293). A script run is short,
            # so the collector simply does not run.
            self.lua.execute("collectgarbage('stop')")
        self.reaper = Reaper(projects, script, os_name, projects[0].path / "reaper-resources", version)
        self.gfx = Gfx(self.reaper._signatures)
        self.lua.globals().reaper = self.reaper
        self.lua.globals().gfx = self.gfx
        self.script = script
        self.open_files: list[str] = []  # files the script holds open at the end of a tick
        self.ticks: list[TickCost] = []
        self._count_work()
        self._model_the_desktop(os_name)

    def _model_the_desktop(self, os_name: str) -> None:
        """os.getenv answers with the environment a GUI app gets; io.open is watched so that a file left open
        past a tick (which would make the bridge's replace fail on Windows) is noticed."""
        path = GUI_PATH.get(os_name, GUI_PATH["Linux"])
        home = str(self.reaper.resource_path.parent / "home")
        environment = {"PATH": path, "HOME": home, "USERPROFILE": home}
        lua_getenv = self.lua.eval("os.getenv")
        self.lua.globals().os.getenv = lambda name: environment.get(name, lua_getenv(name))
        self.lua.execute(
            """
            local real_open, handles = io.open, {}
            accompgen_sim_handles = handles
            io.open = function(path, mode)
              local file, err = real_open(path, mode)
              if not file then return file, err end
              local entry = { path = path, file = file }
              handles[#handles + 1] = entry
              return setmetatable({}, { __index = function(_, key)
                if key == "close" then
                  return function() entry.closed = true; return file:close() end
                end
                if key == "read" then
                  return function(_, ...)
                    local results = table.pack(file:read(...))
                    for i = 1, results.n do
                      if type(results[i]) == "string" then
                        accompgen_sim_bytes_read = accompgen_sim_bytes_read + #results[i]
                      end
                    end
                    return table.unpack(results, 1, results.n)
                  end
                end
                local member = file[key]
                if type(member) == "function" then return function(_, ...) return member(file, ...) end end
                return member
              end })
            end
            """
        )

    def _count_work(self) -> None:
        """Counters behind TickCost: Lua instructions, the shells os.execute and io.popen run (the script waits on
        those, and on Windows they flash a console window), and bytes read (counted by the io.open watch)."""
        self.lua.execute(
            """
            accompgen_sim_kilo, accompgen_sim_bytes_read, accompgen_sim_shells = 0, 0, 0
            debug.sethook(function() accompgen_sim_kilo = accompgen_sim_kilo + 1 end, "", 1000)
            local function counted(run)
              return function(...) accompgen_sim_shells = accompgen_sim_shells + 1; return run(...) end
            end
            os.execute, io.popen = counted(os.execute), counted(io.popen)
            """
        )

    def _counters(self) -> TickCost:
        lua = self.lua.globals()
        waited = self.reaper.programs_waited + lua.accompgen_sim_shells
        return TickCost(lua.accompgen_sim_kilo, waited, lua.accompgen_sim_bytes_read)

    def _tick(self, fn: Callable[[], Any]) -> None:
        before, refused = self._counters(), len(self.reaper.api_errors)
        try:
            fn()
        finally:
            self.ticks.append(self._counters() - before)
            handles = self.lua.globals().accompgen_sim_handles
            self.open_files += [h.path for h in handles.values() if not h.closed]
        if len(self.reaper.api_errors) > refused:  # refused even if the script's pcall went on
            raise ApiError("; ".join(self.reaper.api_errors[refused:]))
        self._check_closed()

    def _check_closed(self) -> None:
        """REAPER expects an undo block and a UI-refresh hold to end in the defer cycle that began them: left open,
        the project's undo history and its drawing stay blocked."""
        open_blocks = [str(p.path) for p in self.reaper.projects if p.undo_open]
        if open_blocks or self.reaper.refresh_holds:
            raise AssertionError(
                f"left open past a defer cycle: undo blocks in {open_blocks}, {self.reaper.refresh_holds} UI holds"
            )

    def run(self) -> None:
        self._tick(lambda: self.lua.execute(f"dofile({_lua_string(str(self.script))})"))

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
                self._tick(fn)
            time.sleep(cycle_s)
        raise AssertionError(f"the script was still deferring after {max_cycles} cycles")

    def heavy_ticks(self, budget: TickCost = TICK_BUDGET) -> list[tuple[int, TickCost]]:
        """The ticks that would have held REAPER's UI too long, with their place in the run."""
        return [(index, cost) for index, cost in enumerate(self.ticks) if cost.exceeds(budget)]

    def _exit(self) -> None:
        hooks, self.reaper.exit_hooks = self.reaper.exit_hooks, []
        for hook in hooks:
            hook()


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
