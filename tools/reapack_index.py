"""Write index.xml, the ReaPack index of the ReaScripts, from the metadata headers of the scripts themselves.

    python tools/reapack_index.py [--base-url URL]   # rewrites index.xml at the repository root

One package, installed by the Generate script's header: its @provides lists the library and the other scripts.
"""

from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "reaper_scripts" / "AccompGen"
PACKAGE = "AccompGen - Generate accompaniment for selected items.lua"
BASE_URL = "https://raw.githubusercontent.com/accompgen/accompgen/main/reaper_scripts/AccompGen"
RELEASED = "2026-11-25T00:00:00Z"
TAGS = ("description", "version", "author", "about", "provides", "changelog")


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


def build_index(base_url: str = BASE_URL) -> str:
    header = read_header(SCRIPTS / PACKAGE)
    index = ET.Element("index", version="1", name="AccompGen")
    category = ET.SubElement(index, "category", name="Items Editing")
    package = ET.SubElement(category, "reapack", name=PACKAGE, type="script", desc=header["description"])
    metadata = ET.SubElement(package, "metadata")
    ET.SubElement(metadata, "description").text = header["about"]
    version = ET.SubElement(package, "version", name=header["version"], author=header["author"], time=RELEASED)
    ET.SubElement(version, "changelog").text = header["changelog"]
    ET.SubElement(version, "source", main="main").text = f"{base_url}/{quote(PACKAGE)}"
    for option, file in provided(header):
        attributes = {"file": file} if option == "nomain" else {"main": "main", "file": file}
        ET.SubElement(version, "source", attributes).text = f"{base_url}/{quote(file)}"
    ET.indent(index)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(index, encoding="unicode") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default=BASE_URL, help="where the raw script files are served")
    args = parser.parse_args()
    (ROOT / "index.xml").write_text(build_index(args.base_url), encoding="utf-8")


if __name__ == "__main__":
    main()
