import shutil

import pytest
import torch

from accompgen.apps.cli import main
from accompgen.apps.verify import verify_bundle


def test_verify_command_passes_on_a_fresh_bundle(tiny_bundle, capsys):
    assert main(["verify", str(tiny_bundle), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("pass") == 8 and "FAIL" not in out


def test_verify_fails_when_the_weights_differ(tiny_bundle, tiny_parts, tmp_path):
    """Another model than the one exported: the parity check must notice and the command must fail."""
    import copy

    changed = copy.deepcopy(tiny_parts)
    with torch.no_grad():
        changed.stages["fine"].blocks[0].ffn.proj_out.weight.mul_(3.0)
    checks = {c.graph: c for c in verify_bundle(tiny_bundle, changed, device="cpu")}
    assert not checks["stage_fine (batch 1)"].passed
    assert checks["stage_coarse (batch 1)"].passed


def test_an_int8_bundle_agrees_on_average_with_its_model_and_not_with_another(tiny_parts, tiny_config, tmp_path):
    """Rounded weights are judged by the mass they move per sampled token, which another model's weights exceed."""
    from accompgen.model.model_dir import random_parts
    from accompgen_export.bundle_writer import ExportSettings, write_bundle

    write_bundle(tiny_parts, tmp_path / "int8", ExportSettings(quantize="int8"))
    own = [c for c in verify_bundle(tmp_path / "int8", tiny_parts, device="cpu") if c.graph.startswith("stage_")]
    other = verify_bundle(tmp_path / "int8", random_parts(tiny_config, seed=1), device="cpu")
    assert {c.metric for c in own} == {"mean total variation"} and all(c.passed for c in own)
    assert not any(c.passed for c in other if c.graph.startswith("stage_"))


def test_verify_without_a_recorded_source_asks_for_the_model(tiny_bundle, tmp_path, capsys):
    import yaml

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = yaml.safe_load((bundle / "manifest.yaml").read_text())
    manifest["source"] = {}
    (bundle / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    assert main(["verify", str(bundle)]) == 2
    assert "pass --model-dir" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--out", "x"], ["--random-init", "--model-dir", "m", "--out", "x"]])
def test_export_needs_exactly_one_source(args, capsys):
    assert main(["export", *args]) == 2
    assert "either --model-dir" in capsys.readouterr().err
