"""Write the files the ReaScripts are published with, from the scripts and the Python code they must agree with.

    python tools/reapack_index.py [--repository URL] [--commit SHA]

- index.xml, the ReaPack index: one package, the Generate script, whose @provides brings the library and the
  other actions (each of those carries @noindex, so that the official indexer makes no package of its own for
  them). `<description>` is RTF, as ReaPack shows it; every source URL is pinned to a commit (default: HEAD), so an
  install gets exactly the files of one version, as reapack-index writes them. As reapack-index does, a released
  version never changes and the history is kept: the package's @version, when new, is added to the versions
  already in index.xml, pinned to the commit given; when already released, the files must be as they were then
  (else raise @version).
- reaper_scripts/AccompGen/accompgen_limits.lua: the request limits of accompgen.core.decoding, which the Settings
  script checks its fields against; declared once, in Python.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, unquote

from accompgen.core.decoding import REQUEST_LIMITS

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "reaper_scripts" / "AccompGen"
PACKAGE = "AccompGen - Generate accompaniment for selected items.lua"
REPOSITORY = "https://github.com/accompgen/accompgen"
INDEX = ROOT / "index.xml"
LIMITS = SCRIPTS / "accompgen_limits.lua"


def read_header(path: Path) -> dict[str, str]:
    """@tag values from the leading comment block; a tag's value continues on indented comment lines."""
    header: dict[str, list[str]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("--"):
            break
        text = line[2:]
        match = re.match(r" @(\w+)\s*(.*)", text)
        if match:
            current = match.group(1)
            header[current] = [match.group(2)] if match.group(2) else []
        elif current and text.startswith("   "):
            header[current].append(text.strip())
    return {tag: "\n".join(lines).strip() for tag, lines in header.items()}


def provided(header: dict[str, str]) -> list[tuple[str, str]]:
    """(option, file) pairs of @provides, e.g. ("nomain", "accompgen_lib.lua")."""
    pairs = []
    for line in header.get("provides", "").splitlines():
        match = re.match(r"\[(\w+)\]\s+(.+)", line.strip())
        if match:
            pairs.append((match.group(1), match.group(2)))
    return pairs


def rtf(text: str) -> str:
    """Plain paragraphs (blank-line separated) as the RTF document ReaPack's about window loads."""

    def escape(part: str) -> str:
        part = part.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")
        return "".join(c if ord(c) < 128 else f"\\u{ord(c)}?" for c in part)

    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    body = "\n".join(f"{{\\pard \\ql \\f0 \\sa180 \\li0 \\fi0 {escape(p)}\\par}}" for p in paragraphs)
    return (
        "{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 \\fswiss Helvetica;}{\\f1 \\fmodern Courier;}}\n"
        "{\\colortbl;\\red255\\green0\\blue0;\\red0\\green0\\blue255;}\n"
        f"\\widowctrl\\hyphauto\n\n{body}\n}}"
    )


def git(*args: str) -> str:
    env = {**os.environ, "TZ": "UTC"}
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, env=env).stdout.strip()


def commit_time(commit: str) -> str:
    """When the commit was made, in UTC, as reapack-index dates a version."""
    return git("show", "-s", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ", commit)


def source_url(repository: str, commit: str, file: str) -> str:
    """reapack-index's default form: REPOSITORY/raw/COMMIT/PATH, the path URL-encoded."""
    path = (SCRIPTS / file).relative_to(ROOT).as_posix()
    return f"{repository}/raw/{commit}/{quote(path)}"


def released_versions(index_text: str | None) -> list[ET.Element]:
    """The package's <version> elements in an existing index, oldest first."""
    if not index_text:
        return []
    package = ET.fromstring(index_text.encode()).find(f".//reapack[@name='{PACKAGE}']")
    return [] if package is None else package.findall("version")


def new_version(header: dict[str, str], repository: str, commit: str, time: str) -> ET.Element:
    version = ET.Element("version", name=header["version"], author=header["author"], time=time)
    ET.SubElement(version, "changelog").text = header["changelog"]
    ET.SubElement(version, "source", main="main").text = source_url(repository, commit, PACKAGE)
    for option, file in provided(header):
        attributes = {"file": file} if option == "nomain" else {"main": "main", "file": file}
        ET.SubElement(version, "source", attributes).text = source_url(repository, commit, file)
    return version


def build_index(repository: str, commit: str, time: str, previous: str | None) -> str:
    """The index of `previous` (its text, or None) with the package's @version added when it is new, pinned to
    `commit` and dated `time`; released versions are kept as they are."""
    header = read_header(SCRIPTS / PACKAGE)
    index = ET.Element("index", version="1", name="AccompGen")
    category = ET.SubElement(index, "category", name="Items Editing")
    package = ET.SubElement(category, "reapack", name=PACKAGE, type="script", desc=header["description"])
    metadata = ET.SubElement(package, "metadata")
    ET.SubElement(metadata, "description").text = rtf(header["about"])
    versions = released_versions(previous)
    if header["version"] not in {v.get("name") for v in versions}:
        versions.append(new_version(header, repository, commit, time))
    package.extend(versions)
    ET.indent(index)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(index, encoding="unicode") + "\n"


def changed_since(version: ET.Element) -> list[str]:
    """The files of a released version that differ now from what its pinned commit holds."""
    changed = []
    for source in version.findall("source"):
        commit, path = (source.text or "").split("/raw/")[1].split("/", 1)
        shown = subprocess.run(["git", "show", f"{commit}:{unquote(path)}"], cwd=ROOT, capture_output=True)
        if shown.returncode or shown.stdout != (ROOT / unquote(path)).read_bytes():
            changed.append(unquote(path))
    return changed


def lua_number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def limits_lua() -> str:
    rows = "\n".join(
        f"  {name} = {{ {lua_number(low)}, {lua_number(high)} }}," for name, (low, high) in REQUEST_LIMITS.items()
    )
    return (
        "-- @noindex\n"
        "-- Written by tools/reapack_index.py from accompgen.core.decoding: do not edit by hand.\n"
        "-- The ranges the bridge accepts for each request setting (defaults are the bundle's).\n"
        "return {\n"
        f"{rows}\n"
        "}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", default=REPOSITORY, help="the repository the raw files are served from")
    parser.add_argument("--commit", help="the commit every source URL is pinned to (default: HEAD)")
    args = parser.parse_args()
    LIMITS.write_text(limits_lua(), encoding="utf-8")
    previous = INDEX.read_text(encoding="utf-8") if INDEX.exists() else None
    name = read_header(SCRIPTS / PACKAGE)["version"]
    released = [v for v in released_versions(previous) if v.get("name") == name]
    changed = changed_since(released[0]) if released else []
    if changed:
        sys.exit(
            f"version {name} is released and these files changed since: {', '.join(changed)}. "
            f"Raise @version in {PACKAGE} (a released version never changes) and run this again."
        )
    commit = args.commit or git("rev-parse", "HEAD")
    INDEX.write_text(build_index(args.repository, commit, commit_time(commit), previous), encoding="utf-8")


if __name__ == "__main__":
    main()
