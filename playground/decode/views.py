"""Views of raw bytes for people: terminal-safe escaping, a bounded line view, a ``hexdump -C`` view.

Pure (no Twisted, no clock). ``escape`` is what every console string goes through: printable
characters of valid UTF-8 stay, everything else becomes an escape (``\\r``, ``\\n``, ``\\t``,
``\\xNN`` for control and non-UTF-8 bytes, ``\\uNNNN`` for non-printable code points such as C1
controls, bidi overrides and line separators), so traffic can never drive the terminal.
"""

from __future__ import annotations

import attrs

_ESCAPES = {0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}

# str.translate tables for the ASCII fast path: controls, DEL and backslash (and maybe '"').
_ASCII_TABLE = {c: f"\\x{c:02x}" for c in list(range(0x20)) + [0x7F]}
_ASCII_TABLE.update(_ESCAPES)
_ASCII_TABLE_Q = dict(_ASCII_TABLE)
_ASCII_TABLE_Q[0x22] = '\\"'


def _escape_char(ch: str, quote: bool) -> str:
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x80:
        if quote and o == 0x22:
            return '\\"'
        return _ASCII_TABLE.get(o, ch)
    if ch.isprintable():
        return ch
    return f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}"


def escape(data: bytes, quote: bool = False) -> str:
    """``data`` as a terminal-safe one-line string (``quote``: also escape ``"``)."""
    if data.isascii():
        s = data.decode("ascii")
        if s.isprintable() and "\\" not in s and not (quote and '"' in s):
            return s
        return s.translate(_ASCII_TABLE_Q if quote else _ASCII_TABLE)
    s = data.decode("utf-8", "surrogateescape")
    if s.isprintable() and "\\" not in s and not (quote and '"' in s):
        return s
    return "".join([_escape_char(ch, quote) for ch in s])


def quoted(data: bytes, limit: int = 0) -> str:
    """``"escaped"``; past ``limit`` bytes (0 = none): ``"prefix..." (N bytes)``."""
    if limit and len(data) > limit:
        return f'"{escape(data[:limit], True)}..." ({len(data)} bytes)'
    return f'"{escape(data, True)}"'


def is_text(data: bytes) -> bool:
    """Printable text (UTF-8, tabs and line ends allowed): what the line view is for."""
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return s.replace("\r", "").replace("\n", "").replace("\t", "").isprintable()


# -- hexdump -C -------------------------------------------------------------------------------

_PRINTABLE = bytes(c if 0x20 <= c < 0x7F else 0x2E for c in range(256))


def hexdump_lines(data: bytes, offset: int = 0) -> list[str]:
    """``hexdump -C`` rows for ``data`` whose first byte is at stream ``offset``.

    Rows of 16 bytes start at ``offset`` (a chunk's rows continue the stream's offsets); the
    ``*`` squeezing of repeated rows is not done, and the final bare offset line is left to the
    caller (``hexdump_end``).
    """
    out = []
    for i in range(0, len(data), 16):
        row = data[i:i + 16]
        left = row[:8].hex(" ")
        right = row[8:].hex(" ")
        hexpart = f"{left:<23}  {right:<23}" if right else f"{left:<23}"
        out.append(f"{offset + i:08x}  {hexpart:<48}  |{row.translate(_PRINTABLE).decode()}|")
    return out


def hexdump(data: bytes, offset: int = 0) -> str:
    """Exactly ``hexdump -C`` without squeezing: rows, then the end offset."""
    if not data:
        return ""
    lines = hexdump_lines(data, offset)
    lines.append(f"{offset + len(data):08x}")
    return "\n".join(lines) + "\n"


# -- line view --------------------------------------------------------------------------------


@attrs.frozen
class Line:
    """One line of a text stream: ``data`` includes its line end (``\\n``/``\\r\\n``) if it had one.

    ``partial``: the line was cut (longer than the bound, or the stream ended without a line end);
    ``offset``: the stream offset of its first byte.
    """

    data: bytes
    offset: int
    partial: bool = False


class LineView:
    """Splits one direction of a stream into bounded lines (a line longer than ``max_line`` is
    emitted in pieces marked partial). Linear: the pending tail is never rescanned."""

    def __init__(self, max_line: int = 4096):
        self.max_line = max_line
        self._buf = b""
        self._offset = 0  # stream offset of _buf[0]

    def feed(self, data: bytes) -> list[Line]:
        out: list[Line] = []
        buf = self._buf + data if self._buf else data
        start = 0
        scan = len(self._buf)  # the pending tail holds no newline
        limit = self.max_line
        n = len(buf)
        while True:
            nl = buf.find(b"\n", scan, start + limit)  # a line end within the bound
            if nl >= 0:
                out.append(Line(buf[start:nl + 1], self._offset + start))
                start = scan = nl + 1
            elif n - start >= limit:
                out.append(Line(buf[start:start + limit], self._offset + start, True))
                start = scan = start + limit
            else:
                break
        self._buf = buf[start:]
        self._offset += start
        return out

    def skip(self, data: bytes) -> bool | None:
        """Take ``data`` as ``feed`` does without making the lines: whether the last line
        ``feed`` would have returned was cut (``partial``), or None when it would have returned
        none."""
        buf = self._buf + data if self._buf else data
        nl = buf.rfind(b"\n")
        rest = len(buf) - nl - 1  # bytes after the last line end: cut every max_line bytes
        keep = rest % self.max_line
        if nl < 0 and rest < self.max_line:
            self._buf = buf
            return None
        self._buf = buf[len(buf) - keep:] if keep else b""
        self._offset += len(buf) - keep
        return rest >= self.max_line

    @property
    def tail(self) -> tuple[int, bytes]:
        """The incomplete line held (no line end yet): ``(stream offset, bytes)``."""
        return self._offset, self._buf

    def flush(self) -> list[Line]:
        """The unterminated tail, as a partial line (at end of stream)."""
        if not self._buf:
            return []
        line = Line(self._buf, self._offset, True)
        self._offset += len(self._buf)
        self._buf = b""
        return [line]
