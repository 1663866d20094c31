"""Inline commands (``SET k "a b"`` typed into nc or telnet): a line split into arguments
exactly as redis-server splits it (pure, no I/O)."""

from __future__ import annotations

import re

__all__ = ["split_inline"]

_ESCAPES = {
    ord("n"): 10,
    ord("r"): 13,
    ord("t"): 9,
    ord("b"): 8,
    ord("a"): 7,
}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_SPACE = frozenset(b" \t\n\r\x0b\x0c")
_TOKEN_END = frozenset(b" \n\r\t")
_PLAIN_SPLIT_UNSAFE = re.compile(rb"[\"'\x0b\x0c]")


def split_inline(line: bytes):
    """Split an inline command line exactly as Redis' ``sdssplitargs`` does.

    Returns a tuple of arguments, or ``None`` for unbalanced quotes. Like Redis (which handles the
    line as a C string), a NUL byte ends the line.
    """
    nul = line.find(b"\x00")
    if nul >= 0:
        line = line[:nul]
    if _PLAIN_SPLIT_UNSAFE.search(line) is None:
        return tuple(line.split())
    args = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return tuple(args)
        cur = bytearray()
        inq = insq = False
        while True:
            if inq:
                if i >= n:
                    return None
                c = line[i]
                if (
                    c == 92
                    and i + 3 < n
                    and line[i + 1] == 120
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    cur.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 92 and i + 1 < n:
                    i += 1
                    cur.append(_ESCAPES.get(line[i], line[i]))
                elif c == 34:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                else:
                    cur.append(c)
            elif insq:
                if i >= n:
                    return None
                c = line[i]
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    cur.append(39)
                elif c == 39:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                else:
                    cur.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in _TOKEN_END:
                    i += 1
                    break
                if c == 34:
                    inq = True
                elif c == 39:
                    insq = True
                else:
                    cur.append(c)
            i += 1
        args.append(bytes(cur))
