"""RESP encoding: a value of the :mod:`playground.codec.values` model, or a command, as RESP2 or
RESP3 bytes (pure, no I/O)."""

from __future__ import annotations

import math

from playground.codec.values import (
    Attributed,
    BigNumber,
    Error,
    Inline,
    Map,
    Push,
    Set,
    Simple,
    Verbatim,
)

__all__ = ["encode", "encode_command"]


def _format_double(x: float) -> bytes:
    if math.isnan(x):
        return b"nan"
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    r = repr(x)
    if r.endswith(".0"):
        r = r[:-2]
    return r.encode()


def _line(value: bytes, what: str) -> bytes:
    if b"\r" in value or b"\n" in value:
        raise ValueError("a %s cannot contain CR or LF: %r" % (what, value[:40]))
    return value


def _encode(value, protocol: int, parts: list) -> None:
    append = parts.append
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value)
        append(b"$%d\r\n%b\r\n" % (len(value), value))
    elif isinstance(value, str):
        value = value.encode()
        append(b"$%d\r\n%b\r\n" % (len(value), value))
    elif isinstance(value, Simple):
        append(b"+%b\r\n" % _line(value.value, "simple string"))
    elif value is None:
        append(b"_\r\n" if protocol == 3 else b"$-1\r\n")
    elif isinstance(value, bool):
        if protocol == 3:
            append(b"#t\r\n" if value else b"#f\r\n")
        else:
            append(b":1\r\n" if value else b":0\r\n")
    elif isinstance(value, int):
        append(b":%d\r\n" % value)
    elif isinstance(value, list | tuple):
        append(b"*%d\r\n" % len(value))
        for item in value:
            _encode(item, protocol, parts)
    elif isinstance(value, Error):
        if value.bulk and protocol == 3:
            append(b"!%d\r\n%b\r\n" % (len(value.value), value.value))
        else:
            text = value.value.replace(b"\r\n", b" ").replace(b"\r", b" ").replace(b"\n", b" ")
            append(b"-%b\r\n" % text)
    elif isinstance(value, float):
        text = _format_double(value)
        if protocol == 3:
            append(b",%b\r\n" % text)
        else:
            append(b"$%d\r\n%b\r\n" % (len(text), text))
    elif isinstance(value, Map | dict):
        items = value.items if isinstance(value, Map) else tuple(value.items())
        append(b"%%%d\r\n" % len(items) if protocol == 3 else b"*%d\r\n" % (2 * len(items)))
        for k, v in items:
            _encode(k, protocol, parts)
            _encode(v, protocol, parts)
    elif isinstance(value, Set | set | frozenset):
        items = value.items if isinstance(value, Set) else tuple(value)
        append(b"%s%d\r\n" % (b"~" if protocol == 3 else b"*", len(items)))
        for item in items:
            _encode(item, protocol, parts)
    elif isinstance(value, Push):
        append(b"%s%d\r\n" % (b">" if protocol == 3 else b"*", len(value.items)))
        for item in value.items:
            _encode(item, protocol, parts)
    elif isinstance(value, BigNumber):
        text = b"%d" % value.value
        if protocol == 3:
            append(b"(%b\r\n" % text)
        else:
            append(b"$%d\r\n%b\r\n" % (len(text), text))
    elif isinstance(value, Verbatim):
        if protocol == 3:
            if len(value.format) != 3:
                raise ValueError("a verbatim format is 3 bytes: %r" % (value.format,))
            append(b"=%d\r\n%b:%b\r\n" % (len(value.text) + 4, value.format, value.text))
        else:
            append(b"$%d\r\n%b\r\n" % (len(value.text), value.text))
    elif isinstance(value, Attributed):
        if protocol == 3:
            items = value.attributes.items
            append(b"|%d\r\n" % len(items))
            for k, v in items:
                _encode(k, protocol, parts)
                _encode(v, protocol, parts)
        _encode(value.value, protocol, parts)
    elif isinstance(value, Inline):
        append(encode_command(*value.args))
    else:
        raise TypeError("cannot encode %s as RESP" % type(value).__name__)


def encode(value, protocol: int = 2) -> bytes:
    """RESP bytes for ``value``; ``protocol=2`` downgrades RESP3 types the way Redis does.

    RESP2: Map → flat array, Set and Push → array, bool → ``:1``/``:0``, None → ``$-1``,
    double, big number and verbatim → bulk string, bulk error → simple error, attributes dropped.
    """
    if isinstance(value, bytes):
        return b"$%d\r\n%b\r\n" % (len(value), value)
    parts: list = []
    _encode(value, protocol, parts)
    return b"".join(parts)


def encode_command(*args) -> bytes:
    """A command as an array of bulk strings; args may be bytes, str, int or float."""
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, bool):
            raise TypeError("booleans are not command arguments")
        elif isinstance(a, int):
            a = b"%d" % a
        elif isinstance(a, float):
            a = _format_double(a)
        elif not isinstance(a, bytes):
            a = bytes(a)
        append(b"$%d\r\n%b\r\n" % (len(a), a))
    return b"".join(parts)
