"""From bytes to replies: decode an OSC packet, check the token, call the address's handler, turn every error
into `/accompgen/error <job_id> <code> <message>`. Nothing a peer sends can stop the bridge, except
`/accompgen/stop` from the user who started it (the local key of bridge.json)."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from accompgen_bridge.errors import INTERNAL, MALFORMED, UNAUTHORIZED, JobError
from accompgen_bridge.handlers import CREDENTIALS, HANDLERS, BridgeState, Peer, Reply, is_reply
from accompgen_bridge.osc import MalformedPacket, Message, decode

log = logging.getLogger(__name__)


def error_reply(job_id: str, code: str, message: str) -> Message:
    return "/accompgen/error", [job_id, code, message]


def handle_packet(state: BridgeState, data: bytes, peer: Peer, token: str | None) -> list[Reply]:
    try:
        messages = decode(data)
    except MalformedPacket as err:
        return [(peer, error_reply("", MALFORMED, str(err)))]
    return [reply for address, args in messages for reply in handle_message(state, address, args, peer, token)]


def handle_message(state: BridgeState, address: str, args: list[Any], peer: Peer, token: str | None) -> list[Reply]:
    raw_args = args
    args, credentials = split_credentials(args)  # before is_reply: a token makes a request as long as a reply
    if is_reply(address, args, raw_args):
        return []  # never answer a reply: two bridges (or a bridge and itself) would talk forever
    job_id = args[0] if address != "/accompgen/generate" and args and isinstance(args[0], str) else ""
    try:
        authorize(credentials.get("token"), token)
        local = state.local_key is not None and same_secret(credentials.get("local_key"), state.local_key)
        handler = HANDLERS.get(address)
        if handler is None:
            raise JobError(MALFORMED, f"unknown address {address[:80]!r}: use {', '.join(HANDLERS)}")
        return handler(state, args, peer, local)
    except JobError as err:
        return [(peer, error_reply(job_id[:64], err.code, str(err)))]
    except Exception as err:  # a bug must not stop the server: report it and keep serving
        log.exception("handling %s failed", address[:80])
        return [(peer, error_reply(job_id[:64], INTERNAL, str(JobError(INTERNAL, f"{type(err).__name__}: {err}"))))]


def split_credentials(args: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """Trailing `token <value>` and `local_key <value>` pairs, in either order, taken off the arguments."""
    credentials: dict[str, Any] = {}
    while len(args) >= 2 and isinstance(args[-2], str) and args[-2] in CREDENTIALS and args[-2] not in credentials:
        credentials[args[-2]] = args[-1]
        args = args[:-2]
    return args, credentials


def authorize(given: Any, token: str | None) -> None:
    """When the bridge has a token, every message must end with it (compared in constant time, so the answer's
    timing tells nothing about how much of a guess was right)."""
    if token is not None and not same_secret(given, token):
        raise JobError(UNAUTHORIZED, "this bridge needs `token <value>` at the end of every message")


def same_secret(given: Any, secret: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(_bytes(given), _bytes(secret))


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # OSC strings may hold lone surrogates
