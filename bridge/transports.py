"""OSC over UDP and over TCP (SLIP framing, OSC 1.1): receive bytes, hand them to the dispatcher, send replies.

The transports know sockets and nothing about jobs: a datagram or a SLIP frame goes to `handle_packet`, and the
(peer, message) pairs that come back are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accompgen_bridge.dispatcher import error_reply, handle_packet
from accompgen_bridge.errors import MALFORMED
from accompgen_bridge.handlers import BridgeState, Peer, Reply
from accompgen_bridge.osc import MalformedPacket, Message, SlipDecoder, encode, slip_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UdpPeer:
    transport: asyncio.DatagramTransport
    address: tuple[Any, ...]

    def send(self, message: Message) -> None:
        self.transport.sendto(encode(*message), self.address)

    def udp_address(self) -> tuple[str, int] | None:
        return self.address[0], self.address[1]


@dataclass(frozen=True)
class TcpPeer:
    writer: asyncio.StreamWriter

    def send(self, message: Message) -> None:
        if not self.writer.is_closing():  # a client that left gets nothing, the job carries on
            self.writer.write(slip_frame(encode(*message)))

    def udp_address(self) -> tuple[str, int] | None:
        peer = self.writer.get_extra_info("peername")
        return (peer[0], peer[1]) if peer else None


def send_all(replies: list[Reply]) -> None:
    for peer, message in replies:
        with contextlib.suppress(OSError):  # a peer that went away misses its reply; the bridge carries on
            peer.send(message)


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, state: BridgeState, token: str | None):
        self.state, self.token = state, token
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        assert self.transport is not None
        send_all(handle_packet(self.state, data, UdpPeer(self.transport, addr), self.token))

    def peer_at(self, host: str, port: int) -> UdpPeer:
        assert self.transport is not None
        return UdpPeer(self.transport, (host, port))


def tcp_handler(state: BridgeState, token: str | None) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer, frames = TcpPeer(writer), SlipDecoder()
        try:
            while data := await reader.read(1 << 16):
                try:
                    packets = frames.feed(data)
                except MalformedPacket as err:
                    peer.send(error_reply("", MALFORMED, f"{err}; closing the connection"))
                    break
                for packet in packets:
                    send_all(handle_packet(state, packet, peer, token))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return on_connection


def reply_router(udp: UdpProtocol) -> Callable[[Peer, int], Peer | None]:
    """A `reply_port` reply goes by UDP to the sender's host, whatever transport the request came by."""

    def route(peer: Peer, port: int) -> Peer | None:
        address = peer.udp_address()
        return udp.peer_at(address[0], port) if address else None

    return route
