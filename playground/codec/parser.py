"""The RESP2/RESP3 parser: incremental and bounded, never raising on input (pure, no I/O).

:class:`RespParser` turns bytes into the values of :mod:`playground.codec.values`. Its own loop
(``RespParser._parse_pure``) reads everything; runs of whole commands and of bulk replies may go
to hiredis instead, through its one entry point
:meth:`playground.codec.hiredisprefix.HiredisPrefix.parse_prefix`, which takes them only where
its values are exactly the pure loop's.

With ``max_value`` set, the parser never holds a whole long string: a bulk, verbatim or bulk
error longer than ``max(max_value, STREAM_MIN)`` bytes (and, in a reply parser, a simple string
or error line longer than ``max_inline``: MONITOR lines carry whole values) is read as it comes,
keeping its first ``max_value + 1`` bytes (``STREAM_MIN + 1`` for 0: one more than a view of
``max_value`` shows, so even its bytes alone say it goes on) and counting the rest: it comes out
as a :class:`~playground.codec.values.Truncated`, which is ``bytes`` (those first bytes) whose
``len()`` is the full length, so a view that shows ``"prefix..." (N bytes)`` shows it exactly as
the whole value.

The parser never raises on input: malformed or over-limit input becomes a
:class:`~playground.codec.values.ProtocolError` as the last item of a ``feed`` result, after
which the parser stays failed.
"""

from __future__ import annotations

import math
import re
from itertools import accumulate as _accumulate
from itertools import chain as _chain
from operator import add as _add
from operator import sub as _sub

from playground.codec.hiredisprefix import HiredisPrefix
from playground.codec.inline import split_inline
from playground.codec.values import (
    Attributed,
    BigNumber,
    Error,
    Inline,
    Map,
    ProtocolError,
    Push,
    Set,
    Simple,
    Truncated,
    Verbatim,
)

__all__ = ["NOT_ONE", "STREAM_MIN", "RespParser", "SpanRun"]

# Type bytes.
_BULK, _SIMPLE, _ERROR, _INT, _ARRAY = 36, 43, 45, 58, 42
_NULL, _BOOL, _DOUBLE, _BIG, _BULKERR, _VERB = 95, 35, 44, 40, 33, 61
_MAP, _SET, _PUSH, _ATTR = 37, 126, 62, 124
_WRAP = -1  # internal frame: waiting for the value an attribute map applies to
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT_MAX = 2**31 - 1  # redis-server's bound on a request's argument count
_DOUBLE_RE = re.compile(
    rb"-?(?:inf|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\Z", re.IGNORECASE
)
_PENDING = object()
# What a feed returns (``spans`` below): values; (value, start, end) with stream offsets; the
# same, but a run of two or more commands read by hiredis as one item (values, SpanRun, None).
_VALUES, _SPANS, _LAZY_SPANS = 0, 1, 2
STREAM_MIN = 64 * 1024  # with max_value, strings longer than max(max_value, this) are streamed
# When parse_prefix is tried: once per feed, where the pure loop first reaches a top-level "*"
# (or "$", when neither spans nor inline commands are wanted). A run of commands when the feed
# starts with it (one whole command per read is the common case) or when at least _HIREDIS_MIN
# bytes are left after frames the pure loop read (for fewer it is about as fast); a run of bulk
# replies when at least _HIREDIS_MIN_BULKS bytes are left. feed_command takes reads shorter
# than _HIREDIS_MIN (longer ones are mostly pipelines, for feed_spans).
_HIREDIS_MIN = 256
_HIREDIS_MIN_BULKS = 64
_EMPTY = {_ARRAY: list, _MAP: Map, _SET: Set, _PUSH: Push}
_BYTES_TYPES = frozenset((bytes,))
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


def _truncated(head: bytes, length: int) -> bytes:
    return Truncated(head, length) if length > len(head) else head

def _frame_starts(lens: list, counts: list, base: int) -> list:
    """Stream offsets where each of a run of canonical bulk-string arrays starts, and where the
    last ends; ``lens``: all elements' lengths, ``counts``: elements per frame. C-level maps."""
    cum = list(_accumulate(map(_add, lens, map(len, map(str, lens))), initial=0))
    at = list(map(cum.__getitem__, _accumulate(counts, initial=0)))
    heads = map(_add, map(len, map(str, counts)), map((5).__mul__, counts))
    sizes = map((3).__add__, map(_add, map(_sub, at[1:], at[:-1]), heads))
    return list(_accumulate(sizes, initial=base))


class SpanRun:
    """The stream offsets of a run of commands parsed in one go, worked out when first asked
    (from the values alone: the frames are canonical, see ``parse_prefix``):
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

    Runs of complete arrays of bulk strings (ordinary commands), and of bulk replies, are read
    by hiredis where that is exact (several times faster; see
    :mod:`playground.codec.hiredisprefix` for why it is exact); ``use_hiredis=False`` turns that
    off.

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
        self._use_hiredis = use_hiredis
        self._hiredis = HiredisPrefix()  # parse_prefix, and the hiredis reader it reuses
        self.failed = False
        # the types of the values the last feed gave when known without a look at each (a run
        # of bulk strings hiredis read whole, one line over and over): a frozenset; else None
        self.last_types = None
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

    @property
    def offset(self) -> int:
        """Bytes consumed so far (the stream offset parsing has reached)."""
        return self._abs + len(self._pend)

    def feed(self, data: bytes) -> list:
        return self._feed(data, _VALUES)

    def feed_sized(self, data: bytes) -> list:
        return [(v, end - start) for v, start, end in self._feed(data, _SPANS)]

    def feed_spans(self, data: bytes, lazy: bool = False) -> list:
        """``(value, start, end)``: each frame with its stream offsets (a final
        :class:`ProtocolError` comes as ``(error, offset, offset)``). With ``lazy``, a run of
        two or more commands parsed in one go (by hiredis; each an array of bulk strings) comes
        as one item ``(values, run, None)`` instead: ``run.span(i)`` (a :class:`SpanRun`) gives the offsets
        of ``values[i]`` when needed."""
        return self._feed(data, _LAZY_SPANS if lazy else _SPANS)

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
        then takes it). The frame spans ``offset - len(data)`` to ``offset``. Reads of
        ``_HIREDIS_MIN`` bytes or more are left to ``feed_spans`` (mostly pipelines: a run)."""
        if data[:1] != b"*" or self._stack or self._pend or self._chunks is not None or (
            self.failed or not self._use_hiredis or len(data) >= _HIREDIS_MIN
        ):
            return None
        values, used = self._hiredis.parse_prefix(data, self._longest_whole)
        if used != len(data) or len(values) != 1:
            return None
        self._abs += used
        return values[0]

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

    def _fail(self, out: list, spans: int, message: str, offset: int) -> list:
        self.failed = True
        self.last_types = None
        self._stack = []
        self._pend = bytearray()
        self._chunks = None
        self._tail = b""
        err = ProtocolError(message, offset)
        out.append((err, offset, offset) if spans else err)
        return out

    def _feed(self, data, spans: int) -> list:
        out: list = []
        self.last_types = None
        if self.failed or not data:
            return out
        if not isinstance(data, bytes):
            data = bytes(data)
        try:
            start = 0
            if self._chunks is not None:
                start = self._continue_bulk(data, 0, out, spans)
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
                self._parse(buf, start, out, spans)
        except _Failed as e:
            return self._fail(out, spans, e.message, e.offset)
        except Exception as e:  # a bug must not become a traceback in the caller
            return self._fail(out, spans, "internal parser error: %r" % (e,), self.offset)
        return out

    def _continue_bulk(self, data: bytes, pos: int, out: list, spans: int) -> int:
        """Feed a string being read from ``data[pos:]``; the position after it, or -1 (all of
        ``data`` taken)."""
        if self._bkind == _SIMPLE or self._bkind == _ERROR:
            return self._continue_line(data, pos, out, spans)
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
        return self._complete(value, pos, out, spans)

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

    def _continue_line(self, data: bytes, pos: int, out: list, spans: int) -> int:
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
        return self._complete(value, nl + 1, out, spans)

    def _take_line(self, data: bytes, start: int, end: int) -> None:
        """Count ``data[start:end]`` into the streamed line, keeping what the view needs."""
        self._blen += end - start
        keep = self._keep_left
        if keep and end > start:
            k = min(keep, end - start)
            self._chunks.append(data[start : start + k])
            self._keep_left = keep - k

    def _complete(self, value, pos: int, out: list, spans: int) -> int:
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
        out.append((value, self._fstart, self._abs) if spans else value)
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

    def _parse(self, buf: bytes, pos: int, out: list, spans: int) -> None:
        """Parse ``buf[pos:]`` into ``out``: the pure loop, except that where it first reaches
        the start of a run hiredis may read, ``parse_prefix`` is tried (once per feed)."""
        if self._use_hiredis:
            t = buf[pos]
            if not pos and not self._stack and (
                    t == _ARRAY or (t == _BULK and not spans and not self.inline)):
                # the common feed (a pipelined batch) starts where a run may: straight to it
                pos = self._parse_run(buf, 0, out, spans)
                if pos == len(buf):
                    if t == _BULK:  # a run of bulk strings, all of the feed
                        self.last_types = _BYTES_TYPES
                    return
            else:
                pos = self._parse_pure(buf, pos, out, spans, True)
                if pos < 0:
                    return
                pos += self._parse_run(buf, pos, out, spans)
        self._parse_pure(buf, pos, out, spans, False)

    def _parse_run(self, buf: bytes, pos: int, out: list, spans: int) -> int:
        """The frames at ``buf[pos:]`` (top level: a ``*``, or a ``$`` when neither spans nor
        inline commands are wanted) that ``parse_prefix`` takes, into ``out``: the bytes taken
        (0: none, the pure loop reads them)."""
        left = len(buf) - pos
        if buf[pos] == _ARRAY:
            if left < _HIREDIS_MIN and pos:
                return 0
        elif left < _HIREDIS_MIN_BULKS:
            return 0
        values, used = self._hiredis.parse_prefix(buf[pos:] if pos else buf, self._longest_whole)
        if not used:
            return 0
        start = self._abs
        if not spans:
            out.extend(values)
        elif len(values) == 1:
            out.append((values[0], start, start + used))
        elif spans == _LAZY_SPANS:
            out.append((values, SpanRun(values, start), None))
        else:
            starts = SpanRun(values, start).starts()
            out.extend(zip(values, starts, starts[1:], strict=False))
        self._abs = start + used
        return used

    def _parse_pure(self, buf: bytes, pos: int, out: list, spans: int, handoff: bool) -> int:
        """The pure parser: parse ``buf[pos:]`` into ``out``, keeping what is unfinished for
        the next feed; -1 then. With ``handoff``, stop where a top-level frame starts that
        ``_parse_run`` may take: its position (the parser's state is that of a frame boundary
        there)."""
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
        bulk_runs = handoff and not spans and not inline
        try_run = True
        while pos < n:
            t = buf[pos]
            if not stack:
                fstart = base + pos
                if handoff and (t == _ARRAY or (t == _BULK and bulk_runs)):
                    self._abs = base + pos
                    return pos
                if t == _ARRAY:
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
                            append((items, base + pos, base + p) if spans else items)
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
                    line = buf[pos:end]
                    args = split_inline(line)
                    if args is None:
                        raise _Failed("unbalanced quotes in inline command", fstart)
                    pos = nl + 1
                    if args:
                        value = Inline(args, line)
                        append((value, fstart, base + pos) if spans else value)
                    continue
                elif t == _SIMPLE or t == _BULK or t == _INT:
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
                            if try_run and end < n and t != _BULK and not spans:
                                # Once per feed: is the rest this same line over and over (a
                                # pipeline of +OK or :1 replies)? One count() instead of a
                                # loop turn per reply.
                                try_run = False
                                size = end - pos
                                k, rest = divmod(n - pos, size)
                                if not rest and buf.count(buf[pos:end], pos) == k:
                                    if not out:  # the feed is this line over and over
                                        self.last_types = frozenset((type(value),))
                                    out.extend([value] * k)
                                    pos = n
                                    break
                            pos = end
                            append((value, fstart, base + pos) if spans else value)
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
                pos = self._continue_line(buf, pos + 1, out, spans)
                if pos < 0:
                    return -1
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
                        pos = self._continue_bulk(buf, body, out, spans)
                        if pos < 0:
                            return -1
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
                        return -1
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
            append((value, fstart, base + pos) if spans else value)
        self._fstart = fstart
        self._abs = base + pos
        if pos < n:
            self._pend = bytearray(memoryview(buf)[pos:])
            self._scan = n - pos
        return -1

