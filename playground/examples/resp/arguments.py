"""Reading command arguments as Redis does: strict 64-bit integers and glob patterns (KEYS,
SCAN MATCH, PSUBSCRIBE, CONFIG GET)."""

from __future__ import annotations

import re

I64_MIN, I64_MAX = -(2**63), 2**63 - 1

_INT = re.compile(rb"(?:0|-?[1-9][0-9]{0,18})\Z")


def parse_int(data: bytes) -> int | None:
    """Redis's strict ``string2ll``: no sign '+', no spaces, no leading zeros, int64 range."""
    if not _INT.match(data):
        return None
    n = int(data)
    return n if I64_MIN <= n <= I64_MAX else None


_glob_cache: dict[bytes, re.Pattern] = {}


def glob_to_regex(pattern: bytes) -> re.Pattern:
    """Compile a Redis glob (``*``, ``?``, ``[a-z]``, ``[^abc]``, ``\\x``) to a bytes regex."""
    found = _glob_cache.get(pattern)
    if found is not None:
        return found
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # *
            while i + 1 < n and pattern[i + 1] == 0x2A:
                i += 1
            out.append(b".*")
        elif c == 0x3F:  # ?
            out.append(b".")
        elif c == 0x5B:  # [
            i += 1
            negate = i < n and pattern[i] == 0x5E
            if negate:
                i += 1
            members = []
            while i < n and pattern[i] != 0x5D:
                ch = pattern[i]
                if ch == 0x5C and i + 1 < n:
                    i += 1
                    members.append(b"\\x%02x" % pattern[i])
                elif i + 2 < n and pattern[i + 1] == 0x2D:
                    lo, hi = sorted((ch, pattern[i + 2]))
                    members.append(b"\\x%02x-\\x%02x" % (lo, hi))
                    i += 2
                else:
                    members.append(b"\\x%02x" % ch)
                i += 1
            if members:
                out.append(b"[" + (b"^" if negate else b"") + b"".join(members) + b"]")
            else:
                out.append(b"." if negate else b"(?!)")
        elif c == 0x5C and i + 1 < n:  # backslash escape
            i += 1
            out.append(re.escape(pattern[i : i + 1]))
        else:
            out.append(re.escape(bytes([c])))
        i += 1
    compiled = re.compile(b"".join(out) + b"\\Z", re.DOTALL)
    if len(_glob_cache) > 256:
        _glob_cache.clear()
    _glob_cache[pattern] = compiled
    return compiled


def glob_match(pattern: bytes, value: bytes) -> bool:
    """Whether ``value`` matches the Redis glob ``pattern`` as a whole."""
    return glob_to_regex(pattern).match(value) is not None
