import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from accompgen.core.decoding import SamplingOptions
from accompgen.core.pipeline import generate_codes
from accompgen.model.torch_inference import TorchInference
from accompgen_bridge.cli import main
from accompgen_bridge.engine import Engine
from accompgen_bridge.job_request import GenerateRequest


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return Engine(tiny_bundle, "cpu")


def test_ort_generation_equals_the_torch_reference(engine, tiny_parts):
    """The whole three-stage pipeline over several windows, token for token, sampled with a fixed seed."""
    manifest = engine.manifest
    windows = {name: spec.plan for name, spec in manifest.stages.items()}
    vocal = np.random.default_rng(1).integers(0, 16, 160)  # 3.2 s
    options = SamplingOptions(seed=11, variations=2)
    ours = generate_codes(
        manifest.tokens, windows, vocal, 3.2, {n: engine._inference_factory(n) for n in windows}, options
    )
    torch_inference = {n: (lambda capacity, m=tiny_parts.stages[n]: TorchInference(m)) for n in windows}
    reference = generate_codes(manifest.tokens, windows, vocal, 3.2, torch_inference, options)
    np.testing.assert_array_equal(ours, reference)


def test_progress_is_monotonic_and_ends_at_one(engine, vocal):
    seen = []
    result = engine.generate(GenerateRequest(str(vocal), 0.25, 1.1, seed=1), lambda *p: seen.append(p))
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert next(phase for phase, _ in seen) == "encode" and seen[-1][0] == "decode"
    assert result.audio.shape == (1, round(1.1 * 44100)) and result.sample_rate == 44100


def test_a_region_shorter_than_the_decoder_minimum(engine, vocal):
    """0.05 s is 4 acoustic frames, fewer than the codec decoder's padding needs."""
    result = engine.generate(GenerateRequest(str(vocal), 3.0, 0.05, seed=1))
    assert result.audio.shape == (1, round(0.05 * 44100))


def test_cli_generate_writes_every_variation(tiny_bundle, vocal, tmp_path, capsys):
    out = tmp_path / "acc.wav"
    code = main(
        [
            "generate",
            str(vocal),
            "-o",
            str(out),
            "--bundle",
            str(tiny_bundle),
            "--start",
            "1",
            "--duration",
            "1",
            "--variations",
            "2",
            "--seed",
            "4",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    written = capsys.readouterr().out.split()
    assert written == [str(tmp_path / "acc-1.wav"), str(tmp_path / "acc-2.wav")]
    assert all(sf.info(path).frames == 44100 for path in written)


def test_cli_reports_a_bad_bundle_at_start(tmp_path, capsys):
    (tmp_path / "manifest.yaml").write_text("format_version: 2\n")
    assert main(["--state-dir", str(tmp_path / "s"), "serve", "--bundle", str(tmp_path)]) == 2
    assert "lacks the key" in capsys.readouterr().err


def test_a_public_interface_needs_a_token(tiny_bundle, tmp_path, capsys):
    assert main(["--state-dir", str(tmp_path), "serve", "--bundle", str(tiny_bundle), "--host", "0.0.0.0"]) == 2
    assert "set --token" in capsys.readouterr().err


def test_client_commands_print_json_even_without_a_bridge(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "accompgen_bridge.cli", "--state-dir", str(tmp_path), "ping", "--port", "9"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert '"error"' in result.stdout and "no bridge is listening" in result.stdout


def test_play_says_clearly_when_there_is_no_audio_device(vocal, capsys):
    code = main(["play", str(vocal)])
    if code == 0:  # a machine with a sound card simply played it
        return
    assert code == 2 and "Open" in capsys.readouterr().err
