"""The handlers and the dispatcher without sockets: a real job store, real files, a peer that records replies."""

import hmac
import os
from dataclasses import dataclass, field

import pytest

from accompgen_bridge.dispatcher import authorize, handle_message, split_credentials
from accompgen_bridge.errors import JobError
from accompgen_bridge.handlers import BridgeState, Running
from accompgen_bridge.jobs import JobStore
from accompgen_bridge.outputs import OutputPolicy


@dataclass(eq=False)
class Recorder:
    """A peer: keeps what it is sent."""

    host: str = "127.0.0.1"
    port: int = 50000
    received: list = field(default_factory=list)

    def send(self, message):
        self.received.append(message)

    def udp_address(self):
        return self.host, self.port


@pytest.fixture
def state(tmp_path):
    store = JobStore(tmp_path / "state", max_queue=4)
    allowed = tmp_path / "project"
    allowed.mkdir()
    outputs = OutputPolicy.create(tmp_path / "state" / "outputs", [allowed])
    routes = {}

    def reply_peer(peer, port):
        return routes.setdefault(port, Recorder(port=port))

    yield BridgeState(
        store=store,
        outputs=outputs,
        max_duration_s=60.0,
        bundles={"chorales": "chorales, int8", "my choir": "mine, fp32"},
        own_ports={9000, 9001},
        reply_peer=reply_peer,
    )
    store.close()


def ask(state, address, *args, peer=None, token=None):
    peer = peer or Recorder()
    return handle_message(state, address, list(args), peer, token), peer


def error_of(replies):
    ((_peer, (address, args)),) = replies
    assert address == "/accompgen/error", args
    return args


def test_output_dirs_are_confined_to_the_outputs_and_the_allowed_folders(state, vocal, tmp_path):
    allowed = tmp_path / "project" / "media" / "accompgen"
    for outside in ("/etc", str(tmp_path / "elsewhere"), str(tmp_path / "project" / ".." / "elsewhere"), "../../x"):
        _job, code, message = error_of(
            ask(state, "/accompgen/generate", str(vocal), 0.0, 1.0, "output_dir", outside)[0]
        )
        assert code == "output" and ("outside" in message or "absolute" in message)
    replies, _ = ask(state, "/accompgen/generate", str(vocal), 0.0, 1.0, "output_dir", str(allowed))
    assert replies[0][1][0] == "/accompgen/accepted"
    assert not allowed.exists()  # created when the job writes, not at submit
    assert not (tmp_path / "elsewhere").exists()


def test_a_symlink_out_of_an_allowed_folder_is_followed_and_refused(state, vocal, tmp_path):
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", tmp_path / "project" / "link")
    _job, code, _message = error_of(
        ask(state, "/accompgen/generate", str(vocal), 0.0, 1.0, "output_dir", str(tmp_path / "project" / "link"))[0]
    )
    assert code == "output"


def test_a_reply_port_of_the_bridge_itself_is_refused(state, vocal):
    for port in (9000, 9001):
        _job, code, message = error_of(ask(state, "/accompgen/generate", str(vocal), 0.0, 1.0, "reply_port", port)[0])
        assert code == "bad_argument" and "own port" in message


def test_replies_that_come_back_are_never_answered(state):
    for address, args in (
        ("/accompgen/pong", ["0.1.0"]),
        ("/accompgen/error", ["", "malformed", "x"]),
        ("/accompgen/progress", ["abc", "coarse", 0.5]),
        ("/accompgen/status", ["abc", "done", 1.0]),
    ):
        assert ask(state, address, *args)[0] == []


def test_cancelling_a_queued_job_tells_its_submitter_once(state, vocal):
    peer = Recorder()
    replies, _ = ask(state, "/accompgen/generate", str(vocal), 0.0, 1.0, peer=peer)
    job_id = replies[0][1][1][0]
    replies, _ = ask(state, "/accompgen/cancel", job_id, peer=peer)
    assert replies == [(peer, ("/accompgen/cancelled", [job_id]))]


def test_cancelling_a_running_job_adds_the_canceller_once(state, vocal):
    peer = Recorder()
    ask(state, "/accompgen/generate", str(vocal), 0.0, 1.0, peer=peer)
    job = state.store.next_queued()
    state.running = Running(job.id)
    assert ask(state, "/accompgen/cancel", job.id, peer=peer)[0] == []
    assert ask(state, "/accompgen/cancel", job.id, peer=peer)[0] == []
    assert state.running.cancel.is_set() and state.listeners[job.id] == [peer]


@pytest.mark.parametrize(
    ("path", "code", "words"),
    [
        ("folder", "unreadable", "is a folder"),
        ("/dev/zero", "unreadable", "not a regular file"),
        ("fifo", "unreadable", "not a regular file"),
        ("/" + "x" * 300 + ".wav", "missing_file", "cannot be opened"),
    ],
)
def test_things_that_are_not_audio_files_are_named_for_what_they_are(state, tmp_path, path, code, words):
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    target = path if path.startswith("/") else str(tmp_path / path)
    _job, got, message = error_of(ask(state, "/accompgen/generate", target, 0.0, 1.0)[0])
    assert got == code and words in message and len(message) < 400


def test_a_region_too_short_to_accompany_is_a_bad_region_at_once(state, vocal):
    _job, code, message = error_of(ask(state, "/accompgen/generate", str(vocal), 0.0, 1e-6)[0])
    assert code == "bad_region" and "at least" in message


def test_a_bundle_that_did_not_load_is_named_in_every_answer_for_it(state, vocal):
    state.engine_errors["my choir"] = "its graphs could not be loaded: stage_fine.onnx is broken"
    _job, code, message = error_of(ask(state, "/accompgen/generate", str(vocal), 0.0, 1.0, "bundle", "my choir")[0])
    assert code == "internal" and message == f"bundle my choir cannot be served: {state.engine_errors['my choir']}"
    ((_, (address, _)),), _ = ask(state, "/accompgen/generate", str(vocal), 0.0, 1.0)  # the default still serves
    assert address == "/accompgen/accepted"
    ((_, (address, _)),), _ = ask(state, "/accompgen/ping")
    assert address == "/accompgen/pong"
    ((_, (_, listed)),), _ = ask(state, "/accompgen/bundles")
    assert listed == ["chorales", "chorales, int8", "my choir", f"cannot be served: {state.engine_errors['my choir']}"]


def test_when_no_bundle_loaded_even_ping_says_why(state):
    state.engine_errors |= {"chorales": "no graphs", "my choir": "no manifest"}
    _job, code, message = error_of(ask(state, "/accompgen/ping")[0])
    assert code == "internal"
    assert message == "bundle chorales cannot be served: no graphs; bundle my choir cannot be served: no manifest"


def test_bundles_lists_every_bundle_served_the_default_first(state):
    ((peer, (address, listed)),), sender = ask(state, "/accompgen/bundles")
    assert peer is sender and address == "/accompgen/bundles"
    assert listed == ["chorales", "chorales, int8", "my choir", "mine, fp32"]
    assert ask(state, "/accompgen/bundles", *listed)[0] == []  # a reply that found its way back is not answered


def test_a_job_holds_the_bundle_it_runs_with(state, vocal):
    replies = [
        ask(state, "/accompgen/generate", str(vocal), 0.0, 1.0, *pair)[0] for pair in ([], ["bundle", "my choir"])
    ]
    job_ids = [args[0] for ((_, (_, args)),) in replies]
    assert [state.store.get(job_id).request.bundle for job_id in job_ids] == ["chorales", "my choir"]


def test_an_unknown_bundle_is_refused_with_the_ones_served(state, vocal):
    _job, code, message = error_of(ask(state, "/accompgen/generate", str(vocal), 0.0, 1.0, "bundle", "rock")[0])
    assert code == "bad_argument" and "bundle 'rock' is not served: this bridge serves chorales, my choir" in message
    assert state.store.unfinished() == []


def test_credentials_are_taken_off_the_arguments_in_either_order():
    expected = (["a", 1], {"token": "t", "local_key": "k"})
    assert split_credentials(["a", 1, "token", "t", "local_key", "k"]) == expected
    assert split_credentials(["a", 1, "local_key", "k", "token", "t"]) == expected
    assert split_credentials(["token"]) == (["token"], {})


def test_the_token_is_checked_in_constant_time(monkeypatch):
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    authorize("s3cret", "s3cret")
    assert compared == [(b"s3cret", b"s3cret")]
    for given in (None, "s3cre", 5, "\udc80"):
        with pytest.raises(JobError) as err:
            authorize(given, "s3cret")
        assert err.value.code == "unauthorized"
    authorize(None, None)  # a bridge without a token asks for none


def test_the_local_key_lets_this_machines_user_write_anywhere(state, vocal, tmp_path):
    state.local_key = "the-key"
    anywhere = str(tmp_path / "reaper project" / "Media")
    for key, accepted in (("the-key", True), ("a-guess", False)):
        replies, _ = ask(state, "/accompgen/generate", str(vocal), 0.0, 1.0, "output_dir", anywhere, "local_key", key)
        assert (replies[0][1][0] == "/accompgen/accepted") == accepted
    job = state.store.next_queued()
    assert job.request.local and job.request.output_dir == anywhere


def test_only_the_user_who_started_the_bridge_can_stop_it(state):
    stops = []
    state.local_key, state.request_stop = "the-key", lambda: stops.append(True)
    for key in (None, "a-guess"):
        credentials = ("local_key", key) if key else ()
        assert error_of(ask(state, "/accompgen/stop", *credentials)[0])[1] == "unauthorized"
    assert stops == []
    replies, _ = ask(state, "/accompgen/stop", "local_key", "the-key")
    assert replies[0][1][0] == "/accompgen/stopping" and stops == [True]


def test_a_request_with_credentials_is_not_taken_for_a_reply(state, vocal):
    """`/accompgen/status <job_id> token <t>` has a reply's three arguments until the token is taken off."""
    ((_, (_, (job_id, _))),), _ = ask(state, "/accompgen/generate", str(vocal), 0.0, 1.0, "token", "t", token="t")
    ((_, (address, args)),), _ = ask(state, "/accompgen/status", job_id, "token", "t", token="t")
    assert address == "/accompgen/status" and args[:2] == [job_id, "queued"]


def test_a_bundles_request_with_credentials_is_answered_and_a_reply_never_is(state):
    ((_, (address, listed)),), _ = ask(state, "/accompgen/bundles", "token", "t", token="t")
    assert address == "/accompgen/bundles" and listed[0] == "chorales"
    assert ask(state, "/accompgen/bundles", "choir", "mine, fp32", "token", "t, fp32", token="t")[0] == []
