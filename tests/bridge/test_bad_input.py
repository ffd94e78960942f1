"""Every bad request gets /accompgen/error with a clear code, and the server keeps serving."""

import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accompgen_bridge.osc import encode, slip_frame

from .conftest import TcpClient, UdpClient, start_bridge


def error_of(client, address, *args):
    client.send(address, *args)
    reply = client.receive_until("/accompgen/error", "/accompgen/accepted")[-1]
    assert reply[0] == "/accompgen/error", reply
    return reply[1]


def still_serving(client):
    client.send("/accompgen/ping")
    assert client.receive_until("/accompgen/pong", timeout=5)[-1][0] == "/accompgen/pong"


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "notes.txt").write_text("not audio")
    sf.write(root / "empty.wav", np.zeros((0,), np.float32), 44100)
    sf.write(root / "silent.wav", np.zeros(44100, np.float32), 44100)
    nan = np.full(44100, np.nan, np.float32)
    sf.write(root / "nan.wav", nan, 44100, subtype="FLOAT")
    return root


@pytest.mark.parametrize(
    ("name", "start", "duration", "code", "words"),
    [
        ("absent.wav", 0.0, 1.0, "missing_file", "does not exist"),
        ("notes.txt", 0.0, 1.0, "unreadable", "not audio"),
        ("empty.wav", 0.0, 1.0, "empty_audio", "no samples"),
        ("silent.wav", 0.0, 0.5, "empty_audio", "silence"),
        ("nan.wav", 0.0, 0.5, "bad_audio", "NaN"),
    ],
)
def test_bad_files(udp, bad_files, name, start, duration, code, words):
    job_id = ""
    udp.send("/accompgen/generate", str(bad_files / name), start, duration)
    replies = udp.receive_until("/accompgen/error")
    error = replies[-1][1]
    if replies[0][0] == "/accompgen/accepted":  # content problems show when the job reads the audio
        job_id = replies[0][1][0]
    assert error[0] == job_id and error[1] == code and words in error[2]
    still_serving(udp)


@pytest.mark.parametrize(
    ("start", "duration", "code", "words"),
    [
        (11.0, 2.0, "bad_region", "outside"),
        (-1.0, 2.0, "bad_region", "negative"),
        (0.0, 0.0, "bad_region", "at least"),
        (0.0, -3.0, "bad_region", "at least"),
        (0.0, 1e-6, "bad_region", "at least"),
        (0.0, 700.0, "too_long", "--max-duration"),
    ],
)
def test_bad_regions(udp, vocal, start, duration, code, words):
    _job, got_code, message = error_of(udp, "/accompgen/generate", str(vocal), start, duration)
    assert got_code == code and words in message
    still_serving(udp)


@pytest.mark.parametrize(
    ("pairs", "words"),
    [
        (["colour", "red"], "unknown key"),
        (["seed", "forty"], "seed must be a number"),
        (["seed", 1.5], "whole number"),
        (["variations", 99], "variations must lie in"),
        (["quality", "best"], "quality must be one of"),
        (["seed"], "has no value"),
        (["seed", 1, "seed", 2], "given twice"),
    ],
)
def test_bad_keys(udp, vocal, pairs, words):
    _job, code, message = error_of(udp, "/accompgen/generate", str(vocal), 0.0, 1.0, *pairs)
    assert code == "bad_argument" and words in message
    still_serving(udp)


def test_too_few_arguments_and_wrong_types(udp, vocal):
    assert error_of(udp, "/accompgen/generate", str(vocal))[1] == "bad_argument"
    assert error_of(udp, "/accompgen/generate", str(vocal), "zero", 1.0)[1] == "bad_argument"


def test_unknown_job_ids(udp):
    assert error_of(udp, "/accompgen/status", "feedfeed") == [
        "feedfeed",
        "unknown_job",
        "no job 'feedfeed' on this bridge",
    ]
    assert error_of(udp, "/accompgen/cancel", "feedfeed")[1] == "unknown_job"
    assert error_of(udp, "/accompgen/status")[1] == "bad_argument"


def test_unknown_address(udp):
    assert error_of(udp, "/accompgen/dance")[1] == "malformed"


def test_an_unwritable_output_dir(udp, vocal, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _job, code, message = error_of(udp, "/accompgen/generate", str(vocal), 0.0, 1.0, "output_dir", str(blocker / "x"))
    assert code == "output" and "cannot be written" in message


def test_garbage_on_udp(udp):
    for junk in (b"", b"\x00", b"garbage bytes", b"/accompgen/ping", b"#bundle\x00" + b"\xff" * 20):
        udp.send_raw(junk)
    replies = udp.receive_until("/accompgen/error")
    assert replies[-1][1][1] == "malformed"
    still_serving(udp)


def test_garbage_on_tcp_closes_only_that_connection(bridge):
    bad = TcpClient(bridge.tcp_port)
    bad.send_raw(b"\xc0not osc at all\xc0")
    assert bad.receive_until("/accompgen/error")[-1][1][1] == "malformed"
    bad.send_raw(b"\xc0\xdb\x00\xc0")  # a bad SLIP escape: the stream cannot be trusted any more
    assert bad.receive_until("/accompgen/error")[-1][1][1] == "malformed"
    assert bad.sock.recv(100) == b""  # closed by the server
    bad.close()
    good = TcpClient(bridge.tcp_port)
    still_serving(good)
    good.close()


def osc_arguments():
    return st.lists(
        st.one_of(
            st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20),
            st.integers(-(2**31), 2**31 - 1),
            st.floats(width=32, allow_nan=True),
            st.booleans(),
            st.binary(min_size=1, max_size=10),
        ),
        max_size=8,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["/accompgen/generate", "/accompgen/status", "/accompgen/cancel", "/accompgen/ping", "/x"]),
    osc_arguments(),
)
def test_fuzzed_messages_never_stop_the_server(udp, address, args):
    udp.send(address, *args)
    udp.send("/accompgen/ping")
    assert udp.receive_until("/accompgen/pong", timeout=10)[-1][0] == "/accompgen/pong"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_fuzzed_bytes_never_stop_the_server(bridge, data):
    udp = UdpClient(bridge.osc_port)
    tcp = TcpClient(bridge.tcp_port)
    try:
        udp.send_raw(data)
        tcp.send_raw(data + b"\xc0")
        udp.send("/accompgen/ping")
        assert udp.receive_until("/accompgen/pong", timeout=10)[-1][0] == "/accompgen/pong"
    finally:
        udp.close()
        tcp.close()


def test_token_is_required_when_set(tiny_bundle, tmp_path, vocal):
    server = start_bridge(tiny_bundle, tmp_path / "state", "--token", "s3cret")
    client = UdpClient(server.osc_port)
    try:
        assert error_of(client, "/accompgen/ping")[1] == "unauthorized"
        assert error_of(client, "/accompgen/ping", "token", "wrong")[1] == "unauthorized"
        client.send("/accompgen/ping", "token", "s3cret")
        assert client.receive_until("/accompgen/pong")[-1][0] == "/accompgen/pong"
    finally:
        client.close()
        server.stop()


def test_osc_bundles_are_unpacked(udp):
    ping = encode("/accompgen/ping", [])
    bundle = b"#bundle\x00" + struct.pack(">Q", 1) + struct.pack(">i", len(ping)) + ping
    udp.send_raw(bundle)
    assert udp.receive_until("/accompgen/pong")[-1][0] == "/accompgen/pong"


def test_slip_frames_split_across_reads(bridge):
    client = TcpClient(bridge.tcp_port)
    frame = slip_frame(encode("/accompgen/ping", []))
    for byte in frame:
        client.send_raw(bytes([byte]))
    assert client.receive_until("/accompgen/pong")[-1][0] == "/accompgen/pong"
    client.close()


def test_a_second_bridge_on_a_busy_port_says_so_in_one_line(bridge, tiny_bundle, tmp_path):
    """--state-dir after the subcommand, as the README writes it."""
    command = [sys.executable, "-m", "accompgen_bridge.cli", "serve", "--bundle", str(tiny_bundle)]
    command += ["--state-dir", str(tmp_path / "other"), "--osc-port", str(bridge.osc_port), "--tcp-port", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert "is in use" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "other").is_dir()  # the option after the subcommand was taken
