"""ReaPack: one package whose @provides brings everything, the others @noindex, RTF descriptions, pinned sources."""

import importlib.util
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

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


def newest_version():
    text = (ROOT / "index.xml").read_text(encoding="utf-8")
    return text, reapack_index.released_versions(text)[-1]


def pinned_commit(version):
    """The one commit all of a version's sources are pinned to."""
    (commit,) = {source.text.split("/raw/")[1].split("/")[0] for source in version.findall("source")}
    assert len(commit) == 40
    return commit


def test_index_is_current_with_rtf_descriptions_and_commit_pinned_sources():
    text, newest = newest_version()
    header = reapack_index.read_header(SCRIPTS / reapack_index.PACKAGE)
    assert newest.get("name") == header["version"], "stale: run tools/reapack_index.py"
    regenerated = reapack_index.build_index(reapack_index.REPOSITORY, pinned_commit(newest), newest.get("time"), text)
    assert text == regenerated, "stale: run tools/reapack_index.py"
    root = ET.fromstring(text.encode())
    (description,) = root.findall(".//metadata/description")
    assert description.text.startswith("{\\rtf1\\ansi")
    assert {s.get("file") or reapack_index.PACKAGE for s in newest.findall("source")} == {
        p.name for p in SCRIPTS.glob("*.lua")
    }


def test_released_versions_never_change_and_the_history_is_kept():
    """As reapack-index: a new @version is added beside the released ones; a released one is never re-pinned."""
    text, newest = newest_version()
    elsewhere = "f" * 40
    assert reapack_index.build_index(reapack_index.REPOSITORY, elsewhere, "2027-01-01T00:00:00Z", text) == text
    root = ET.fromstring(text.encode())
    package = root.find(".//reapack")
    package.remove(package.findall("version")[-1])
    without_newest = ET.tostring(root, encoding="unicode")
    rebuilt = reapack_index.build_index(reapack_index.REPOSITORY, elsewhere, "2027-01-01T00:00:00Z", without_newest)
    old, new = reapack_index.released_versions(without_newest), reapack_index.released_versions(rebuilt)
    assert [ET.tostring(v) for v in new[:-1]] == [ET.tostring(v) for v in old]
    assert new[-1].get("name") == newest.get("name") and pinned_commit(new[-1]) == elsewhere
    assert len(old) >= 1  # the index holds earlier releases


def test_the_newest_version_is_pinned_to_a_commit_holding_the_files_as_they_are_now():
    """Installing from the index gets exactly these scripts: raise @version and regenerate after changing one."""
    _, newest = newest_version()
    commit = pinned_commit(newest)
    known = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, capture_output=True)
    if known.returncode:
        pytest.skip(f"the clone lacks commit {commit} (shallow)")
    assert reapack_index.changed_since(newest) == []


def test_the_limits_file_is_what_the_python_limits_say():
    assert (SCRIPTS / "accompgen_limits.lua").read_text(encoding="utf-8") == reapack_index.limits_lua()
