"""`accompgen demo`: a vocal sent over OSC to a real bridge, three WAVs back.

By default the bundle trained on Bach's chorales that ships with the package, and its vocal: the melody of a
held-out chorale sung on a voice patch. `--random-init` uses a tiny untrained bundle instead (exported once into
the user cache), `--bundle DIR` any bundle; a bundle without a demo vocal gets a synthesized sung phrase.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import platformdirs
import soundfile as sf
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from accompgen import __version__
from accompgen.core.errors import UserError
from accompgen.core.synth import sung_phrase

SYNTH_SECONDS = 8.0
DEMO_RATE = 44100
DEMO_VOCAL = "demo_vocal.flac"  # beside the graphs of a bundle that brings its own demo vocal
START_TIMEOUT_S = 60.0
JOB_TIMEOUT_S = 600.0


def shipped_bundle() -> Path:
    """The bundle trained by `accompgen recipe chorales`, installed with the package."""
    path = Path(str(resources.files("accompgen") / "bundles" / "chorales"))
    if not (path / "manifest.yaml").is_file():
        raise UserError(f"the shipped bundle is missing from {path}: reinstall accompgen, or pass --bundle DIR")
    return path


def random_bundle(console: Console | None = None) -> Path:
    """The tiny random-init bundle in the user cache, exported on first use."""
    from accompgen.model.config import ModelConfig
    from accompgen.model.model_dir import random_parts
    from accompgen_export.bundle_writer import write_bundle

    path = Path(platformdirs.user_cache_dir("accompgen", appauthor=False)) / "bundles" / f"tiny-random-{__version__}"
    if not (path / "manifest.yaml").is_file():
        with (console or Console(stderr=True)).status("exporting a tiny random-init bundle (once)") as status:
            write_bundle(
                random_parts(ModelConfig.load("tiny")),
                path,
                overwrite=path.exists(),
                progress=lambda graph: status.update(f"exporting {graph} (once; about half a minute)"),
            )
    return path


def demo_vocal(bundle: Path, seed: int) -> tuple[np.ndarray, int]:
    """The bundle's own demo vocal, or a synthesized sung phrase."""
    if (bundle / DEMO_VOCAL).is_file():
        audio, rate = sf.read(bundle / DEMO_VOCAL, dtype="float32")
        return audio, rate
    return sung_phrase(SYNTH_SECONDS, DEMO_RATE, seed), DEMO_RATE


def start_bridge(bundle: Path, state_dir: Path) -> tuple[subprocess.Popen, int]:
    """A real bridge process on free loopback ports; returns it and its OSC/UDP port."""
    command = [sys.executable, "-m", "accompgen_bridge.cli", "--state-dir", str(state_dir), "--log-level", "warning"]
    command += ["serve", "--bundle", str(bundle), "--osc-port", "0", "--tcp-port", "0"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    from accompgen_bridge.paths import read_address

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        address = read_address(state_dir)
        if address and address["pid"] == process.pid:
            return process, int(address["osc_port"])
        if process.poll() is not None:
            raise UserError(f"the bridge did not start: {process.stderr.read().strip() if process.stderr else ''}")
        time.sleep(0.05)
    process.kill()
    raise UserError(f"the bridge did not start within {START_TIMEOUT_S:g} s")


def request_accompaniment(
    osc_port: int, vocal: Path, seconds: float, output_dir: Path, seed: int, console: Console
) -> Path:
    """Send /accompgen/generate over UDP and follow the replies to the output path."""
    from accompgen_bridge.osc import decode, encode

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(1.0)
        args = [str(vocal), 0.0, seconds, "seed", seed, "output_dir", str(output_dir)]
        sock.sendto(encode("/accompgen/generate", args), ("127.0.0.1", osc_port))
        columns = (TextColumn("{task.description:<8}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"))
        deadline = time.monotonic() + JOB_TIMEOUT_S
        with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("queued", total=1.0)
            while time.monotonic() < deadline:
                try:
                    data = sock.recv(1 << 16)
                except TimeoutError:
                    continue
                for address, values in decode(data):
                    if address == "/accompgen/progress":
                        bar.update(task, description=values[1], completed=values[2])
                    elif address == "/accompgen/done":
                        bar.update(task, description="done", completed=1.0)
                        return Path(values[1])
                    elif address == "/accompgen/error":
                        raise UserError(f"the bridge failed the job: {values[1]}: {values[2]}")
    raise UserError(f"no answer from the bridge within {JOB_TIMEOUT_S:g} s")


def run_demo(out: Path, bundle: Path, seed: int = 0) -> tuple[dict[str, Path], bool]:
    """Writes vocal.wav, accompaniment.wav and mix.wav into `out`; returns them and whether the weights are
    trained."""
    from accompgen.core.bundle import load_bundle

    console = Console()
    trained = "random_init_seed" not in load_bundle(bundle).source
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{name}.wav" for name in ("vocal", "accompaniment", "mix")}
    vocal, rate = demo_vocal(bundle, seed)
    sf.write(paths["vocal"], vocal, rate)
    with tempfile.TemporaryDirectory(prefix="accompgen-demo-") as state:
        process, osc_port = start_bridge(bundle, Path(state))
        try:
            produced = request_accompaniment(
                osc_port, paths["vocal"].resolve(), len(vocal) / rate, Path(state) / "outputs", seed, console
            )
            shutil.move(produced, paths["accompaniment"])
        finally:
            process.terminate()
            process.wait(timeout=30)
    accompaniment, _ = sf.read(paths["accompaniment"], dtype="float32")
    mix = vocal + accompaniment
    sf.write(paths["mix"], mix / max(1.0, float(np.abs(mix).max()) / 0.9), rate)
    return paths, trained


def print_summary(paths: dict[str, Path], trained: bool) -> None:
    for name, path in paths.items():
        print(f"{name:<14} {path}")
    if not trained:
        print(
            "\nThese weights are untrained (random), so the accompaniment is noise shaped by the pipeline, "
            "not music.\nWithout --random-init the demo uses the trained chorale bundle that ships with AccompGen."
        )
