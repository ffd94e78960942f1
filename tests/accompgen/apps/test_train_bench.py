"""`accompgen bench --train --quick` runs end to end (a smoke run: it measures, it asserts no timing)."""

import json

import pytest

from accompgen.apps import train_bench
from accompgen.apps.cli import main
from accompgen.apps.train_bench import STAGE_PATHS, TOKENIZER_PATHS, paths_for, train_markdown


@pytest.mark.slow
def test_quick_train_bench_reports_every_stage_tokenizer_and_path(tmp_path, capsys):
    assert main(["bench", "--train", "--quick", "--json", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "train_bench.json").read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert set(report["stages"]) == {"semantic", "coarse", "fine"}
    measured = {path.name for path in paths_for(STAGE_PATHS, compile_=False)}
    for row in report["stages"].values():
        assert set(row["paths"]) == measured and row["target_tokens_per_step"] > 0 and row["gflop_per_step"] > 0
        assert all(m["per_s"] > 0 and m["gflops"] > 0 for m in row["paths"].values())
        assert 0 < row["batch_build_share"] < 1
    for name in ("codec", "semantic_encoder"):
        assert set(report[name]["paths"]) == {path.name for path in paths_for(TOKENIZER_PATHS, compile_=False)}
    markdown = (tmp_path / "train_bench.md").read_text()
    assert "| coarse | fp32, SDPA, eager (before) |" in markdown and "| codec |" in markdown


def test_without_native_bf16_only_fp32_is_measured_and_the_report_says_so(monkeypatch):
    monkeypatch.setattr(train_bench, "native_bf16", lambda device: False)
    assert {path.precision for path in paths_for(STAGE_PATHS, compile_=True)} == {"fp32"}
    assert [path.compile for path in paths_for(STAGE_PATHS, compile_=False)] == [False, False]
    one = {"step_s": 1.0, "first_step_s": 1.0, "per_s": 1.0, "gflops": 1.0}
    report = {
        "config": "tiny",
        "threads": 2,
        "native_bf16": False,
        "stages": {"coarse": {"paths": {"fp32": one}, "batch_build_share": 0.01}},
        "codec": {"paths": {"fp32": one}},
        "semantic_encoder": {"paths": {"fp32": one}},
    }
    assert "no native bf16, so only fp32 paths were measured" in train_markdown(report)
