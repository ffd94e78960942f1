"""`accompgen bench --quick` runs end to end (a smoke run: it measures, it asserts no timing)."""

import json

import pytest

from accompgen.apps.cli import main


@pytest.mark.slow
def test_quick_bench_reports_every_variant(tmp_path, capsys):
    assert main(["bench", "--quick", "--json", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert [row["past"] for row in report["steps"]] == [64, 256]
    assert set(report["steps"][0]["ort_ms"]) == {"growing", "fp32", "int8", "int4"}
    variants = {(run["pattern"], run["weights"]) for run in report["bridge"]}
    assert variants == {(p, w) for p in ("flat", "delay") for w in ("fp32", "int8", "int4")}
    assert all(
        set(run["seconds"]) == {"encode", "semantic", "coarse", "fine", "decode", "total"} for run in report["bridge"]
    )
    assert set(report["coarse_stage"]) >= {"ort_s", "ort_delay_s", "ort_delay_int8_s", "torch_cached_s", "musicgen_s"}
    assert (tmp_path / "bench.png").stat().st_size > 0
    markdown = (tmp_path / "bench.md").read_text()
    assert "| past | torch uncached |" in markdown and "| delay | int4 |" in markdown
