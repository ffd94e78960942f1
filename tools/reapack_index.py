"""Write the files the ReaScripts are published with, from the scripts and the Python code they must agree with.

    python tools/reapack_index.py [--repository URL] [--commit SHA]

- index.xml, the ReaPack index: one package, the Generate script, whose @provides brings the library and the
  other two actions (each of those carries @noindex, so that the official indexer makes no package of its own for
  them). `<description>` is RTF, as ReaPack shows it; every source URL is pinned to a commit (default: HEAD), so an
  install gets exactly the files of one version, as reapack-index writes them.
- reaper_scripts/AccompGen/accompgen_limits.lua: the request limits of accompgen.core.decoding, which the Settings
  script checks its fields against; declared once, in Python.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

from accompgen.core.decoding import REQUEST_LIMITS

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "reaper_scripts" / "AccompGen"
PACKAGE = "AccompGen - Generate accompaniment for selected items.lua"
REPOSITORY = "https://github.com/accompgen/accompgen"
RELEASED = "2026-11-26T00:00:00Z"
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


def head_commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def source_url(repository: str, commit: str, file: str) -> str:
    """reapack-index's default form: REPOSITORY/raw/COMMIT/PATH, the path URL-encoded."""
    path = (SCRIPTS / file).relative_to(ROOT).as_posix()
    return f"{repository}/raw/{commit}/{quote(path)}"


def build_index(repository: str, commit: str) -> str:
    header = read_header(SCRIPTS / PACKAGE)
    index = ET.Element("index", version="1", name="AccompGen")
    category = ET.SubElement(index, "category", name="Items Editing")
    package = ET.SubElement(category, "reapack", name=PACKAGE, type="script", desc=header["description"])
    metadata = ET.SubElement(package, "metadata")
    ET.SubElement(metadata, "description").text = rtf(header["about"])
    version = ET.SubElement(package, "version", name=header["version"], author=header["author"], time=RELEASED)
    ET.SubElement(version, "changelog").text = header["changelog"]
    ET.SubElement(version, "source", main="main").text = source_url(repository, commit, PACKAGE)
    for option, file in provided(header):
        attributes = {"file": file} if option == "nomain" else {"main": "main", "file": file}
        ET.SubElement(version, "source", attributes).text = source_url(repository, commit, file)
    ET.indent(index)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(index, encoding="unicode") + "\n"


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
    (ROOT / "index.xml").write_text(build_index(args.repository, args.commit or head_commit()), encoding="utf-8")
    LIMITS.write_text(limits_lua(), encoding="utf-8")


if __name__ == "__main__":
    main()
