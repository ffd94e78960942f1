"""ReaPack: one package whose @provides brings everything, the others @noindex, RTF descriptions, pinned sources."""

import importlib.util
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import pytest

from .conftest import SCRIPTS

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("reapack_index", ROOT / "tools" / "reapack_index.py")
reapack_index = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reapack_index)

ACTIONS = sorted(p.name for p in SCRIPTS.glob("AccompGen - *.lua"))
TAGS = ("description", "version", "author", "about", "changelog")


@pytest.mark.parametrize("name", ACTIONS)
def test_every_action_has_the_header(name):
    header = reapack_index.read_header(SCRIPTS / name)
    assert set(TAGS) <= set(header), f"{name} lacks {set(TAGS) - set(header)}"
    assert header["description"].startswith("AccompGen: ")


def test_only_the_package_is_indexed_and_it_provides_the_rest():
    """The official indexer makes a package of every file without @noindex: the library, the limits and the two
    secondary actions carry it, and no one but the package @provides them."""
    package = reapack_index.read_header(SCRIPTS / reapack_index.PACKAGE)
    provided = dict((file, option) for option, file in reapack_index.provided(package))
    others = {p.name for p in SCRIPTS.glob("*.lua")} - {reapack_index.PACKAGE}
    assert set(provided) == others
    for name in others:
        header = reapack_index.read_header(SCRIPTS / name)
        assert "noindex" in header and "provides" not in header, name
        assert provided[name] == ("main" if name in ACTIONS else "nomain")


def test_index_is_current_with_rtf_descriptions_and_commit_pinned_sources():
    text = (ROOT / "index.xml").read_text(encoding="utf-8")
    root = ET.fromstring(text.encode())
    sources = root.findall(".//source")
    commit = sources[0].text.split("/raw/")[1].split("/")[0]
    assert len(commit) == 40 and all(s.text.split("/raw/")[1].startswith(commit + "/") for s in sources)
    assert text == reapack_index.build_index(reapack_index.REPOSITORY, commit), "stale: run tools/reapack_index.py"
    (description,) = root.findall(".//metadata/description")
    assert description.text.startswith("{\\rtf1\\ansi")
    assert {s.get("file") or reapack_index.PACKAGE for s in sources} == {p.name for p in SCRIPTS.glob("*.lua")}


def test_the_pinned_commit_holds_the_files_as_they_are_now():
    """Installing from the index gets exactly these scripts: regenerate the index after changing one."""
    root = ET.fromstring((ROOT / "index.xml").read_bytes())
    for source in root.findall(".//source"):
        commit, path = source.text.split("/raw/")[1].split("/", 1)
        shown = subprocess.run(["git", "show", f"{commit}:{unquote(path)}"], cwd=ROOT, capture_output=True, check=False)
        if shown.returncode and b"does not exist" not in shown.stderr and b"exists on disk" not in shown.stderr:
            pytest.skip(f"the clone lacks commit {commit} (shallow)")
        assert shown.stdout == (ROOT / unquote(path)).read_bytes(), f"{path} changed since {commit}"


def test_the_limits_file_is_what_the_python_limits_say():
    assert (SCRIPTS / "accompgen_limits.lua").read_text(encoding="utf-8") == reapack_index.limits_lua()
