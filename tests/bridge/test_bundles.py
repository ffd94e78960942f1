"""The bundles a bridge finds without a path, as a DAW's settings list them."""

import json
import shutil

from accompgen.core.bundle import load_bundle
from accompgen_bridge.bundles import INSTALLED, bundle_folders, find_bundles
from accompgen_bridge.cli import main
from accompgen_bridge.providers import usable_devices


def test_installed_and_state_dir_bundles_are_found_and_a_broken_one_says_why(tiny_bundle, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(tiny_bundle, state / "bundles" / "my choir")
    (state / "bundles" / "broken").mkdir()
    (state / "bundles" / "broken" / "manifest.yaml").write_text("format_version: [")
    (state / "bundles" / "not a bundle").mkdir()
    found = find_bundles(bundle_folders(state))
    mine = [b for b in found if b.path.startswith(str(state))]
    assert [b.name for b in mine] == ["broken", "my choir"]
    assert mine[0].summary.startswith("cannot be served:")
    assert mine[1].summary == f"{load_bundle(tiny_bundle).model}, fp32"  # not quantized: its precision
    installed = [b for b in found if b.path.startswith(str(INSTALLED))]
    assert [b.name for b in installed] == sorted(p.name for p in INSTALLED.iterdir() if (p / "manifest.yaml").is_file())


def test_the_command_answers_in_json_with_the_devices(tmp_path):
    reply = tmp_path / "reply.json"
    assert main(["--state-dir", str(tmp_path / "state"), "bundles", "--reply", str(reply)]) == 0
    answer = json.loads(reply.read_text())
    assert answer["devices"] == usable_devices() and answer["devices"][0] == "auto" and "cpu" in answer["devices"]
    assert answer["folders"][1] == str(tmp_path / "state" / "bundles")
