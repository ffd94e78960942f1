"""The bridge server: the job store, the worker thread and the two transports, put together.

`serve` validates the bundles and the store, binds OSC over UDP and TCP, writes bridge.json (pid and ports, for the
command-line clients), and runs until SIGINT or SIGTERM. While a job runs, its listeners get a progress message
every HEARTBEAT_S, and every unfinished job's status file is rewritten each second with the time, so pollers can
tell a live bridge from a dead one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import secrets
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accompgen import __version__
from accompgen.core.bundle import BundleError, Manifest, load_bundle
from accompgen.core.errors import UserError
from accompgen_bridge.bundles import bundle_folders, describe, served_bundles
from accompgen_bridge.handlers import BridgeState
from accompgen_bridge.jobs import JobStore, write_json_atomic
from accompgen_bridge.osc import Message
from accompgen_bridge.outputs import OutputPolicy, remove_old_outputs
from accompgen_bridge.paths import ADDRESS_FILE, DEFAULT_OSC_PORT, DEFAULT_TCP_PORT
from accompgen_bridge.transports import UdpProtocol, reply_router, send_all, tcp_handler
from accompgen_bridge.worker import Worker

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.5  # progress replies go out this often while a job runs
STATUS_BEAT_S = 1.0  # unfinished jobs' status files are rewritten this often


@dataclass(frozen=True)
class ServerConfig:
    bundles: tuple[Path, ...]  # each a bundle folder or a folder of them; the first is the default
    state_dir: Path
    serve_found: bool = False  # also every bundle installed with AccompGen or in state_dir/bundles
    host: str = "127.0.0.1"
    osc_port: int = DEFAULT_OSC_PORT  # 0 lets the system choose; bridge.json tells which
    tcp_port: int = DEFAULT_TCP_PORT
    token: str | None = None  # required on every message when set; required to bind beyond loopback
    device: str = "auto"
    max_duration_s: float = 600.0
    max_queue: int = 16
    allowed_output_dirs: tuple[Path, ...] = field(default_factory=tuple)  # besides state_dir/outputs
    keep_days: float = 7.0  # outputs in state_dir/outputs older than this are deleted at start

    @property
    def output_dir(self) -> Path:
        return self.state_dir / "outputs"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Server:
    def __init__(
        self, config: ServerConfig, store: JobStore, bundles: dict[str, Path], manifests: dict[str, Manifest | str]
    ):
        """`manifests`: each bundle's, loaded and checked, or why it cannot be served."""
        self.config, self.bundles = config, bundles
        self.manifests = {name: m for name, m in manifests.items() if isinstance(m, Manifest)}
        self.state = BridgeState(
            store=store,
            outputs=OutputPolicy.create(config.output_dir, config.allowed_output_dirs),
            max_duration_s=config.max_duration_s,
            bundles={name: describe(m) if isinstance(m, Manifest) else "" for name, m in manifests.items()},
            engine_errors={name: m for name, m in manifests.items() if isinstance(m, str)},
        )
        self.stopping = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    def notify(self, job_id: str, message: Message, final: bool) -> None:
        """Send to every listener of the job, from any thread; after the job's final message they are forgotten."""

        def send() -> None:
            peers = self.state.listeners.pop(job_id, []) if final else self.state.listeners.get(job_id, [])
            send_all([(peer, message) for peer in peers])

        if self.loop is not None:
            self.loop.call_soon_threadsafe(send)

    async def heartbeat(self) -> None:
        beats = 0
        while True:
            running = self.state.running
            if running is not None:
                progress = ("/accompgen/progress", [running.job_id, running.stage, running.fraction])
                self.notify(running.job_id, progress, False)
            if beats % round(STATUS_BEAT_S / HEARTBEAT_S) == 0:
                await asyncio.to_thread(self.state.store.beat)
            beats += 1
            await asyncio.sleep(HEARTBEAT_S)

    async def bind(self) -> tuple[UdpProtocol, asyncio.Server]:
        config = self.config
        assert self.loop is not None
        try:
            _, udp = await self.loop.create_datagram_endpoint(
                lambda: UdpProtocol(self.state, config.token), local_addr=(config.host, config.osc_port)
            )
            tcp = await asyncio.start_server(tcp_handler(self.state, config.token), config.host, config.tcp_port)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise UserError(
                    f"port {config.osc_port} (OSC/UDP) or {config.tcp_port} (OSC/TCP) on {config.host} is in use: "
                    "another bridge may be running (accompgen-bridge ping), or choose --osc-port and --tcp-port"
                ) from err
            raise UserError(f"cannot listen on {config.host}: {err.strerror}") from err
        return udp, tcp

    async def run(self, ready: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        config = self.config
        udp, tcp = await self.bind()
        assert udp.transport is not None
        address = {
            "pid": os.getpid(),
            "host": config.host,
            "osc_port": udp.transport.get_extra_info("sockname")[1],
            "tcp_port": tcp.sockets[0].getsockname()[1],
            "version": __version__,
            "local_key": secrets.token_urlsafe(24),  # bridge.json is readable by this user only (0600)
            "device": config.device,
            "bundles": {name: str(folder) for name, folder in self.bundles.items()},
        }
        self.state.local_key = address["local_key"]
        self.state.own_ports = {address["osc_port"], address["tcp_port"]}
        self.state.reply_peer = reply_router(udp)
        write_json_atomic(config.state_dir / ADDRESS_FILE, address)
        stop = asyncio.Event()
        self.state.request_stop = stop.set  # handlers run on this loop
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: Ctrl+C raises instead
                self.loop.add_signal_handler(signum, stop.set)
        worker = Worker(self.state, self.bundles, config.device, self.notify, self.stopping, self.manifests)
        thread = threading.Thread(target=worker.run, name="accompgen-worker", daemon=True)
        thread.start()
        heartbeat = asyncio.create_task(self.heartbeat())
        log.info("listening on %s: OSC/UDP %d, OSC/TCP %d", config.host, address["osc_port"], address["tcp_port"])
        log.info(
            "serving %s (the first is the default)", ", ".join(f"{n} ({s})" for n, s in self.state.bundles.items())
        )
        if ready:
            ready(address)
        try:
            await stop.wait()
        finally:
            log.info("stopping")
            self.stopping.set()
            heartbeat.cancel()
            await asyncio.to_thread(thread.join, 10)
            tcp.close()
            udp.transport.close()
            (config.state_dir / ADDRESS_FILE).unlink(missing_ok=True)


def serve(config: ServerConfig, ready: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Validate the bundles, recover the store, then serve until SIGINT or SIGTERM."""
    if not is_loopback(config.host) and not config.token:
        raise UserError(f"--host {config.host} opens the bridge to the network: set --token as well")
    found_in = bundle_folders(config.state_dir) if config.serve_found else []
    served = served_bundles(list(config.bundles), found_in)
    for why in served.passed_over:
        log.warning("not served: %s", why)
    manifests: dict[str, Manifest | str] = {}
    for name, folder in served.folders.items():
        try:
            manifests[name] = load_bundle(folder)
        except BundleError as err:
            if name in served.given:
                raise  # a bundle asked for by name stops the bridge before it takes any request
            manifests[name] = str(err)  # a bundle found: the others serve on, and this one says why it cannot
            log.warning("bundle %s cannot be served: %s", name, err)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    removed = remove_old_outputs(config.output_dir, config.keep_days)
    if removed:
        log.info("removed %d output(s) older than %g days from %s", removed, config.keep_days, config.output_dir)
    store = JobStore(config.state_dir, config.max_queue)
    requeued, failed = store.recover()
    for job in requeued:
        log.info("job %s was running when the bridge stopped: queued again", job.id)
    for job in failed:
        log.warning("job %s failed: %s", job.id, job.error_message)
    try:
        asyncio.run(Server(config, store, served.folders, manifests).run(ready))
    finally:
        store.close()
