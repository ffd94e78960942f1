"""The bridge is what musicians install: it must run where torch and transformers are not installed at all."""

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_base_install_generates_without_torch(tmp_path, tiny_bundle, vocal):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)]
    subprocess.run(install, check=True, cwd=tmp_path)
    installed = subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True, check=True).stdout
    names = {line.split()[0].lower() for line in installed.splitlines()[2:]}
    assert {"torch", "transformers"}.isdisjoint(names) and "accompgen" in names

    out = tmp_path / "out.wav"
    command = [str(venv / "bin" / "accompgen-bridge"), "generate", str(vocal), "-o", str(out)]
    command += ["--bundle", str(tiny_bundle), "--start", "1", "--duration", "2", "--seed", "3"]
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True)
    assert sf.info(out).frames == 2 * 44100
    # the training side says which extra it needs instead of a traceback
    info = subprocess.run([str(venv / "bin" / "accompgen"), "model-info", "tiny"], capture_output=True, text=True)
    assert info.returncode == 2 and "pip install 'accompgen[train]'" in info.stderr
    # and importing the runtime pulls neither in
    probe = "import sys, accompgen_bridge.server, accompgen_bridge.engine; print('torch' in sys.modules)"
    assert subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True).stdout == "False\n"
