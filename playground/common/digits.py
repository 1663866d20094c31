"""Decimal numbers as protocols and URLs write them: ASCII digits 0-9 and nothing else (pure).

``int()`` reads more than that: a sign (``'+5'``), underscores (``'1_0'``), white space around
(``' 5'``) and any Unicode decimal digit (``'٣'``); ``str.isdigit()`` says yes to ``'²'``, which
``int()`` refuses; and ``int()`` refuses over 4,300 digits (after quadratic work). A
Content-Length, a port or an id in a URL is none of those: it is read here, with a bound on its
length; so is an HTTP chunk size, in hex digits (``int(text, 16)`` also takes ``'0x5'``). (The
RESP parser keeps its own inline checks: they are on its per-frame fast path.)
"""

from __future__ import annotations

import re

_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]+")


def digits_only(text: str | bytes) -> bool:
    """``text`` is one or more ASCII digits ``0``-``9`` and nothing else (``str`` or ``bytes``)."""
    return text.isascii() and text.isdigit()


def decimal(text: str | bytes, max_digits: int) -> int | None:
    """The value of ``text`` if it is 1 to ``max_digits`` ASCII digits (leading zeros allowed),
    else None."""
    if len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def hexadecimal(data: bytes, max_digits: int) -> int | None:
    """The value of ``data`` if it is 1 to ``max_digits`` ASCII hex digits (``0-9a-fA-F``),
    else None."""
    if len(data) <= max_digits and _HEX_DIGITS.fullmatch(data):
        return int(data, 16)
    return None
