import json
import os
import signal
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import TcpClient, UdpClient, start_bridge


def generate(client, vocal, start=1.0, duration=1.5, *pairs):
    client.send("/accompgen/generate", str(vocal), start, duration, *pairs)
    return client.receive_until("/accompgen/done", "/accompgen/error", "/accompgen/cancelled")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_generate_end_to_end(request, transport, vocal):
    client = request.getfixturevalue(transport)
    replies = generate(client, vocal, 2.0, 1.5, "seed", 7, "variations", 2)
    addresses = [address for address, _ in replies]
    assert addresses[0] == "/accompgen/accepted"
    assert "/accompgen/progress" in addresses
    assert addresses[-1] == "/accompgen/done", replies[-1]
    job_id, status_file = replies[0][1]
    fractions = [args[2] for address, args in replies if address == "/accompgen/progress"]
    assert all(0.0 <= f <= 1.0 for f in fractions) and fractions == sorted(fractions)
    done_id, *outputs = replies[-1][1]
    assert done_id == job_id and len(outputs) == 2
    for path in outputs:
        info = sf.info(path)
        assert info.samplerate == 44100
        assert info.frames == round(1.5 * 44100)
        assert "seed7" in path or "seed8" in path
    status = json.loads(Path(status_file).read_text())
    assert status["state"] == "done" and status["outputs"] == outputs


def test_same_seed_gives_identical_bytes_and_variations_differ(udp, vocal, tmp_path):
    first = generate(udp, vocal, 1.0, 1.0, "seed", 3, "variations", 2, "output_dir", str(tmp_path / "a"))
    again = generate(udp, vocal, 1.0, 1.0, "seed", 3, "variations", 2, "output_dir", str(tmp_path / "b"))
    a, b = first[-1][1][1:], again[-1][1][1:]
    assert Path(a[0]).read_bytes() == Path(b[0]).read_bytes()
    assert Path(a[1]).read_bytes() == Path(b[1]).read_bytes()
    assert not np.array_equal(sf.read(a[0])[0], sf.read(a[1])[0])


def test_sample_rate_and_preview_quality(udp, vocal):
    replies = generate(udp, vocal, 0.0, 1.0, "sample_rate", 22050, "quality", "preview")
    path = replies[-1][1][1]
    assert sf.info(path).samplerate == 22050 and sf.info(path).frames == 22050


def test_long_input_spans_several_windows(udp, vocal):
    """5.3 s is three semantic and coarse windows and six fine windows of the tiny model."""
    replies = generate(udp, vocal, 0.5, 5.3)
    audio, rate = sf.read(replies[-1][1][1])
    assert len(audio) == round(5.3 * rate)
    # continuous: no second of the output is silent
    seconds = audio[: len(audio) // rate * rate].reshape(-1, rate)
    assert (np.abs(seconds).max(axis=1) > 1e-4).all()


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_the_address_file_with_the_local_key_is_readable_by_this_user_only(bridge):
    assert stat.S_IMODE((bridge.state_dir / "bridge.json").stat().st_mode) == 0o600


def test_status_and_ping(udp):
    udp.send("/accompgen/ping")
    assert udp.receive_until("/accompgen/pong")[-1] == ("/accompgen/pong", ["0.1.0"])


def test_status_reports_a_job(udp, vocal):
    replies = generate(udp, vocal)
    job_id = replies[0][1][0]
    udp.send("/accompgen/status", job_id)
    assert udp.receive_until("/accompgen/status")[-1] == ("/accompgen/status", [job_id, "done", 1.0])


def test_cancel_stops_a_running_job(udp, vocal, bridge):
    """The worker checks the cancel flag at every decoding step; the wait below only bounds a hang."""
    udp.send("/accompgen/generate", str(vocal), 0.0, 12.0)
    replies = udp.receive_until("/accompgen/progress")
    job_id = replies[0][1][0]
    udp.send("/accompgen/cancel", job_id)
    replies = udp.receive_until("/accompgen/cancelled", timeout=10)
    assert replies[-1] == ("/accompgen/cancelled", [job_id])
    status = json.loads((bridge.state_dir / "status" / f"{job_id}.json").read_text())
    assert status["state"] == "cancelled" and status["outputs"] == []
    assert not list((bridge.state_dir / "outputs").glob("*.wav"))


def test_a_queued_job_can_be_cancelled(udp, vocal):
    udp.send("/accompgen/generate", str(vocal), 0.0, 12.0)
    udp.send("/accompgen/generate", str(vocal), 0.0, 1.0)
    replies = udp.receive_until("/accompgen/accepted")
    replies += udp.receive_until("/accompgen/accepted")
    first, second = [args[0] for address, args in replies if address == "/accompgen/accepted"]
    udp.send("/accompgen/cancel", second)
    assert ("/accompgen/cancelled", [second]) in udp.receive_until("/accompgen/cancelled", timeout=5)
    udp.send("/accompgen/cancel", first)
    udp.receive_until("/accompgen/cancelled", timeout=5)


def test_a_client_that_disconnects_mid_job_does_not_stop_it(bridge, vocal):
    client = TcpClient(bridge.tcp_port)
    client.send("/accompgen/generate", str(vocal), 0.0, 2.0)
    _job_id, status_file = client.receive_until("/accompgen/accepted")[-1][1]
    client.close()
    deadline = time.monotonic() + 30
    while json.loads(Path(status_file).read_text())["state"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    probe = UdpClient(bridge.osc_port)
    probe.send("/accompgen/ping")
    probe.receive_until("/accompgen/pong")
    probe.close()


def test_a_killed_bridge_runs_the_interrupted_job_after_restart(tiny_bundle, tmp_path, vocal):
    state = tmp_path / "state"
    server = start_bridge(tiny_bundle, state)
    client = UdpClient(server.osc_port)
    client.send("/accompgen/generate", str(vocal), 0.0, 12.0, "seed", 1)
    _job_id, status_file = client.receive_until("/accompgen/progress")[0][1]
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    assert json.loads(Path(status_file).read_text())["state"] == "running"
    restarted = start_bridge(tiny_bundle, state)
    try:
        deadline = time.monotonic() + 60
        while (status := json.loads(Path(status_file).read_text()))["state"] != "done":
            assert status["state"] in ("queued", "running") and time.monotonic() < deadline
            time.sleep(0.1)
        assert len(status["outputs"]) == 1 and Path(status["outputs"][0]).is_file()
    finally:
        restarted.stop()
        client.close()


def test_twenty_concurrent_clients_lose_nothing(bridge, vocal):
    import threading

    results: list[tuple[str, list]] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        client = TcpClient(bridge.tcp_port)
        try:
            client.send("/accompgen/generate", str(vocal), 0.0, 0.5, "seed", i)
            reply = client.receive_until("/accompgen/accepted", "/accompgen/error")[-1]
            with lock:
                results.append(reply)
        finally:
            client.close()

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 20
    accepted = [args[0] for address, args in results if address == "/accompgen/accepted"]
    busy = [args for address, args in results if address == "/accompgen/error"]
    assert all(args[1] == "busy" for args in busy)
    assert len(accepted) == len(set(accepted)) and len(accepted) + len(busy) == 20 and accepted
    deadline = time.monotonic() + 120
    states = {}
    while time.monotonic() < deadline:
        states = {
            job_id: json.loads((bridge.state_dir / "status" / f"{job_id}.json").read_text())["state"]
            for job_id in accepted
        }
        if set(states.values()) == {"done"}:
            break
        time.sleep(0.2)
    assert set(states.values()) == {"done"}
    assert len(list((bridge.state_dir / "outputs").glob("*.wav"))) == len(accepted)


def test_reply_port_gets_every_reply_for_senders_that_cannot_listen(bridge, vocal):
    """oscsend sends and exits: with reply_port, accepted, progress and done all go to another socket."""
    sender, listener = UdpClient(bridge.osc_port), UdpClient(bridge.osc_port)
    try:
        port = listener.sock.getsockname()[1]
        sender.send("/accompgen/generate", str(vocal), 0.0, 1.0, "reply_port", port)
        replies = listener.receive_until("/accompgen/done")
        assert replies[0][0] == "/accompgen/accepted"
        sender.sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sender.sock.recv(1 << 16)
    finally:
        sender.close()
        listener.close()


def test_stop_ends_the_bridge_and_its_log_stays_readable(tiny_bundle, tmp_path):
    from accompgen_bridge.cli import main

    server = start_bridge(tiny_bundle, tmp_path / "state")
    try:
        state = ["--state-dir", str(server.state_dir)]
        assert main([*state, "stop", "--timeout", "20"]) == 0
        assert server.process.wait(timeout=30) == 0 and not (server.state_dir / "bridge.json").exists()
        reply = tmp_path / "log.json"
        assert main([*state, "log", "--lines", "5", "--reply", str(reply)]) == 0
        answer = json.loads(reply.read_text())
        assert answer["log_file"] == str(server.state_dir / "bridge.log")
        assert any("stopping" in line for line in answer["lines"]) and len(answer["lines"]) <= 5
        assert main([*state, "stop"]) == 2  # none is running now: said, not a traceback
    finally:
        server.stop()
