"""The bundles a bridge finds without a path, as a DAW's settings list them, and the ones it serves."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from accompgen.core.bundle import load_bundle
from accompgen.core.errors import UserError
from accompgen_bridge.bundles import INSTALLED, bundle_folders, find_bundles, served_bundles
from accompgen_bridge.cli import main
from accompgen_bridge.providers import usable_devices

from .conftest import UdpClient, start_bridge


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


@pytest.fixture
def shelf(tiny_bundle, tmp_path):
    """A folder of two bundles, and the state folder's bundles/ with a third."""
    for name in ("choir", "band"):
        shutil.copytree(tiny_bundle, tmp_path / "shelf" / name)
    shutil.copytree(tiny_bundle, tmp_path / "state" / "bundles" / "mine")
    return tmp_path


def test_given_bundles_come_first_then_those_found_each_once(shelf):
    found_in = [shelf / "state" / "bundles"]
    served = served_bundles(
        [shelf / "shelf" / "choir", shelf / "shelf", shelf / "state" / "bundles" / "mine"], found_in
    )
    assert list(served.folders) == ["choir", "band", "mine"] and served.given == {"choir", "band", "mine"}
    assert served.folders["band"] == shelf / "shelf" / "band" and served.passed_over == []
    assert list(served_bundles([], found_in).folders) == ["mine"]


def test_two_given_folders_of_one_name_are_refused_a_found_one_is_passed_over(shelf):
    shutil.copytree(shelf / "shelf" / "choir", shelf / "elsewhere" / "choir")
    with pytest.raises(UserError, match=r"two bundles are named choir: .*rename one folder"):
        served_bundles([shelf / "shelf", shelf / "elsewhere" / "choir"], [])
    served = served_bundles([shelf / "elsewhere" / "choir"], [shelf / "shelf"])
    assert served.folders == {"choir": shelf / "elsewhere" / "choir", "band": shelf / "shelf" / "band"}
    assert served.passed_over == [
        f"{shelf / 'shelf' / 'choir'}: {shelf / 'elsewhere' / 'choir'} is served under the same name choir"
    ]


def test_a_bundle_named_like_a_credential_is_refused_or_passed_over(shelf):
    shutil.copytree(shelf / "shelf" / "choir", shelf / "words" / "token")
    with pytest.raises(UserError, match=r"a bundle may not be named token, a word of the protocol"):
        served_bundles([shelf / "words" / "token"], [])
    served = served_bundles([], [shelf / "words", shelf / "shelf"])
    assert list(served.folders) == ["band", "choir"] and "may not be named token" in served.passed_over[0]


def test_a_bundle_given_as_the_current_folder_is_named_for_it(shelf, monkeypatch):
    monkeypatch.chdir(shelf / "shelf" / "band")
    assert list(served_bundles([Path(".")], []).folders) == ["band"]


def test_a_folder_without_bundles_or_nothing_to_serve_says_what_to_give(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"--bundle .*empty: no manifest.yaml in it or in the folders inside it"):
        served_bundles([tmp_path / "empty"], [])
    with pytest.raises(UserError, match=r"no bundle to serve: none is installed or in .*nothing.*--bundle"):
        served_bundles([], [tmp_path / "nothing"])


@pytest.mark.slow
def test_a_bridge_serves_several_bundles_and_a_request_picks_one(shelf, vocal, capsys):
    manifest = shelf / "state" / "bundles" / "mine" / "manifest.yaml"
    manifest.write_text(re.sub(r"top_k: \d+", "top_k: 1", manifest.read_text()))  # greedy: a sound of its own
    server = start_bridge(shelf / "shelf", shelf / "state", "--found")
    client = UdpClient(server.osc_port)

    def accompany(*pairs):
        client.send("/accompgen/generate", str(vocal), 0.0, 0.5, "seed", 3, *pairs)
        address, args = client.receive_until("/accompgen/done", "/accompgen/error")[-1]
        return sf.read(args[1])[0] if address == "/accompgen/done" else args

    try:
        assert main(["--state-dir", str(shelf / "state"), "ping"]) == 0
        listed = json.loads(capsys.readouterr().out)["bundles"]
        installed = [p.name for p in INSTALLED.iterdir() if (p / "manifest.yaml").is_file()]
        assert [b["name"] for b in listed] == ["band", "choir", *sorted(installed), "mine"]
        assert listed[0]["summary"] == "tiny, fp32"
        default, band, choir, mine = (
            accompany(),
            accompany("bundle", "band"),
            accompany("bundle", "choir"),
            accompany("bundle", "mine"),
        )
        assert np.array_equal(default, band) and np.array_equal(band, choir) and not np.array_equal(band, mine)
        _job, code, message = accompany("bundle", "nobody")
        assert code == "bad_argument" and "bundle 'nobody' is not served: this bridge serves band, choir, " in message
    finally:
        client.close()
        server.stop()


@pytest.mark.slow
def test_a_broken_bundle_found_is_listed_with_why_and_the_others_serve(shelf, vocal, capsys):
    (shelf / "state" / "bundles" / "mine" / "stage_fine.onnx").write_bytes(b"replaced")  # its hash no longer fits
    server = start_bridge(shelf / "shelf" / "band", shelf / "state", "--found")
    try:
        assert main(["--state-dir", str(shelf / "state"), "ping"]) == 0
        answer = json.loads(capsys.readouterr().out)
        (mine,) = [b for b in answer["bundles"] if b["name"] == "mine"]
        assert mine["summary"].startswith("cannot be served: ") and "does not match its sha256" in mine["summary"]
        assert answer["device"] == "auto" and mine["path"] == str(shelf / "state" / "bundles" / "mine")
        assert "bundle mine cannot be served" in (shelf / "state" / "bridge.log").read_text()
    finally:
        server.stop()


def test_a_bridge_that_cannot_start_says_why_in_its_log(shelf, tmp_path):
    shutil.copytree(shelf / "shelf" / "choir", tmp_path / "elsewhere" / "choir")
    command = [sys.executable, "-m", "accompgen_bridge.cli", "--state-dir", str(shelf / "state"), "serve"]
    command += ["--bundle", str(shelf / "shelf"), "--bundle", str(tmp_path / "elsewhere" / "choir")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "two bundles are named choir" in done.stderr
    assert "cannot serve: two bundles are named choir" in (shelf / "state" / "bridge.log").read_text()
