"""The bridge server: OSC over UDP and over TCP (SLIP framing), a worker thread that runs jobs from the store.

Handlers are plain methods, one per address, that return their replies; the transports only decode, dispatch
and send. Replies about a job (progress, done, error, cancelled) go to whoever submitted it: the UDP sender,
its `reply_port`, or the TCP connection while it stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from accompgen import __version__
from accompgen.bundle import load_bundle
from accompgen.errors import UserError
from accompgen_bridge.audio import check_region, write_wav
from accompgen_bridge.engine import Cancelled, Engine
from accompgen_bridge.errors import (
    BAD_ARGUMENT,
    FINISHED,
    INTERNAL,
    MALFORMED,
    OUTPUT,
    TOO_LONG,
    UNAUTHORIZED,
    JobError,
)
from accompgen_bridge.jobs import CANCELLED, DONE, FAILED, QUEUED, Job, JobStore, write_json_atomic
from accompgen_bridge.osc import MalformedPacket, Message, SlipDecoder, decode, encode, slip_frame
from accompgen_bridge.paths import ADDRESS_FILE, DEFAULT_OSC_PORT, DEFAULT_TCP_PORT
from accompgen_bridge.requests import GenerateArgs, parse_generate

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.5  # progress replies go out this often while a job runs
STATUS_WRITE_S = 0.25  # the status file is rewritten at most this often during a job


@dataclass(frozen=True)
class ServerConfig:
    bundle: Path
    state_dir: Path
    host: str = "127.0.0.1"
    osc_port: int = DEFAULT_OSC_PORT  # 0 lets the system choose; bridge.json tells which
    tcp_port: int = DEFAULT_TCP_PORT
    token: str | None = None  # required on every message when set; required to bind beyond loopback
    device: str = "auto"
    max_duration_s: float = 600.0
    max_queue: int = 16

    @property
    def output_dir(self) -> Path:
        return self.state_dir / "outputs"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Peer(Protocol):
    def send(self, message: Message) -> None: ...


@dataclass(frozen=True)
class UdpPeer:
    transport: asyncio.DatagramTransport
    address: tuple[Any, ...]

    def send(self, message: Message) -> None:
        self.transport.sendto(encode(*message), self.address)


@dataclass(frozen=True)
class TcpPeer:
    writer: asyncio.StreamWriter

    def send(self, message: Message) -> None:
        if not self.writer.is_closing():  # a client that left gets nothing, the job carries on
            self.writer.write(slip_frame(encode(*message)))


def error_reply(job_id: str, code: str, message: str) -> Message:
    return "/accompgen/error", [job_id, code, message]


@dataclass
class Running:
    """The job the worker is on: what the heartbeat reports and what cancel stops."""

    job_id: str
    stage: str = "encode"
    fraction: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)


class Bridge:
    def __init__(self, config: ServerConfig, store: JobStore):
        self.config = config
        self.store = store
        self.handlers: dict[str, Callable[[list[Any], Peer], list[Message]]] = {
            "/accompgen/ping": self.on_ping,
            "/accompgen/generate": self.on_generate,
            "/accompgen/status": self.on_status,
            "/accompgen/cancel": self.on_cancel,
        }
        self.listeners: dict[str, list[Peer]] = {}
        self.running: Running | None = None
        self.job_waiting = threading.Event()
        self.stopping = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.udp: asyncio.DatagramTransport | None = None

    # -- dispatch -------------------------------------------------------------------------------------------

    def handle_packet(self, data: bytes, peer: Peer) -> None:
        try:
            messages = decode(data)
        except MalformedPacket as err:
            peer.send(error_reply("", MALFORMED, str(err)))
            return
        for address, args in messages:
            for reply in self.handle(address, args, peer):
                peer.send(reply)

    def handle(self, address: str, args: list[Any], peer: Peer) -> list[Message]:
        job_id = args[0] if address != "/accompgen/generate" and args and isinstance(args[0], str) else ""
        try:
            args = self._authorize(args)
            handler = self.handlers.get(address)
            if handler is None:
                raise JobError(MALFORMED, f"unknown address {address!r}: use {', '.join(self.handlers)}")
            return handler(args, peer)
        except JobError as err:
            return [error_reply(job_id, err.code, str(err))]
        except Exception as err:  # a bug must not stop the server: report it and keep serving
            log.exception("handling %s failed", address)
            return [error_reply(job_id, INTERNAL, f"{type(err).__name__}: {err}")]

    def _authorize(self, args: list[Any]) -> list[Any]:
        """Strip a trailing `token <value>` pair; when the bridge has a token it must be there and match."""
        given = None
        if len(args) >= 2 and args[-2] == "token":
            given, args = args[-1], args[:-2]
        if self.config.token is not None and given != self.config.token:
            raise JobError(UNAUTHORIZED, "this bridge needs `token <value>` at the end of every message")
        return args

    # -- handlers -------------------------------------------------------------------------------------------

    def on_ping(self, args: list[Any], peer: Peer) -> list[Message]:
        return [("/accompgen/pong", [__version__])]

    def on_generate(self, args: list[Any], peer: Peer) -> list[Message]:
        request = parse_generate(args)
        if request.duration_s > self.config.max_duration_s:
            raise JobError(
                TOO_LONG,
                f"the region is {request.duration_s:g} s long; this bridge takes up to {self.config.max_duration_s:g} s"
                " (--max-duration)",
            )
        check_region(request.input_path, request.start_s, request.duration_s)
        self._check_output_dir(Path(request.output_dir) if request.output_dir else self.config.output_dir)
        job = self.store.submit(request.to_dict())
        reply_to = peer
        if request.reply_port is not None and isinstance(peer, UdpPeer):
            reply_to = UdpPeer(peer.transport, (peer.address[0], request.reply_port))
        elif request.reply_port is not None and self.udp is not None and isinstance(peer, TcpPeer):
            host = peer.writer.get_extra_info("peername")[0]
            reply_to = UdpPeer(self.udp, (host, request.reply_port))
        self.listeners[job.id] = [reply_to]
        self.job_waiting.set()
        accepted = ("/accompgen/accepted", [job.id, str(self.store.status_path(job.id))])
        if reply_to is not peer:  # a sender that cannot listen (oscsend) gets everything on reply_port
            reply_to.send(accepted)
            return []
        return [accepted]

    def on_status(self, args: list[Any], peer: Peer) -> list[Message]:
        job = self.store.get(self._job_id(args))
        return [("/accompgen/status", [job.id, job.state, float(job.fraction)])]

    def on_cancel(self, args: list[Any], peer: Peer) -> list[Message]:
        job = self.store.get(self._job_id(args))
        if self.store.cancel_queued(job.id):
            self._notify(job.id, ("/accompgen/cancelled", [job.id]), also=peer, final=True)
            return []
        running = self.running
        if running is not None and running.job_id == job.id:
            self.listeners.setdefault(job.id, []).append(peer)
            running.cancel.set()  # the worker stops at its next step and tells every listener
            return []
        job = self.store.get(job.id)
        raise JobError(FINISHED, f"job {job.id} has already ended ({job.state})")

    @staticmethod
    def _job_id(args: list[Any]) -> str:
        if len(args) != 1 or not isinstance(args[0], str):
            raise JobError(BAD_ARGUMENT, "give exactly one argument: the job id")
        return args[0]

    @staticmethod
    def _check_output_dir(directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise JobError(OUTPUT, f"cannot create the output directory {directory}: {err.strerror}") from err
        if not os.access(directory, os.W_OK):
            raise JobError(OUTPUT, f"the output directory {directory} is not writable")

    # -- replies from the worker thread ---------------------------------------------------------------------

    def _notify(self, job_id: str, message: Message, also: Peer | None = None, final: bool = False) -> None:
        """Send to every listener of the job (and `also`); callable from any thread. After the final message
        of a job the listeners are forgotten."""

        def send() -> None:
            peers = self.listeners.pop(job_id, []) if final else self.listeners.get(job_id, [])
            for peer in [*peers, *([also] if also and also not in peers else [])]:
                with contextlib.suppress(OSError):
                    peer.send(message)

        if self.loop is not None:
            self.loop.call_soon_threadsafe(send)

    async def heartbeat(self) -> None:
        """At least one progress reply a second while a job runs, even through phases without steps."""
        while True:
            running = self.running
            if running is not None:
                self._notify(running.job_id, ("/accompgen/progress", [running.job_id, running.stage, running.fraction]))
            await asyncio.sleep(HEARTBEAT_S)

    # -- the worker -----------------------------------------------------------------------------------------

    def work(self) -> None:
        try:
            engine = Engine(self.config.bundle, self.config.device)
        except Exception:
            log.exception("cannot load the bundle's graphs; jobs stay queued")
            return
        while not self.stopping.is_set():
            job = self.store.next_queued()
            if job is None:
                self.job_waiting.wait(HEARTBEAT_S)
                self.job_waiting.clear()
                continue
            self.run_job(engine, job)

    def run_job(self, engine: Engine, job: Job) -> None:
        running = self.running = Running(job.id)
        last_write = 0.0

        def progress(stage: str, fraction: float) -> None:
            nonlocal last_write
            if running.cancel.is_set() or self.stopping.is_set():
                raise Cancelled
            running.stage, running.fraction = stage, fraction
            if time.monotonic() - last_write >= STATUS_WRITE_S:
                last_write = time.monotonic()
                self.store.update(job.id, stage=stage, fraction=fraction)

        args = GenerateArgs(**job.request)
        try:
            result = engine.generate(engine.request(args), progress)
            outputs = self._write_outputs(args, job.id, result.audio, result.sample_rate, result.seeds)
            outcome = functools.partial(self._finish, job.id, outputs)
        except Cancelled:
            outcome = functools.partial(self._stop_job, job, running)
        except JobError as err:
            outcome = functools.partial(self._fail, job.id, err.code, str(err))
        except Exception as err:
            log.exception("job %s failed", job.id)
            outcome = functools.partial(self._fail, job.id, INTERNAL, f"{type(err).__name__}: {err}")
        self.running = None  # before the job's last reply, so that no heartbeat follows it
        outcome()

    def _finish(self, job_id: str, outputs: list[str]) -> None:
        self.store.update(job_id, state=DONE, stage="done", fraction=1.0, outputs=outputs)
        self._notify(job_id, ("/accompgen/done", [job_id, *outputs]), final=True)

    def _write_outputs(
        self, args: GenerateArgs, job_id: str, audio: Any, rate: int, seeds: tuple[int, ...]
    ) -> list[str]:
        directory = Path(args.output_dir) if args.output_dir else self.config.output_dir
        stem = Path(args.input_path).stem
        paths = []
        try:
            for row, seed in zip(audio, seeds, strict=True):
                paths.append(str(write_wav(directory / f"{stem}-accomp-{job_id[:8]}-seed{seed}.wav", row, rate)))
        except JobError:
            for path in paths:  # all variations or none
                Path(path).unlink(missing_ok=True)
            raise
        return paths

    def _stop_job(self, job: Job, running: Running) -> None:
        if self.stopping.is_set() and not running.cancel.is_set():
            # a clean shutdown is no failure: the job goes back to the queue without using up an attempt
            self.store.update(job.id, state=QUEUED, stage="", fraction=0.0, attempts=job.attempts - 1)
            return
        self.store.update(job.id, state=CANCELLED)
        self._notify(job.id, ("/accompgen/cancelled", [job.id]), final=True)

    def _fail(self, job_id: str, code: str, message: str) -> None:
        self.store.update(job_id, state=FAILED, error_code=code, error_message=message)
        self._notify(job_id, error_reply(job_id, code, message), final=True)

    # -- transports -----------------------------------------------------------------------------------------

    async def on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer, frames = TcpPeer(writer), SlipDecoder()
        try:
            while data := await reader.read(1 << 16):
                try:
                    packets = frames.feed(data)
                except MalformedPacket as err:
                    peer.send(error_reply("", MALFORMED, f"{err}; closing the connection"))
                    break
                for packet in packets:
                    self.handle_packet(packet, peer)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def run(self, ready: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        config = self.config
        bridge = self

        class Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
                bridge.handle_packet(data, UdpPeer(bridge.udp, addr))  # type: ignore[arg-type]

        self.udp, _ = await self.loop.create_datagram_endpoint(Udp, local_addr=(config.host, config.osc_port))
        tcp = await asyncio.start_server(self.on_tcp, config.host, config.tcp_port)
        address = {
            "pid": os.getpid(),
            "host": config.host,
            "osc_port": self.udp.get_extra_info("sockname")[1],
            "tcp_port": tcp.sockets[0].getsockname()[1],
            "version": __version__,
        }
        write_json_atomic(config.state_dir / ADDRESS_FILE, address)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: Ctrl+C raises instead
                self.loop.add_signal_handler(signum, stop.set)
        worker = threading.Thread(target=self.work, name="accompgen-worker", daemon=True)
        worker.start()
        heartbeat = asyncio.create_task(self.heartbeat())
        log.info("listening on %s: OSC/UDP %d, OSC/TCP %d", config.host, address["osc_port"], address["tcp_port"])
        if ready:
            ready(address)
        try:
            await stop.wait()
        finally:
            log.info("stopping")
            self.stopping.set()
            heartbeat.cancel()
            await asyncio.to_thread(worker.join, 10)
            tcp.close()
            self.udp.close()
            (config.state_dir / ADDRESS_FILE).unlink(missing_ok=True)


def serve(config: ServerConfig, ready: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Validate the bundle, recover the store, then serve until SIGINT or SIGTERM."""
    if not is_loopback(config.host) and not config.token:
        raise UserError(f"--host {config.host} opens the bridge to the network: set --token as well")
    load_bundle(config.bundle)  # a bad bundle stops the bridge before it takes any request
    config.state_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(config.state_dir, config.max_queue)
    requeued, failed = store.recover()
    for job in requeued:
        log.info("job %s was running when the bridge stopped: queued again", job.id)
    for job in failed:
        log.warning("job %s failed: %s", job.id, job.error_message)
    try:
        asyncio.run(Bridge(config, store).run(ready))
    finally:
        store.close()
