"""RESP2/RESP3 wire format: an incremental, bounded parser and an encoder (pure, no I/O).

Value model (what :class:`RespParser` produces and :func:`encode` accepts):

=========================  ===========================================
RESP                       Python
=========================  ===========================================
bulk string ``$``          ``bytes``
simple string ``+``        :class:`Simple`
simple error ``-``         :class:`Error` (bulk error ``!``: ``bulk=True``)
integer ``:``              ``int``
null ``$-1`` ``*-1`` ``_`` ``None``
boolean ``#``              ``bool``
double ``,``               ``float`` (``inf``, ``-inf``, ``nan``)
big number ``(``           :class:`BigNumber`
verbatim ``=``             :class:`Verbatim`
array ``*``                ``list``
map ``%``                  :class:`Map` (a tuple of key/value pairs)
set ``~``                  :class:`Set`
push ``>``                 :class:`Push`
attribute ``|``            :class:`Attributed` wrapping the value that follows
inline command             :class:`Inline` (only with ``inline=True``)
a string too long to keep  :class:`Truncated` (only with ``max_value``)
=========================  ===========================================

With ``max_value`` set, the parser never holds a whole long string: a bulk, verbatim or bulk
error longer than ``max(max_value, STREAM_MIN)`` bytes (and, in a reply parser, a simple string
or error line longer than ``max_inline``: MONITOR lines carry whole values) is read as it comes,
keeping its first ``max_value + 1`` bytes (``STREAM_MIN + 1`` for 0: one more than a view of
``max_value`` shows, so even its bytes alone say it goes on) and counting the rest: it comes out
as a :class:`Truncated`, which is ``bytes`` (those first bytes) whose ``len()`` is the full
length, so a view that shows ``"prefix..." (N bytes)`` shows it exactly as the whole value.

The parser never raises on input: malformed or over-limit input becomes a :class:`ProtocolError`
as the last item of a ``feed`` result, after which the parser stays failed.
"""

from __future__ import annotations

import math
import re
from itertools import accumulate as _accumulate
from itertools import chain as _chain
from operator import add as _add
from operator import sub as _sub

import attrs

try:
    import hiredis as _hiredis
except ImportError:  # pragma: no cover - hiredis is a dependency; the pure parser suffices
    _hiredis = None

__all__ = [
    "Attributed",
    "BigNumber",
    "Error",
    "Inline",
    "Map",
    "ProtocolError",
    "Push",
    "RespParser",
    "STREAM_MIN",
    "Set",
    "SpanRun",
    "Simple",
    "Truncated",
    "Verbatim",
    "encode",
    "encode_command",
    "split_inline",
]


class Truncated(bytes):
    """A string value longer than what is kept of it: the bytes are its first part, ``len()``
    is its full length on the wire (``kept`` the bytes held). Equal to a ``Truncated`` with
    the same first part and length, never to plain bytes."""

    def __new__(cls, head: bytes, length: int):
        self = super().__new__(cls, head)
        self.length = length
        return self

    def __len__(self) -> int:
        return self.length

    @property
    def kept(self) -> int:
        return bytes.__len__(self)

    def __eq__(self, other):
        if isinstance(other, Truncated):
            return self.length == other.length and bytes.__eq__(self, other)
        if isinstance(other, bytes):
            return False
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = bytes.__hash__

    def __repr__(self) -> str:
        return f"Truncated({bytes.__repr__(self)}, {self.length})"

    def __reduce__(self):
        return Truncated, (bytes(self), self.length)


def _truncated(head: bytes, length: int) -> bytes:
    return Truncated(head, length) if length > len(head) else head


@attrs.frozen
class Simple:
    """A simple string (``+OK``)."""

    value: bytes


@attrs.frozen
class Error:
    """An error reply: ``-ERR ...`` or, with ``bulk=True``, the RESP3 bulk error ``!``."""

    value: bytes
    bulk: bool = False

    @property
    def code(self) -> bytes:
        """The error code, the first word (``ERR``, ``WRONGTYPE``, ``NOAUTH``...)."""
        return self.value.split(b" ", 1)[0]


@attrs.frozen
class BigNumber:
    value: int


@attrs.frozen
class Verbatim:
    """A RESP3 verbatim string: a three-byte ``format`` (``txt``, ``mkd``) and the text."""

    format: bytes
    text: bytes


@attrs.frozen
class Map:
    """A RESP3 map, as an ordered tuple of ``(key, value)`` pairs (keys may be unhashable)."""

    items: tuple = ()

    def get(self, key, default=None):
        for k, v in self.items:
            if k == key:
                return v
        return default


@attrs.frozen
class Set:
    items: tuple = ()


@attrs.frozen
class Push:
    """A RESP3 out-of-band push (pub/sub messages, invalidations)."""

    items: tuple = ()


@attrs.frozen
class Attributed:
    """A value preceded by a RESP3 attribute map."""

    attributes: Map
    value: object


@attrs.frozen
class Inline:
    """An inline command (``PING\\r\\n`` typed into nc/telnet), split the way Redis splits it."""

    args: tuple


@attrs.frozen
class ProtocolError:
    """Input that is not RESP (or exceeds a bound), at absolute stream ``offset``."""

    message: str
    offset: int


# Type bytes.
_BULK, _SIMPLE, _ERROR, _INT, _ARRAY = 36, 43, 45, 58, 42
_NULL, _BOOL, _DOUBLE, _BIG, _BULKERR, _VERB = 95, 35, 44, 40, 33, 61
_MAP, _SET, _PUSH, _ATTR = 37, 126, 62, 124
_WRAP = -1  # internal frame: waiting for the value an attribute map applies to
_TYPE_BYTES = frozenset(b"$+-:*_#,(!=%~>|")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT_MAX = 2**31 - 1  # redis-server's bound on a request's argument count
_DOUBLE_RE = re.compile(
    rb"-?(?:inf|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\Z", re.IGNORECASE
)
_PENDING = object()
_LAZY = 2  # the "sized" mode of feed_spans(lazy=True)
STREAM_MIN = 64 * 1024  # with max_value, strings longer than max(max_value, this) are streamed
_HIREDIS_MIN = 256  # below this many bytes the pure parser is as fast
_HIREDIS_MIN_BULKS = 64  # the same for a run of bulk replies
# Type bytes hiredis shows differently. And array headers of a million elements or more:
# hiredis allocates an array's list when it reads the header, and a list of 2**31 slots takes
# seconds to free when the frame never comes (``*2147483647\r\n``). (Maps become dicts, which
# it does not size ahead.) One regex for short inputs; for long ones two literal-led searches
# are cheaper than the alternation.
_RISKY_TYPE = re.compile(rb"\r\n[~>|=]")
_BIG_ARRAY = re.compile(rb"\*[0-9]{7}")
_RISKY_SHORT = re.compile(rb"\r\n(?:[~>|=]|\*[0-9]{7})")
_LIST_ONLY = {list}
_BYTES_ONLY = {bytes}
_EMPTY = {_ARRAY: list, _MAP: Map, _SET: Set, _PUSH: Push}
# Common simple strings, parsed once (values are immutable, so they can be shared).
_SIMPLES = {v: Simple(v) for v in (b"OK", b"QUEUED", b"PONG", b"RESET")}
NOT_ONE = object()  # RespParser.feed_reply: the feed is not exactly one scalar


def _pairs(items: list) -> tuple:
    return tuple(zip(items[0::2], items[1::2], strict=True))


def _num(s: bytes):
    """A strict signed decimal (as Redis' string2ll: no sign +, no leading zeros, no -0), or None."""
    if len(s) > 20:
        return None  # beyond 64 bits anyway
    if s.isdigit():
        if s[0] == 48 and len(s) > 1:
            return None
        return int(s)
    if s[:1] == b"-" and s[1:].isdigit() and s[1] != 48:
        return -int(s[1:])
    return None


def _bignum(s: bytes):
    if len(s) > 4000:  # int() refuses more than 4300 digits by default
        return None
    digits = s[1:] if s[:1] == b"-" else s
    if not digits.isdigit() or (digits[0] == 48 and len(s) > 1):
        return None
    return int(s)


def _double(s: bytes):
    if _DOUBLE_RE.match(s) is None:
        return None
    v = float(s)
    if math.isinf(v) and b"inf" not in s.lower():
        return None  # overflow, as hiredis
    return v


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


def _frame_starts(lens: list, counts: list, base: int) -> list:
    """Stream offsets where each of a run of canonical bulk-string arrays starts, and where the
    last ends; ``lens``: all elements' lengths, ``counts``: elements per frame. C-level maps."""
    cum = list(_accumulate(map(_add, lens, map(len, map(str, lens))), initial=0))
    at = list(map(cum.__getitem__, _accumulate(counts, initial=0)))
    heads = map(_add, map(len, map(str, counts)), map((5).__mul__, counts))
    sizes = map((3).__add__, map(_add, map(_sub, at[1:], at[:-1]), heads))
    return list(_accumulate(sizes, initial=base))


def _risky(data: bytes) -> bool:
    """Whether ``data`` is left to the pure parser (see ``_RISKY_TYPE``)."""
    if len(data) < 1024:
        return _RISKY_SHORT.search(data) is not None or (
            data[:1] == b"*" and data[1:8].isdigit())
    return _RISKY_TYPE.search(data) is not None or _BIG_ARRAY.search(data) is not None


def _hiredis_idle(reader) -> bool:
    """Whether hiredis holds no part of a frame after ``gets()`` gave False. ``has_data()`` does
    not tell: the header and elements of a partly read aggregate are consumed already (a read
    ending in ``*2\r\n`` leaves nothing in its buffer). So feed an empty array and expect it
    back, alone; the reader is at a frame boundary again when it is."""
    reader.feed(b"*0\r\n")
    try:
        return reader.gets() == [] and not reader.has_data()
    except Exception:  # hiredis.ProtocolError: mid-line
        return False


def _hiredis_exact(data: bytes, flat: list, headers: int, max_bulk: int) -> bool:
    """Whether hiredis read ``data`` (``headers`` array header lines, then the bulk strings
    ``flat``) exactly as the pure parser would, the callers having ruled out the type bytes it
    shows as lists or as bytes of another size (``_RISKY_TYPE``).

    hiredis reads lengths exactly as strictly as we do (no sign, no leading zero, no space), but
    skips the two bytes after a bulk body without looking at them: so count CRLFs. Expected: one
    per header line, two per bulk, plus those inside the bodies (the NUL separator keeps bodies
    from forming one across). A bad terminator, or a simple string or big number in place of a
    bulk (hiredis shows both as bytes, with one CRLF), removes one, unless a body ends with CR
    and the bad pair starts with LF: such bodies are left to the pure parser. Nothing can add
    one: header lines hold one each and are followed by a type byte or a body. False too for an
    element that is not bytes (the join fails) or a body over ``max_bulk`` (the pure parser
    reports it).
    """
    try:
        joined = b"\x00".join(flat)
    except TypeError:
        return False
    crlfs = headers + 2 * len(flat)
    if joined.find(13) >= 0:  # a CR in some body (rare)
        if b"\r\x00" in joined or joined.endswith(b"\r"):
            return False
        crlfs += joined.count(b"\r\n")
    if data.count(b"\r\n") != crlfs:
        return False
    return len(data) <= max_bulk or max(map(len, flat), default=0) <= max_bulk


class SpanRun:
    """The stream offsets of a run of commands parsed in one go, worked out when first asked:
    ``feed_spans(data, lazy=True)`` gives ``(values, run, None)`` for the run (``values``: the
    commands, each a list of bytes, in canonical form), ``run.span(i)`` is ``(start, end)`` of
    ``values[i]``. (Most callers never ask: the work is saved.)"""

    __slots__ = ("_values", "_base", "_starts")

    def __init__(self, values, base):
        self._values = values
        self._base = base
        self._starts = None

    def starts(self) -> list:
        """Where each command starts, and where the last one ends."""
        starts = self._starts
        if starts is None:
            values = self._values
            lens = list(map(len, _chain.from_iterable(values)))
            starts = self._starts = _frame_starts(lens, list(map(len, values)), self._base)
            self._values = None
        return starts

    def span(self, i: int) -> tuple[int, int]:
        starts = self._starts or self.starts()
        return starts[i], starts[i + 1]


class _Failed(Exception):
    def __init__(self, message: str, offset: int):
        self.message = message
        self.offset = offset


class RespParser:
    """Incremental RESP2/RESP3 parser.

    ``feed(data)`` returns the complete top-level values in order; ``feed_sized(data)`` returns
    ``(value, nbytes)`` pairs, ``nbytes`` being the frame's length on the wire (a final
    :class:`ProtocolError` comes as ``(error, 0)``), ``feed_spans(data)`` ``(value, start, end)``
    with stream offsets. Any of them may be used on each feed. Skipped empty inline lines belong
    to no frame.

    Costs are linear in the input whatever the split: a partial line is searched only in its new
    bytes, a bulk that is not complete in one feed is collected as a list of chunks joined once,
    and aggregates keep their completed elements on an explicit stack.

    Runs of complete arrays of bulk strings (ordinary commands) are parsed by ``hiredis`` where
    that is exact (about twice as fast; see ``_hiredis_prefix`` for why it is exact);
    ``use_hiredis=False`` turns that off.

    With ``inline=True`` (a server reading requests) a top-level frame not starting with ``*`` is
    an inline command, as in Redis; empty inline lines are skipped.

    With ``max_value`` (a passive decoder) long strings are streamed, not collected: see the
    module docstring. What the parser holds is then bounded by ``max(max_value, STREAM_MIN,
    max_inline)`` plus one feed, whatever ``max_bulk`` is (``buffered()`` tells).

    ``redis_requests=True`` (with ``inline``) frames requests exactly as redis-server's
    ``processMultibulkBuffer`` does, failing at the first bad header line: a request's count is
    an integer up to ``INT_MAX`` (a negative one is an empty request), its elements are bulk
    strings (``$``, length 0 or more), and a header line without its line end fails once it
    passes ``max_inline`` bytes (an "array header" at the top, a "line" inside a request).
    ``max_count`` bounds an aggregate's length (None: no bound).
    """

    def __init__(
        self,
        max_bulk: int = 512 * 1024 * 1024,
        max_depth: int = 128,
        max_inline: int = 64 * 1024,
        inline: bool = False,
        use_hiredis: bool = True,
        max_value: int | None = None,
        redis_requests: bool = False,
        max_count: int | None = None,
    ):
        # strings longer than this are streamed (None: collected whole, up to max_bulk)
        self._stream_over = None if max_value is None else max(max_value, STREAM_MIN)
        self.max_bulk = max_bulk
        self._keep = (max_value or STREAM_MIN) + 1  # bytes kept of a streamed string
        self._lines = max_value is not None and not inline  # stream long +/- lines too
        self.max_depth = max_depth
        self.max_inline = max_inline
        self.inline = inline
        self.redis_requests = redis_requests and inline
        self.max_count = max_count
        self._use_hiredis = use_hiredis and _hiredis is not None
        self.failed = False
        self._stack: list = []  # frames: [kind, remaining, items, attributes-map]
        self._pend = bytearray()  # a partial line
        self._scan = 0  # how far _pend has been searched for a newline
        self._abs = 0  # stream offset of the first byte not consumed yet
        self._fstart = 0  # stream offset where the current top-level frame began
        self._chunks = None  # list while collecting a bulk body across feeds
        self._need = 0  # body bytes still missing
        self._tail = b""  # CRLF bytes seen after the body
        self._bkind = 0
        self._bstart = 0  # stream offset of the bulk's header
        self._blen = 0  # a streamed string: its declared length (a line: its length so far)
        self._keep_left = 0  # bytes of the body still to keep
        self._lcr = False  # a streamed line: its last byte so far is a CR (not counted yet)
        self._lbad = False  # a streamed line: a CR inside it
        self._reader = None  # a hiredis reader for whole single-command feeds

    @property
    def offset(self) -> int:
        """Bytes consumed so far (the stream offset parsing has reached)."""
        return self._abs + len(self._pend)

    def feed(self, data: bytes) -> list:
        return self._feed(data, False)

    def feed_sized(self, data: bytes) -> list:
        return [(v, end - start) for v, start, end in self._feed(data, True)]

    def feed_spans(self, data: bytes, lazy: bool = False) -> list:
        """``(value, start, end)``: each frame with its stream offsets (a final
        :class:`ProtocolError` comes as ``(error, offset, offset)``). With ``lazy``, a run of
        commands parsed in one go (by hiredis; each an array of bulk strings) comes as one item
        ``(values, run, None)`` instead: ``run.span(i)`` (a :class:`SpanRun`) gives the offsets
        of ``values[i]`` when needed."""
        return self._feed(data, _LAZY if lazy else True)

    @property
    def max_bulk(self) -> int:
        return self._max_bulk

    @max_bulk.setter
    def max_bulk(self, value: int) -> None:
        self._max_bulk = value
        over = self._stream_over
        # the longest string collected whole (longer ones fail, or are streamed)
        self._longest_whole = value if over is None or over > value else over

    def buffered(self) -> int:
        """Bytes of input held: a partial line, the kept part of a string being read."""
        n = len(self._pend)
        if self._chunks is not None:
            n += sum(map(bytes.__len__, self._chunks)) + len(self._tail)
        return n

    def frame_head(self):
        """The first element of the unfinished top-level array, once read (else None): a
        command's name while its arguments still come."""
        stack = self._stack
        if stack and stack[0][0] == _ARRAY and stack[0][2]:
            return stack[0][2][0]
        return None

    @property
    def frame_start(self) -> int:
        """Stream offset where the unfinished top-level frame begins (``offset`` if none)."""
        if self._stack or self._chunks is not None:
            return self._fstart
        return self._abs

    def feed_command(self, data: bytes):
        """The fast path for a feed that is exactly one whole command (an array of bulk
        strings), the common case of request/response traffic: its arguments (a list of
        bytes), or None when ``data`` is anything else, and nothing was consumed (``feed_spans``
        then takes it). The frame spans ``offset - len(data)`` to ``offset``."""
        if data[:1] != b"*" or self._stack or self._pend or self._chunks is not None or (
            self.failed or not self._use_hiredis or len(data) >= _HIREDIS_MIN
        ):
            return None
        value = self._hiredis_whole(data)
        if value is not None:
            self._abs += len(data)
        return value

    def feed_reply(self, data: bytes):
        """The fast path for a feed that is exactly one simple string, bulk string or integer
        (most replies of request/response traffic): the value, or ``NOT_ONE`` when ``data`` is
        anything else, and nothing was consumed (``feed`` then takes it)."""
        if self._stack or self._pend or self._chunks is not None or self.failed:
            return NOT_ONE
        n = len(data)
        nl = data.find(b"\r\n")
        if nl < 1 or nl > self.max_inline:
            return NOT_ONE
        t = data[0]
        if t == _SIMPLE:
            if nl != n - 2:
                return NOT_ONE
            line = data[1:nl]
            value = _SIMPLES.get(line)
            if value is None:
                if 10 in line or 13 in line:
                    return NOT_ONE
                value = Simple(line)
        elif t == _BULK:
            line = data[1:nl]
            if not line.isdigit() or (line[0] == 48 and nl != 2) or (
                    n != nl + 4 + int(line) or data[-2:] != b"\r\n" or (
                        n - nl - 4 > self._longest_whole)):
                return NOT_ONE
            value = data[nl + 2 : -2]
        elif t == _INT:
            line = data[1:nl]
            if nl != n - 2 or not line.isdigit() or (line[0] == 48 and nl != 2) or nl > 19:
                return NOT_ONE
            value = int(line)
        else:
            return NOT_ONE
        self._abs += n
        return value

    def _hiredis_bulks(self, data: bytes, out: list) -> int:
        """A run of whole bulk-string replies (``data`` starts with ``$``) parsed by hiredis,
        when that is exact (as in ``_hiredis_prefix``: every value bytes, no ``~ > | =`` type
        byte, two CRLFs per value besides those in the bodies); the bytes consumed, or 0."""
        if not data.endswith(b"\r\n") or _risky(data):
            return 0
        reader = _hiredis.Reader()
        reader.feed(data)
        try:
            values = list(iter(reader.gets, False))
        except Exception:
            return 0
        if not values or not _hiredis_idle(reader) or set(map(type, values)) != _BYTES_ONLY or (
                not _hiredis_exact(data, values, 0, self._longest_whole)):
            return 0
        out.extend(values)
        return len(data)

    def _fail(self, out: list, sized: bool, message: str, offset: int) -> list:
        self.failed = True
        self._stack = []
        self._pend = bytearray()
        self._chunks = None
        self._tail = b""
        err = ProtocolError(message, offset)
        out.append((err, offset, offset) if sized else err)
        return out

    def _feed(self, data, sized: bool) -> list:
        out: list = []
        if self.failed or not data:
            return out
        if not isinstance(data, bytes):
            data = bytes(data)
        try:
            start = 0
            if self._chunks is not None:
                start = self._continue_bulk(data, 0, out, sized)
                if start < 0:
                    return out
                buf = data
            elif self._pend:
                pend = self._pend
                pend += data
                if pend.find(b"\n", self._scan) < 0:
                    self._scan = len(pend)
                    if self.redis_requests:
                        if len(pend) - (pend[-1] == 13) > self.max_inline:
                            raise self._long_line(pend[0], self._abs)
                        return out
                    if len(pend) <= self.max_inline + 2:
                        return out
                    if not (self._lines and (pend[0] == _SIMPLE or pend[0] == _ERROR)):
                        raise _Failed("line longer than %d bytes" % self.max_inline, self._abs)
                    # else a long simple string: _parse streams it
                buf = bytes(pend)
                self._pend = bytearray()
            else:
                buf = data
            if start < len(buf):
                self._parse(buf, start, out, sized)
        except _Failed as e:
            return self._fail(out, sized, e.message, e.offset)
        except Exception as e:  # a bug must not become a traceback in the caller
            return self._fail(out, sized, "internal parser error: %r" % (e,), self.offset)
        return out

    def _hiredis_prefix(self, data: bytes, out: list, sized: bool) -> int:
        r"""Parse the leading complete frames of ``data`` with hiredis where that is exact.

        ``data`` starts at a frame boundary, with ``*``. hiredis parses it up to the last
        ``\r\n*`` (a candidate boundary). The result is used only when hiredis consumed that
        prefix into complete frames that are flat lists of bytes, the prefix holds no ``\r\n``
        followed by a type byte whose value hiredis shows as a list or as bytes of a size other
        than a bulk's (``~ > | =``), and ``_hiredis_exact`` holds. Returns the bytes consumed;
        0 means "not used", and the pure parser goes on.
        """
        end = data.rfind(b"\r\n*") + 2
        if end <= 2:
            end = len(data) if data.endswith(b"\r\n") else 0
            if not end:
                return 0
        elif data.endswith(b"\r\n"):
            end = len(data)
        prefix = data[:end] if end < len(data) else data
        if _risky(prefix):
            return 0
        reader = _hiredis.Reader()
        reader.feed(prefix)
        try:
            values = list(iter(reader.gets, False))
        except Exception:  # hiredis.ProtocolError: the pure parser reports it precisely
            return 0
        if not values or not _hiredis_idle(reader):
            return 0
        if set(map(type, values)) != _LIST_ONLY:
            return 0
        nvalues = len(values)
        if not _hiredis_exact(prefix, list(_chain.from_iterable(values)), nvalues,
                              self._longest_whole):
            return 0
        if sized == _LAZY:
            out.append((values, SpanRun(values, self._abs), None))
        elif sized:
            if nvalues == 1:
                out.append((values[0], self._abs, self._abs + end))
            else:
                starts = SpanRun(values, self._abs).starts()
                out.extend(zip(values, starts, starts[1:], strict=False))
        else:
            out.extend(values)
        self._abs += end
        return end

    def _hiredis_whole(self, buf: bytes):
        """``buf`` as one array of bulk strings, parsed by hiredis, when it is exactly that
        frame (checked as in ``_hiredis_prefix``); else None."""
        if buf[-2:] != b"\r\n" or _risky(buf):
            return None
        reader = self._reader
        if reader is None:
            reader = self._reader = _hiredis.Reader()
        reader.feed(buf)
        try:
            value = reader.gets()
        except Exception:
            value = None
        if type(value) is not list or not _hiredis_idle(reader):
            self._reader = None  # holds a partial or bad frame: not reused
            return None
        return value if _hiredis_exact(buf, value, 1, self._longest_whole) else None

    def _continue_bulk(self, data: bytes, pos: int, out: list, sized: bool) -> int:
        """Feed a string being read from ``data[pos:]``; the position after it, or -1 (all of
        ``data`` taken)."""
        if self._bkind == _SIMPLE or self._bkind == _ERROR:
            return self._continue_line(data, pos, out, sized)
        n = len(data)
        need = self._need
        if need:
            take = min(need, n - pos)
            keep = self._keep_left
            if keep:
                k = min(keep, take)
                self._chunks.append(data[pos : pos + k])  # all of data: no copy
                self._keep_left = keep - k
            self._need = need = need - take
            self._abs += take
            pos += take
            if need:
                return -1
        want = 2 - len(self._tail)
        got = data[pos : pos + want]
        tail = self._tail + got
        pos += len(got)
        self._abs += len(got)
        if len(tail) < 2:
            self._tail = tail
            return -1
        if tail != b"\r\n":
            raise _Failed("bulk not terminated by CRLF", self._abs - 2)
        body = b"".join(self._chunks)
        self._chunks = None
        self._tail = b""
        value = self._bulk_value(self._bkind, body, self._bstart, self._blen)
        self._blen = 0
        return self._complete(value, pos, out, sized)

    def _stream(self, kind: int, length: int, start: int, fstart: int) -> None:
        """Start reading a string value as it comes, keeping only its first bytes: a bulk,
        verbatim or bulk error of ``length`` bytes, or (``length`` 0) a simple string or
        error line; ``start``: the stream offset of its type byte."""
        self._bkind = kind
        self._bstart = start
        self._fstart = fstart
        self._blen = length
        self._chunks = []
        self._need = length
        self._tail = b""
        keep = self._keep + 4 if kind == _VERB else self._keep  # the format, then the text
        self._keep_left = min(length, keep) if length else keep
        self._lcr = self._lbad = False

    def _continue_line(self, data: bytes, pos: int, out: list, sized: bool) -> int:
        """``_continue_bulk`` for a streamed simple string or error line. Its errors are those
        of a line read whole: a line end that is not CRLF, else a CR inside."""
        n = len(data)
        if pos >= n:
            return -1
        nl = data.find(b"\n", pos)
        stop = n if nl < 0 else nl
        if self._lcr and stop > pos:  # the CR held back was not the line end: content
            self._lcr = False
            self._lbad = True
            self._take_line(b"\r", 0, 1)
        if nl < 0:
            cut = n - 1 if data[n - 1] == 13 else n
        else:
            cut = nl - 1 if nl > pos and data[nl - 1] == 13 else nl
        if data.find(b"\r", pos, cut) >= 0:
            self._lbad = True
        self._take_line(data, pos, cut)
        if self._blen > self.max_bulk:
            raise _Failed("line longer than %d bytes" % self.max_bulk, self._bstart)
        if nl < 0:
            self._lcr = cut < n
            self._abs += n - pos
            return -1
        terminated = cut < nl or self._lcr
        self._abs += nl + 1 - pos
        if not terminated:
            raise _Failed("line not terminated by CRLF", self._abs - 1)
        if self._lbad:
            raise _Failed("CR inside a simple string", self._bstart)
        head = _truncated(b"".join(self._chunks), self._blen)
        value = Simple(head) if self._bkind == _SIMPLE else Error(head)
        self._chunks = None
        self._blen = 0
        self._lcr = False
        return self._complete(value, nl + 1, out, sized)

    def _take_line(self, data: bytes, start: int, end: int) -> None:
        """Count ``data[start:end]`` into the streamed line, keeping what the view needs."""
        self._blen += end - start
        keep = self._keep_left
        if keep and end > start:
            k = min(keep, end - start)
            self._chunks.append(data[start : start + k])
            self._keep_left = keep - k

    def _complete(self, value, pos: int, out: list, sized: bool) -> int:
        """A value read by ``_continue_bulk``: to its aggregate or out; returns ``pos``."""
        stack = self._stack
        if stack:
            top = stack[-1]
            top[2].append(value)
            top[1] -= 1
            if top[1]:
                return pos
            value = self._close()
            if value is _PENDING:
                return pos
        out.append((value, self._fstart, self._abs) if sized else value)
        return pos

    @staticmethod
    def _bulk_value(kind: int, body: bytes, offset: int, length: int = 0):
        """The value of a bulk-like string; ``length``: the full length when only the first
        part, ``body``, was kept."""
        if kind == _BULK:
            return _truncated(body, length) if length else body
        if kind == _BULKERR:
            return Error(_truncated(body, length) if length else body, bulk=True)
        if len(body) < 4 or body[3] != 58:
            raise _Failed("verbatim string without a 3-byte format", offset)
        return Verbatim(body[:3], _truncated(body[4:], length - 4) if length else body[4:])

    def _close(self):
        """Pop completed aggregates; the completed top-level value, or _PENDING."""
        stack = self._stack
        while True:
            kind, _, items, attributes = stack.pop()
            if kind == _ARRAY:
                value = items
            elif kind == _MAP:
                value = Map(_pairs(items))
            elif kind == _SET:
                value = Set(tuple(items))
            elif kind == _PUSH:
                value = Push(tuple(items))
            elif kind == _ATTR:
                stack.append([_WRAP, 1, [], Map(_pairs(items))])
                return _PENDING
            else:  # _WRAP
                value = Attributed(attributes, items[0])
            if not stack:
                return value
            top = stack[-1]
            top[2].append(value)
            top[1] -= 1
            if top[1]:
                return _PENDING

    def _long_line(self, first: int, offset: int) -> _Failed:
        """A redis_requests line over ``max_inline`` bytes with no line end yet (``first``: its
        first byte)."""
        what = "line" if self._stack else "array header" if first == _ARRAY else "inline line"
        return _Failed("%s longer than %d bytes" % (what, self.max_inline), offset)

    def _redis_header(self, buf: bytes, pos: int, nl: int, base: int) -> None:
        """redis_requests: check a request's header line (``*`` count, or an element's ``$``
        length) in Redis's order: its size, then (inside a request) the type byte, then the
        line end; lengths are checked by the general code."""
        # the line's length without its line end, however much of it has come
        end = nl if nl >= 0 else len(buf)
        if end - pos - (end > pos and buf[end - 1] == 13) > self.max_inline:
            raise self._long_line(buf[pos], base + pos)
        if nl < 0:
            return
        t = buf[pos]
        if self._stack and t != _BULK:
            raise _Failed("expected '$', got '%s'" % chr(t), base + pos)
        if buf[nl - 1] != 13 or nl == pos:
            what = "bad bulk length" if self._stack else "bad aggregate length"
            raise _Failed("%s (line not terminated by CRLF)" % what, base + pos)

    def _parse(self, buf: bytes, pos: int, out: list, sized: bool) -> None:
        stack = self._stack
        n = len(buf)
        base = self._abs - pos  # stream offset of buf[0]
        max_bulk = self.max_bulk
        big = self._longest_whole  # the fast paths take strings up to this long
        lines = self._lines
        max_line = self.max_inline
        inline = self.inline
        fstart = self._fstart
        find = buf.find
        append = out.append
        try_hiredis = self._use_hiredis
        try_run = True
        while pos < n:
            t = buf[pos]
            if not stack:
                fstart = base + pos
                if t == _ARRAY:
                    if try_hiredis and n - pos >= _HIREDIS_MIN:
                        try_hiredis = False  # once per feed: it takes all it can
                        self._abs = base + pos
                        used = self._hiredis_prefix(buf[pos:] if pos else buf, out, sized)
                        if used:
                            pos += used
                            continue
                    elif try_hiredis and not pos:
                        try_hiredis = False
                        value = self._hiredis_whole(buf)
                        if value is not None:  # the feed is exactly one command
                            append((value, base, base + n) if sized else value)
                            pos = n
                            break
                    # Fast path: a whole array of bulk strings (every command, many replies).
                    nl = find(b"\r\n", pos)
                    s = buf[pos + 1 : nl]
                    if 0 < nl < pos + 12 and s.isdigit() and (s[0] != 48 or nl == pos + 2):
                        count = int(s)
                        items = []
                        p = nl + 2
                        while count:
                            if p >= n or buf[p] != _BULK:
                                break
                            nl = find(b"\r\n", p)
                            s = buf[p + 1 : nl]
                            if (
                                not 0 < nl < p + 12
                                or not s.isdigit()
                                or (s[0] == 48 and nl != p + 2)
                            ):
                                break
                            end = nl + 2 + int(s)
                            if (
                                end + 2 > n
                                or buf[end : end + 2] != b"\r\n"
                                or end - nl - 2 > big
                            ):
                                break
                            items.append(buf[nl + 2 : end])
                            p = end + 2
                            count -= 1
                        if not count:
                            append((items, base + pos, base + p) if sized else items)
                            pos = p
                            continue
                elif inline:
                    nl = find(b"\n", pos)
                    if nl < 0:
                        if n - pos > max_line:
                            raise _Failed("inline line longer than %d bytes" % max_line, fstart)
                        break
                    if nl - pos > max_line:
                        raise _Failed("inline line longer than %d bytes" % max_line, fstart)
                    end = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl
                    args = split_inline(buf[pos:end])
                    if args is None:
                        raise _Failed("unbalanced quotes in inline command", fstart)
                    pos = nl + 1
                    if args:
                        value = Inline(args)
                        append((value, fstart, base + pos) if sized else value)
                    continue
                elif t == _SIMPLE or t == _BULK or t == _INT:
                    if t == _BULK and try_hiredis and not sized and n - pos >= _HIREDIS_MIN_BULKS:
                        try_hiredis = False  # a run of bulk replies (pipelined GETs): hiredis
                        used = self._hiredis_bulks(buf[pos:] if pos else buf, out)
                        if used:
                            pos += used
                            break
                    # Fast path: a whole top-level scalar (most replies); anything unusual in
                    # it (signs, nulls, stray CR/LF, over a bound) is left to the general code.
                    nl = find(b"\r\n", pos)
                    if pos < nl <= pos + max_line:
                        line = buf[pos + 1 : nl]
                        value = _PENDING
                        if t == _SIMPLE:
                            value = _SIMPLES.get(line)
                            if value is None:
                                value = Simple(line) if 13 not in line and 10 not in line \
                                    else _PENDING
                            end = nl + 2
                        elif line.isdigit() and (line[0] != 48 or nl == pos + 2):
                            if t == _INT:
                                if nl - pos < 19:
                                    value = int(line)
                                    end = nl + 2
                            else:
                                end = nl + 2 + int(line)
                                if end + 2 <= n and buf[end : end + 2] == b"\r\n" and (
                                    end - nl - 2 <= big
                                ):
                                    value = buf[nl + 2 : end]
                                    end += 2
                        if value is not _PENDING:
                            if try_run and end < n and t != _BULK and not sized:
                                # Once per feed: is the rest this same line over and over (a
                                # pipeline of +OK or :1 replies)? One count() instead of a
                                # loop turn per reply.
                                try_run = False
                                size = end - pos
                                k, rest = divmod(n - pos, size)
                                if not rest and buf.count(buf[pos:end], pos) == k:
                                    out.extend([value] * k)
                                    pos = n
                                    break
                            pos = end
                            append((value, fstart, base + pos) if sized else value)
                            continue
            nl = find(b"\n", pos)
            if self.redis_requests:
                self._redis_header(buf, pos, nl, base)
            if (n if nl < 0 else nl) - pos > max_line + 2:
                if not (lines and (t == _SIMPLE or t == _ERROR)):
                    raise _Failed("line longer than %d bytes" % max_line, base + pos)
                # A long simple string (a MONITOR line): streamed.
                self._stream(t, 0, base + pos, fstart)
                self._abs = base + pos + 1
                pos = self._continue_line(buf, pos + 1, out, sized)
                if pos < 0:
                    return
                continue
            if nl < 0:
                break
            if buf[nl - 1] != 13 or nl == pos:
                raise _Failed("line not terminated by CRLF", base + nl)
            line = buf[pos + 1 : nl - 1]
            if t == _BULK or t == _BULKERR or t == _VERB:
                length = _num(line)
                if length is None or length < -1 or (length == -1 and self.redis_requests):
                    raise _Failed("bad bulk length %r" % line[:40], base + pos)
                if length > max_bulk:
                    raise _Failed(
                        "bulk length %d exceeds the limit %d" % (length, max_bulk), base + pos
                    )
                if length == -1:
                    if t != _BULK:
                        raise _Failed("null is only valid for a bulk string", base + pos)
                    value = None
                    pos = nl + 1
                else:
                    body = nl + 1
                    end = body + length
                    if length > big:
                        # Too long to keep whole: read it as it comes (the first bytes kept).
                        self._stream(t, length, base + pos, fstart)
                        self._abs = base + body
                        pos = self._continue_bulk(buf, body, out, sized)
                        if pos < 0:
                            return
                        continue
                    if end + 2 <= n:
                        if buf[end : end + 2] != b"\r\n":
                            raise _Failed("bulk not terminated by CRLF", base + end)
                        value = buf[body:end]
                        if t != _BULK:
                            value = self._bulk_value(t, value, base + pos)
                        pos = end + 2
                    else:
                        # Collect the body across feeds; join once at the end.
                        self._bkind = t
                        self._bstart = base + pos
                        self._blen = 0
                        self._keep_left = length
                        if end <= n:
                            self._chunks = [buf[body:end]]
                            self._need = 0
                            self._tail = buf[end:n]
                        else:
                            self._chunks = [buf[body:n]] if body < n else []
                            self._need = end - max(body, n)
                            self._tail = b""
                        self._fstart = fstart
                        self._abs = base + n
                        return
            elif t == _SIMPLE or t == _ERROR:
                if 13 in line:
                    raise _Failed("CR inside a simple string", base + pos)
                if t == _SIMPLE:
                    value = _SIMPLES.get(line) or Simple(line)
                else:
                    value = Error(line)
                pos = nl + 1
            elif t == _INT:
                value = _num(line)
                if value is None or not _INT64_MIN <= value <= _INT64_MAX:
                    raise _Failed("bad integer %r" % line[:40], base + pos)
                pos = nl + 1
            elif t in (_ARRAY, _MAP, _SET, _PUSH, _ATTR):
                count = _num(line)
                if self.redis_requests and count is not None:
                    if not _INT64_MIN <= count <= _INT_MAX:
                        count = None  # as string2ll and Redis's INT_MAX bound refuse it
                    elif count < 0:
                        count = -1  # Redis reads any negative count as an empty request
                if count is None or count < -1 or (count == -1 and t != _ARRAY):
                    raise _Failed("bad aggregate length %r" % line[:40], base + pos)
                if self.max_count is not None and count > self.max_count:
                    raise _Failed("aggregate length %d exceeds the limit %d"
                                  % (count, self.max_count), base + pos)
                pos = nl + 1
                if count == -1:
                    value = None
                elif count == 0 and t != _ATTR:
                    value = _EMPTY[t]()
                else:
                    if len(stack) >= self.max_depth:
                        raise _Failed("nesting deeper than %d" % self.max_depth, base + pos)
                    if t == _MAP or t == _ATTR:
                        count *= 2
                    stack.append([t, count, [], None])
                    if count:
                        continue
                    value = self._close()  # an empty attribute map
                    if value is _PENDING:
                        continue
            elif t == _NULL:
                if line:
                    raise _Failed("bad null", base + pos)
                value = None
                pos = nl + 1
            elif t == _BOOL:
                if line == b"t":
                    value = True
                elif line == b"f":
                    value = False
                else:
                    raise _Failed("bad boolean %r" % line[:40], base + pos)
                pos = nl + 1
            elif t == _DOUBLE:
                value = _double(line)
                if value is None:
                    raise _Failed("bad double %r" % line[:40], base + pos)
                pos = nl + 1
            elif t == _BIG:
                value = _bignum(line)
                if value is None:
                    raise _Failed("bad big number %r" % line[:40], base + pos)
                value = BigNumber(value)
                pos = nl + 1
            else:
                if t in b"?;.":
                    raise _Failed("streamed RESP3 types are not supported", base + pos)
                raise _Failed("unknown type byte %r" % bytes([t]), base + pos)
            # A value is complete: hand it to its aggregate or out.
            if stack:
                top = stack[-1]
                top[2].append(value)
                top[1] -= 1
                if top[1]:
                    continue
                value = self._close()
                if value is _PENDING:
                    continue
            append((value, fstart, base + pos) if sized else value)
        self._fstart = fstart
        self._abs = base + pos
        if pos < n:
            self._pend = bytearray(memoryview(buf)[pos:])
            self._scan = n - pos


# ---------------------------------------------------------------------------------------------
# Encoding


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
