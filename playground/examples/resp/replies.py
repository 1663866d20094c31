"""What a command returns: the effects (``Reply``, ``Deliver``, ``Close``), the reply values
commands share (``OK``, ``NULL_ARRAY``, Redis 7's error texts) and ``encode_reply``."""

from __future__ import annotations

from typing import Any

import attrs

from playground.codec.encoder import encode
from playground.codec.values import Error, Simple

REDIS_VERSION = b"7.0.0"  # the version whose replies and error texts the engine follows (HELLO, INFO)

# ---------------------------------------------------------------------------- effects


@attrs.frozen
class Reply:
    """A reply to the client that sent the command."""

    value: Any


@attrs.frozen
class Deliver:
    """A pub/sub message for another (or the same) client, already shaped for its protocol."""

    session_id: int
    value: Any


@attrs.frozen
class Close:
    """Disconnect the client after its pending replies are written."""

    reason: str


class Effects(list):
    """Returned by a handler that produces more than one effect (SUBSCRIBE, PUBLISH, EXEC);
    any other return value is the single reply."""


# ---------------------------------------------------------------------------- reply values


class NullArray:
    """Redis's null array: ``*-1`` in RESP2, ``_`` in RESP3 (``LPOP missing 2``)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "NULL_ARRAY"


NULL_ARRAY = NullArray()


def encode_reply(value, protocol: int = 2) -> bytes:
    """``resp.encode`` plus ``NULL_ARRAY`` (which the shared value model has no type for)."""
    if value is NULL_ARRAY:
        return b"*-1\r\n" if protocol == 2 else b"_\r\n"
    if type(value) is list and any(v is NULL_ARRAY for v in value):  # EXEC's replies
        return b"*%d\r\n" % len(value) + b"".join(encode_reply(v, protocol) for v in value)
    return encode(value, protocol)


OK = Simple(b"OK")
QUEUED = Simple(b"QUEUED")
PONG = Simple(b"PONG")


def error(text: str | bytes) -> Error:
    """An error reply; ``text`` starts with its code (``ERR``, ``WRONGTYPE`` ...)."""
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    return Error(text.replace(b"\r", b" ").replace(b"\n", b" "))


def wrong_arity(name: str) -> Error:
    """Redis's reply to a command (``get``, ``client|setname``) given the wrong argument count."""
    return error(f"ERR wrong number of arguments for '{name}' command")


WRONGTYPE = error("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_INTEGER = error("ERR value is not an integer or out of range")
SYNTAX = error("ERR syntax error")
NOAUTH = error("NOAUTH Authentication required.")
WRONGPASS = error("WRONGPASS invalid username-password pair or user is disabled.")
NOT_POSITIVE = error("ERR value is out of range, must be positive")
NO_SUCH_KEY = error("ERR no such key")
