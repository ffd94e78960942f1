"""`accompgen bench --quick` runs end to end (a smoke run: it measures, it asserts no timing)."""

import json

import pytest

from accompgen.cli import main


@pytest.mark.slow
def test_quick_bench_writes_its_report(tmp_path, capsys):
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert [row["past"] for row in report["steps"]] == [64, 256]
    assert set(report["coarse_stage"]) >= {"ort_s", "ort_delay_s", "torch_cached_s", "musicgen_s"}
    assert set(report["bridge"]["seconds"]) == {"encode", "semantic", "coarse", "fine", "decode", "total"}
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert "| past | ORT ms/step |" in (tmp_path / "bench.md").read_text()
    assert "bench.json" in capsys.readouterr().out
