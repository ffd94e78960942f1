"""A blocking OSC-over-TCP client for one request at a time: what `accompgen-bridge submit/status/...` use."""

from __future__ import annotations

import socket
import time
from typing import Any

from accompgen.core.errors import UserError
from accompgen_bridge.osc import Message, SlipDecoder, decode, encode, slip_frame


class BridgeClient:
    def __init__(
        self, host: str, port: int, timeout_s: float = 10.0, token: str | None = None, local_key: str | None = None
    ):
        self.host, self.port, self.timeout_s, self.token = host, port, timeout_s, token
        self.local_key = local_key  # from bridge.json: says the request comes from the user who started the bridge

    def call(self, address: str, args: list[Any], expect: tuple[str, ...]) -> Message:
        """Send one message; return the first reply whose address is in `expect` or is an error."""
        if self.local_key is not None:
            args = [*args, "local_key", self.local_key]
        if self.token is not None:
            args = [*args, "token", self.token]
        deadline = time.monotonic() + self.timeout_s
        where = f"{self.host}:{self.port}"
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as sock:
                sock.sendall(slip_frame(encode(address, args)))
                frames = SlipDecoder()
                while time.monotonic() < deadline:
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    data = sock.recv(1 << 16)
                    if not data:
                        break
                    for frame in frames.feed(data):
                        for reply in decode(frame):
                            if reply[0] in expect or reply[0] == "/accompgen/error":
                                return reply
        except ConnectionRefusedError as err:
            raise UserError(f"no bridge is listening on {where}: start one with `accompgen-bridge serve`") from err
        except TimeoutError as err:
            raise UserError(f"the bridge on {where} did not answer within {self.timeout_s:g} s") from err
        except OSError as err:
            raise UserError(f"cannot reach the bridge on {where}: {err}") from err
        raise UserError(f"the bridge on {where} closed the connection without an answer")
