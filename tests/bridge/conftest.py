"""Real bridge processes on 127.0.0.1 with the tiny bundle, and a vocal to feed them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile as sf

from accompgen.core.synth import sung_phrase
from accompgen_bridge.osc import Message, SlipDecoder, decode, encode, slip_frame

WAIT_S = 30.0


@pytest.fixture(scope="session")
def vocal(tmp_path_factory) -> Path:
    """12 s of synthesized singing at 44.1 kHz, stereo (the bridge mixes it down)."""
    path = tmp_path_factory.mktemp("audio") / "vocal take.wav"
    phrase = sung_phrase(12.0, 44100)
    sf.write(path, [[s, 0.5 * s] for s in phrase], 44100)
    return path


@dataclass
class BridgeProcess:
    process: subprocess.Popen
    state_dir: Path
    osc_port: int
    tcp_port: int

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=WAIT_S)


def start_bridge(bundle: Path, state_dir: Path, *extra: str) -> BridgeProcess:
    (state_dir / "bridge.json").unlink(missing_ok=True)
    command = [sys.executable, "-m", "accompgen_bridge.cli", "--state-dir", str(state_dir), "serve"]
    command += ["--bundle", str(bundle), "--osc-port", "0", "--tcp-port", "0", *extra]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            address = json.loads((state_dir / "bridge.json").read_text())
        except (OSError, ValueError):
            address = None
        if address and address["pid"] == process.pid:
            return BridgeProcess(process, state_dir, address["osc_port"], address["tcp_port"])
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the bridge did not start")


@pytest.fixture
def bridge(tiny_bundle, tmp_path) -> Iterator[BridgeProcess]:
    server = start_bridge(tiny_bundle, tmp_path / "state", "--max-queue", "8", "--allow-output-dir", str(tmp_path))
    yield server
    server.stop()


class UdpClient:
    """Sends OSC over UDP from one loopback socket and collects what comes back."""

    def __init__(self, port: int):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def send(self, address: str, *args) -> None:
        self.sock.sendto(encode(address, list(args)), ("127.0.0.1", self.port))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.port))

    def receive_until(self, *addresses: str, timeout: float = WAIT_S) -> list[Message]:
        """Every reply up to and including the first whose address is one of `addresses`."""
        replies: list[Message] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                break
            replies += decode(data)
            if replies[-1][0] in addresses:
                return replies
        raise AssertionError(f"no {addresses} within {timeout} s; got {replies}")

    def close(self) -> None:
        self.sock.close()


class TcpClient:
    """One OSC-over-TCP (SLIP) connection."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        self.frames = SlipDecoder()
        self.pending: list[Message] = []

    def send(self, address: str, *args) -> None:
        self.sock.sendall(slip_frame(encode(address, list(args))))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive_until(self, *addresses: str, timeout: float = WAIT_S) -> list[Message]:
        replies: list[Message] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self.pending:
                replies.append(self.pending.pop(0))
                if replies[-1][0] in addresses:
                    return replies
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(1 << 16)
            if not data:
                break
            for frame in self.frames.feed(data):
                self.pending += decode(frame)
        raise AssertionError(f"no {addresses} within {timeout} s; got {replies}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def udp(bridge) -> Iterator[UdpClient]:
    client = UdpClient(bridge.osc_port)
    yield client
    client.close()


@pytest.fixture
def tcp(bridge) -> Iterator[TcpClient]:
    client = TcpClient(bridge.tcp_port)
    yield client
    client.close()
