"""ReaPack: every script carries the metadata header, and index.xml installs them all."""

import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import SCRIPTS

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("reapack_index", ROOT / "tools" / "reapack_index.py")
reapack_index = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reapack_index)

ACTIONS = sorted(p.name for p in SCRIPTS.glob("AccompGen - *.lua"))


@pytest.mark.parametrize("name", ACTIONS)
def test_every_script_has_the_header(name):
    header = reapack_index.read_header(SCRIPTS / name)
    assert set(reapack_index.TAGS) <= set(header), f"{name} lacks {set(reapack_index.TAGS) - set(header)}"
    assert header["version"] == "0.1.0" and header["description"].startswith("AccompGen: ")
    assert "accompgen_lib.lua" in header["provides"]


def test_index_lists_every_file_and_is_current():
    text = (ROOT / "index.xml").read_text(encoding="utf-8")
    assert text == reapack_index.build_index(), "index.xml is stale: run python tools/reapack_index.py"
    root = ET.fromstring(text.encode())
    sources = root.findall(".//source")
    files = {s.get("file") or reapack_index.PACKAGE for s in sources}
    assert files == {p.name for p in SCRIPTS.glob("*.lua")}
    actions = {s.get("file") or reapack_index.PACKAGE for s in sources if s.get("main") == "main"}
    assert sorted(actions) == ACTIONS
