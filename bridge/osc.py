"""OSC on the wire: messages to and from bytes (python-osc), and SLIP framing for OSC 1.1 over TCP."""

from __future__ import annotations

from typing import Any

from pythonosc import slip
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

Message = tuple[str, list[Any]]  # (address, arguments)
MAX_FRAME = 1 << 16  # longest SLIP frame accepted; a longer one is garbage, not a request


class MalformedPacket(Exception):
    """Bytes that are not an OSC message or bundle."""


def encode(address: str, args: list[Any]) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def decode(data: bytes) -> list[Message]:
    """Every message of a packet; a bundle's messages in order."""
    try:
        packet = OscPacket(data)
        return [(m.message.address, list(m.message.params)) for m in packet.messages]
    except Exception as err:  # python-osc raises ParseError, but also IndexError and friends on garbage
        raise MalformedPacket(f"not an OSC packet ({type(err).__name__}: {err})") from err


def slip_frame(data: bytes) -> bytes:
    return slip.encode(data)


class SlipDecoder:
    """Splits a TCP byte stream into SLIP frames as bytes arrive in arbitrary pieces."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Whole frames completed by `data`, each unescaped; raises MalformedPacket for an oversized frame or a
        bad escape (the stream is then dropped)."""
        self._buffer += data
        *frames, rest = bytes(self._buffer).split(slip.END)
        self._buffer = bytearray(rest)
        if len(self._buffer) > MAX_FRAME:
            raise MalformedPacket(f"a SLIP frame longer than {MAX_FRAME} bytes")
        try:
            return [slip.decode(slip.END + frame + slip.END) for frame in frames if frame]
        except slip.ProtocolError as err:
            raise MalformedPacket(f"bad SLIP escape: {err}") from err
