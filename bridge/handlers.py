"""What the bridge answers: one plain function per OSC address, over the bridge's state, returning its replies.

No sockets here: a handler gets the arguments and the peer that sent them and returns (peer, message) pairs;
the transports send them. Replies about a job later on (progress, done, error, cancelled) go to the job's
listeners: whoever submitted it (or its `reply_port`) and whoever asked to cancel it, each once.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from accompgen import __version__
from accompgen_bridge.audio import check_region
from accompgen_bridge.errors import BAD_ARGUMENT, FINISHED, INTERNAL, TOO_LONG, UNAUTHORIZED, JobError, shown
from accompgen_bridge.job_request import parse_generate
from accompgen_bridge.jobs import JobStore
from accompgen_bridge.osc import Message
from accompgen_bridge.outputs import OutputPolicy


class Peer(Protocol):
    """Someone to send replies to: a UDP address or a TCP connection."""

    def send(self, message: Message) -> None: ...

    def udp_address(self) -> tuple[str, int] | None:
        """The peer's host for a `reply_port` reply, and its port (UDP peers only)."""
        ...


Reply = tuple[Peer, Message]


@dataclass
class Running:
    """The job the worker is on: what the heartbeat reports and what cancel stops."""

    job_id: str
    stage: str = "encode"
    fraction: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class BridgeState:
    """Everything the handlers and the worker share."""

    store: JobStore
    outputs: OutputPolicy
    max_duration_s: float
    bundles: dict[str, str]  # name -> summary of every bundle served, the default (a request naming none) first
    own_ports: set[int] = field(default_factory=set)  # a reply_port must never be one of these
    reply_peer: Callable[[Peer, int], Peer | None] = lambda peer, port: None  # set by the transports
    listeners: dict[str, list[Peer]] = field(default_factory=dict)
    running: Running | None = None
    engine_errors: dict[str, str] = field(default_factory=dict)  # bundle name -> why it cannot generate
    local_key: str | None = None  # in bridge.json: requests that carry it come from this machine's user
    job_waiting: threading.Event = field(default_factory=threading.Event)
    request_stop: Callable[[], None] = lambda: None  # set by the server: ends serving as SIGTERM does

    def listen(self, job_id: str, peer: Peer) -> None:
        peers = self.listeners.setdefault(job_id, [])
        if peer not in peers:  # one reply per event per listener, however often it asked
            peers.append(peer)


def bundle_problem(state: BridgeState, name: str) -> JobError | None:
    """Why the bundle named cannot generate here, or None."""
    if name not in state.bundles:
        return JobError(
            BAD_ARGUMENT,
            f"bundle {shown(name)} is not served: this bridge serves {', '.join(state.bundles)} (start it with "
            "--bundle FOLDER to serve another)",
        )
    if name in state.engine_errors:
        return JobError(INTERNAL, f"bundle {name} cannot be served: {state.engine_errors[name]}")
    return None


def served_bundle(state: BridgeState, name: str | None) -> str:
    """The bundle a request names (the default when it names none), if this bridge can generate with it."""
    chosen = next(iter(state.bundles)) if name is None else name
    problem = bundle_problem(state, chosen)
    if problem is not None:
        raise problem
    return chosen


def ping(state: BridgeState, args: list[Any], peer: Peer, local: bool) -> list[Reply]:
    if set(state.bundles) <= set(state.engine_errors):  # not one bundle can generate
        raise JobError(INTERNAL, "; ".join(str(bundle_problem(state, name)) for name in state.bundles))
    return [(peer, ("/accompgen/pong", [__version__]))]


def bundles(state: BridgeState, args: list[Any], peer: Peer, local: bool) -> list[Reply]:
    """Every bundle served, the default first: name, summary, name, summary..."""
    listed = []
    for name, summary in state.bundles.items():
        error = state.engine_errors.get(name)
        listed += [name, f"cannot be served: {error}" if error else summary]
    return [(peer, ("/accompgen/bundles", listed))]


def generate(state: BridgeState, args: list[Any], peer: Peer, local: bool) -> list[Reply]:
    request = parse_generate(args)
    request = dataclasses.replace(request, local=local, bundle=served_bundle(state, request.bundle))
    if request.duration_s > state.max_duration_s:
        raise JobError(
            TOO_LONG,
            f"the region is {request.duration_s:g} s long; this bridge takes up to {state.max_duration_s:g} s"
            " (--max-duration)",
        )
    reply_to = peer
    if request.reply_port is not None:
        if request.reply_port in state.own_ports:
            raise JobError(BAD_ARGUMENT, f"reply_port {request.reply_port} is this bridge's own port")
        routed = state.reply_peer(peer, request.reply_port)
        if routed is None:
            raise JobError(BAD_ARGUMENT, "reply_port needs a sender with an IP address")
        reply_to = routed
    check_region(request.input_path, request.start_s, request.duration_s)
    state.outputs.directory(request.output_dir, request.local)
    job = state.store.submit(request)
    state.listen(job.id, reply_to)
    state.job_waiting.set()
    # a sender that cannot listen (oscsend) gets everything on reply_port, the acceptance included
    return [(reply_to, ("/accompgen/accepted", [job.id, str(state.store.status_path(job.id))]))]


def status(state: BridgeState, args: list[Any], peer: Peer, local: bool) -> list[Reply]:
    job = state.store.get(job_id_of(args))
    return [(peer, ("/accompgen/status", [job.id, job.state, float(job.fraction)]))]


def cancel(state: BridgeState, args: list[Any], peer: Peer, local: bool) -> list[Reply]:
    """A queued job is cancelled at once; a running one at the worker's next step, which then tells every
    listener (the canceller among them) once."""
    job = state.store.get(job_id_of(args))
    if state.store.cancel_queued(job.id):
        state.listen(job.id, peer)
        message: Message = ("/accompgen/cancelled", [job.id])
        return [(listener, message) for listener in state.listeners.pop(job.id, [])]
    running = state.running
    if running is not None and running.job_id == job.id:
        state.listen(job.id, peer)
        running.cancel.set()
        return []
    job = state.store.get(job.id)
    raise JobError(FINISHED, f"job {job.id} has already ended ({job.state})")


def stop(state: BridgeState, args: list[Any], peer: Peer, local: bool) -> list[Reply]:
    """Stop serving, as SIGTERM does (a running job is queued again at the next start). Only the user who started
    the bridge may (the local key of bridge.json): no peer on the network can switch it off."""
    if not local:
        raise JobError(UNAUTHORIZED, "only the user who started the bridge can stop it (accompgen-bridge stop)")
    state.request_stop()
    return [(peer, ("/accompgen/stopping", [__version__]))]


def job_id_of(args: list[Any]) -> str:
    if len(args) != 1 or not isinstance(args[0], str):
        raise JobError(BAD_ARGUMENT, "give exactly one argument: the job id")
    return args[0]


Handler = Callable[[BridgeState, list[Any], Peer, bool], list[Reply]]  # (state, args, sender, local)

HANDLERS: dict[str, Handler] = {
    "/accompgen/ping": ping,
    "/accompgen/bundles": bundles,
    "/accompgen/generate": generate,
    "/accompgen/status": status,
    "/accompgen/cancel": cancel,
    "/accompgen/stop": stop,
}

# Addresses the bridge sends: a message with one of these is a reply that found its way back (a reply_port
# pointed at a bridge), and answering it would start an endless exchange. `/accompgen/status` is both: the
# request carries one argument, the reply three; `/accompgen/bundles` too: the request carries none.
REPLY_ADDRESSES = (
    "/accompgen/pong",
    "/accompgen/accepted",
    "/accompgen/progress",
    "/accompgen/done",
    "/accompgen/error",
    "/accompgen/cancelled",
    "/accompgen/stopping",
)


def is_reply(address: str, args: list[Any], raw_args: list[Any]) -> bool:
    """`args`: without the trailing credentials; `raw_args`: as sent (a bundles reply may end with a bundle named
    like a credential, which must not make it a request)."""
    return (
        address in REPLY_ADDRESSES
        or (address == "/accompgen/status" and len(args) == 3)
        or (address == "/accompgen/bundles" and bool(raw_args) and raw_args[0] not in CREDENTIALS)
    )


CREDENTIALS = ("token", "local_key")  # pairs that may end any request
