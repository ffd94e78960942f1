import json
import subprocess
import sys

from accompgen.apps.cli import main


def test_model_info_reports_base_at_about_250m(capsys):
    assert main(["model-info", "base", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["stages"]) == {"semantic", "coarse", "fine"}
    assert report["total"] == sum(stage["params"] for stage in report["stages"].values())
    assert 225e6 <= report["total"] <= 275e6
    # the coarse stage carries the most tokens and gets the most parameters
    assert max(report["stages"], key=lambda name: report["stages"][name]["params"]) == "coarse"


def test_model_info_table_lists_every_stage(capsys):
    assert main(["model-info", "tiny"]) == 0
    out = capsys.readouterr().out
    for word in ("semantic", "coarse", "fine", "total"):
        assert word in out


def test_a_user_error_is_a_message_not_a_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "accompgen.apps.cli", "model-info", "nope"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown config 'nope'")
    assert "Traceback" not in result.stderr


SLOW_COMMAND = """
import argparse, sys, time
from accompgen.apps import cli

def slow(args):
    try:
        print("started", flush=True)
        time.sleep(60)
    finally:
        print("cleaned up", flush=True)

parser = argparse.ArgumentParser()
parser.set_defaults(run=slow, command="slow")
cli.build_parser = lambda: parser
sys.exit(cli.main([]))
"""


def test_a_terminated_command_cleans_up_as_an_interrupted_one_does():
    """`kill PID` (SIGTERM) must let a run save its state and remove its half-written files, as Ctrl-C does."""
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_COMMAND], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "started"
        process.terminate()
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert out.strip() == "cleaned up"
    assert err.strip() == "interrupted"
    assert process.returncode == 130
