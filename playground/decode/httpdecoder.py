"""A passive HTTP/1.x decoder: pairs requests with responses on a proxied connection (pure).

``HttpConversation.feed(direction, data, now) -> events`` takes both directions of one TCP
connection as the proxy saw them and produces an :class:`HttpExchange` per answered request (with
keep-alive and pipelining), :class:`HttpUnanswered` for requests left without an answer at close,
:class:`HttpUndecodable` when a direction stops being HTTP (that direction's further bytes come
out as :class:`HttpRaw`), :class:`HttpSwitched` after ``101 Switching Protocols`` or a 2xx answer
to ``CONNECT`` (the rest of both directions comes out as :class:`HttpRaw`), and
:class:`HttpSecret` stream ranges of credential header values and of the values of credential
parameters (a query's or a fragment's) in a request target or in a URL header's value
(``redaction.query_secrets``, ``redaction.URL_HEADERS``: ``Referer``, ``Location``...; looked
for only in a target or value with a ``?`` or a ``#``), for pcap masking.

Framing handled: ``Content-Length``, ``Transfer-Encoding: chunked`` (extensions, trailers),
close-delimited response bodies (complete at the server's FIN, ``eof``; cut when the connection
goes otherwise: a reset, an abort), no body for ``HEAD``, 1xx, 204 and 304; interim ``100 Continue``
answers to ``Expect: 100-continue`` are noted and skipped; a request with ``Upgrade`` (or a
``CONNECT``) holds the client's following bytes until the answer says whether the stream
switched. Latency is the request's last byte to the response's last byte. A request line's
words are separated by spaces (RFC 9112 3; a run of them as one, as nginx reads them), not by a
tab, a VT or an FF, which servers take for no separator: such a line is shown as the bytes the
server saw (undecodable), its credentials hidden there as a lenient reading would find them.

Why our own state machine rather than h11: h11 is written for one endpoint of a connection, not
an observer of both. Its client role refuses to pipeline, it is strict where real peers are
sloppy (bare ``\\n`` line ends, header lines without a colon, odd reason phrases, obsolete line
folding, bytes > 0x7f in targets) and raises on them, and it buffers bodies it is handed. This
decoder is lenient in what it accepts, never raises (a malformed message is an event), never
rescans (the head search remembers where it stopped), and counts bodies without buffering them:
only a bounded preview (``preview`` bytes) is kept. Heads are bounded by ``max_head``, pipelined
requests by ``max_pipeline``. h11 serves as the oracle in the tests.

:class:`HttpStream` is the conversation as the decoder chain (``playground.decode.chain``) uses
it: events in, records (``playground.decode.records``) out to the chain's sinks.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs

from playground.codec.parser import STREAM_MIN
from playground.common.digits import decimal, hexadecimal
from playground.decode import records as R
from playground.decode.detect import HTTP
from playground.decode.redaction import (
    HEADER_SECRETS,
    REDACTED,
    SECRET_COMMANDS,
    SECRET_HEADERS,
    URL_HEADERS,
    has_params,
    mask_preview,
    query_secrets,
    redact_message,
    redact_target,
)
from playground.proxy.observer import CLIENT_TO_SERVER, SERVER_TO_CLIENT

C2S, S2C = CLIENT_TO_SERVER, SERVER_TO_CLIENT  # the directions, as the proxy names them

_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@attrs.frozen
class HttpRequest:
    """A request head as parsed; ``offset`` is the stream offset of its first byte."""

    method: bytes
    target: bytes
    version: bytes
    headers: tuple  # ((name, value), ...) as sent; names keep their case
    started: float
    offset: int = 0
    # where the credential parameter values are in ``target`` (``redaction.query_secrets``),
    # found once, for the pcap's ranges and the records' ``redaction.redact_message``
    target_secrets: tuple = ()


@attrs.frozen
class HttpExchange:
    """A request and its response. ``latency`` is set once, when the response completes: from
    the request's last byte (its head's arrival while its body is incomplete) to the response's
    last byte, 0.0 for a response nobody asked for."""

    request: HttpRequest | None  # None: a response nobody asked for
    status: int
    reason: bytes
    response_version: bytes
    response_headers: tuple
    request_body_size: int
    response_body_size: int
    request_preview: bytes
    response_preview: bytes
    request_done: float | None  # the request's last byte (None: still incomplete)
    response_done: float
    latency: float
    interim: tuple = ()  # 1xx statuses seen before the final answer
    complete: bool = True  # False: the response body was cut by the end of the stream

    @property
    def content_type(self) -> bytes | None:
        return header(self.response_headers, b"content-type")


@attrs.frozen
class HttpUnanswered:
    request: HttpRequest
    body_size: int
    preview: bytes
    request_done: float | None


@attrs.frozen
class HttpUndecodable:
    direction: str
    reason: str
    offset: int


@attrs.frozen
class HttpSwitched:
    how: str  # "upgrade" or "connect"
    status: int
    protocol: bytes  # the Upgrade header of the answer (b"" for CONNECT)


@attrs.frozen
class HttpRaw:
    """Bytes of a direction no longer decoded as HTTP (after a switch or a decoding failure)."""

    direction: str
    data: bytes
    offset: int


@attrs.frozen
class HttpMark:
    """Where a message's parts end (only with ``marks=True``, for framing without decoding):
    ``kind`` ``"head"`` (a request head, or a final response head, ends at stream ``offset``;
    ``request`` is the request's) or ``"end"`` (the message, body included, ends there)."""

    direction: str
    kind: str
    offset: int
    request: HttpRequest | None = None


@attrs.frozen
class HttpSecret:
    direction: str
    start: int
    end: int


def secret_value(line: bytes) -> tuple[int, int] | None:
    """Where the value of a credential header line (``SECRET_HEADERS``; ``line`` without its line
    end) is, ``(start, end)`` in ``line`` (empty when it has none); None for any other line."""
    return _header_value(line, SECRET_HEADERS)


def url_value(line: bytes) -> tuple[int, int] | None:
    """Where the value of a URL header line (``URL_HEADERS``: ``Referer``, ``Location``...) is,
    as ``secret_value`` says it for a credential header's."""
    return _header_value(line, URL_HEADERS)


def _header_value(line: bytes, names) -> tuple[int, int] | None:
    colon = line.find(b":")
    if colon <= 0 or line[:colon].strip().lower() not in names:
        return None
    value = line[colon + 1:]
    start = colon + 1 + len(value) - len(value.lstrip(b" \t"))
    return start, max(start, colon + 1 + len(value.rstrip(b" \t")))


class RequestLine(NamedTuple):
    """A request line (``METHOD target HTTP/x``) split into its ``words`` (fewer or more when
    it is none, or is cut), where its target (the second word) starts in the line (-1 with
    fewer than two words), and whether its third word is a version (``versioned``; the decoder
    takes a line of three words only)."""

    words: list
    target_at: int
    versioned: bool


def is_token(word: bytes) -> bool:
    """Whether ``word`` is an HTTP token (RFC 9110's ``tchar``s), as a method must be."""
    return all(c in _TOKEN for c in word)


def request_line(line: bytes, spaces_only: bool = False) -> RequestLine:
    """``line`` (without its line end) split as a request line (see ``RequestLine``): at
    spaces (``spaces_only``: RFC 9112 3's SP, a run of them taken as one, as nginx does; how
    the decoder reads a request, as servers do: a tab, a VT or an FF is no separator to them,
    and a line split there is no request line), or at any ASCII white space (where secrets are
    looked for: a lenient server may split there, RFC 9112 3 lets it)."""
    words = [w for w in line.split(b" ") if w] if spaces_only else line.split()
    if len(words) < 2:
        return RequestLine(words, -1, False)
    method = words[0]
    at = line.find(words[1], line.find(method) + len(method))
    return RequestLine(words, at, len(words) > 2 and words[2].startswith(b"HTTP/"))


def folded_value(line: bytes) -> tuple[int, int]:
    """Where the text of an obsolete folded continuation line (it starts with a space or a tab)
    is: ``(start, end)`` in ``line``, empty when it is blank."""
    start = len(line) - len(line.lstrip(b" \t"))
    return start, max(start, len(line.rstrip(b" \t")))


def _url_secrets(value: bytes, line: bytes, line_at: int, folds: list | None, offset: int,
                 direction: str, out: list) -> None:
    """Append the stream ranges of the credential parameter values in a URL header's ``value``
    (``redaction.URL_HEADERS``) as the head gave it: its own ``line`` (``name: value``) at
    ``line_at`` in the head, and its obsolete ``folds`` (``[(line, at), ...]`` or None), each
    joined to the value with one space as the decoder's headers have it. A value folded inside
    its query has its secret's bytes on each line it spans. Asked only with a ``?`` or a ``#``
    in it (``has_params``)."""
    spans = query_secrets(value)
    if not spans:
        return
    first, last = url_value(line)
    # (where in value, stream offset, length) of each line's text
    parts = [(0, offset + line_at + first, last - first)]
    joined = last - first
    for line, line_at in folds or ():
        text = line.strip(b" \t")  # as the decoder's headers have it
        joined += 1  # the space the fold became
        parts.append((joined, offset + line_at + (line.find(text) if text else 0), len(text)))
        joined += len(text)
    i = 0  # spans and parts are both in order: one sweep over them
    for start, end in spans:
        while parts[i][0] + parts[i][2] <= start and i + 1 < len(parts):
            i += 1
        for j in range(i, len(parts)):
            at, stream, size = parts[j]
            if at >= end:
                break
            lo, hi = max(start, at), min(end, at + size)
            if hi > lo:
                out.append(HttpSecret(direction, stream + lo - at, stream + hi - at))


_BLANKS = b" \t\r\x0b\x0c"  # what Redis skips before an inline command's first word


def _shown(line: bytes) -> bytes:
    """The start of a line quoted in a failure reason (a credential header's value, or a
    credential URL parameter's in what may be a request line, hidden; and all but the first
    word of a Redis command that takes a password, or of an error, which may echo one: Redis
    spoken where HTTP was expected)."""
    span = secret_value(line)
    if span is not None:
        return (line[:span[0]] + REDACTED)[:60]
    head = line.lstrip(_BLANKS)
    word = head.split(None, 1)[0] if head.strip() else b""
    if word[:1] == b"-" or word.strip(b"\"'").upper() in SECRET_COMMANDS:
        return line[:len(line) - len(head) + len(word)][:40] + b" " + REDACTED
    if has_params(line):
        line = redact_target(line)
    return line[:60]


def header(headers, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case), or None."""
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _header_all(headers, name: bytes) -> list[bytes]:
    return [v for k, v in headers if k.lower() == name]


class _Failed(Exception):
    pass


# parser states
_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE = range(7)
_FRAMED_BODY = (_BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER)  # a close here cuts it
_PAUSED, _RAW, _FAILED = 7, 8, 9


class _Side:
    """One direction's framing state."""

    def __init__(self, direction: str):
        self.direction = direction
        self.state = _HEAD
        self.offset = 0  # stream offset of the next byte to consume
        self.head = bytearray()
        self.head_offset = 0  # stream offset of head[0]
        self.scan = 0  # where the blank-line search resumes in head
        self.line_start = 0  # start of the current (incomplete) line in head
        self.remaining = 0  # body or chunk bytes left
        self.body_size = 0
        self.preview = bytearray()
        self.chunk_line = bytearray()
        self.held = bytearray()  # paused client bytes (after an Upgrade/CONNECT request)
        self.held_offset = 0
        self.ended = False  # the sender's side ended: an unfinished head's secrets given
        self.trailer_secret = False  # the last trailer line was a credential's (folds go on it)

    def reset_head(self):
        self.head = bytearray()
        self.scan = 0
        self.line_start = 0
        self.head_offset = self.offset


class _Pending:
    """A request waiting for (or receiving) its answer."""

    __slots__ = ("request", "body_size", "preview", "done", "upgrade", "connect", "head")

    def __init__(self, request: HttpRequest, upgrade: bool, connect: bool):
        self.request = request
        self.body_size = 0
        self.preview = b""
        self.done: float | None = None
        self.upgrade = upgrade
        self.connect = connect
        self.head = request.method == b"HEAD"


class HttpConversation:
    """Both directions of one HTTP/1.x connection; see the module docstring."""

    def __init__(self, max_head: int = 64 * 1024, preview: int = 200, max_pipeline: int = 1000,
                 max_chunk_line: int = 4096, marks: bool = False):
        self.max_head = max_head
        self.marks = marks  # also say where heads and messages end (HttpMark)
        self.preview_size = preview
        self.max_pipeline = max_pipeline
        self.max_chunk_line = max_chunk_line
        self.req = _Side(C2S)
        self.resp = _Side(S2C)
        self.pending: list[_Pending] = []  # oldest first
        self.switched = False
        # the response being received
        self._status = 0
        self._reason = b""
        self._version = b""
        self._headers: tuple = ()
        self._interim: list[int] = []
        self._now = 0.0

    # -- public ---------------------------------------------------------------------------
    def feed(self, direction: str, data: bytes, now: float) -> list:
        out: list = []
        self._now = now
        side = self.req if direction == C2S else self.resp
        self._consume(side, data, out)
        return out

    def settled(self, direction: str) -> int:
        """Bytes before this stream offset will not be found to hold a secret any more."""
        side = self.req if direction == C2S else self.resp
        if side.state == _HEAD:
            return side.head_offset
        if side.state == _PAUSED:
            return side.held_offset
        if side.state == _TRAILER:
            return side.offset - len(side.chunk_line)  # a trailer line may be a credential's
        return side.offset

    def eof(self, direction: str, now: float) -> list:
        """The sender of ``direction`` finished (FIN): a close-delimited response completes;
        an unfinished head gives its query secrets (``_unfinished_head``)."""
        out: list = []
        self._now = now
        side = self.req if direction == C2S else self.resp
        if side is self.resp and side.state == _UNTIL_CLOSE:
            self._response_done(out, complete=True)
            side.state = _HEAD
            side.reset_head()
        else:
            self._unfinished_head(side, out)
        return out

    def close(self, now: float) -> list:
        """The connection is gone: finish what can be finished, report what was left. A
        response body still being read is cut (``complete=False``), a close-delimited one too:
        only the server's FIN (``eof``, before this) ends that one, not a reset, an abort or
        the proxy's force-close."""
        out: list = []
        self._now = now
        self._unfinished_head(self.req, out)
        self._unfinished_head(self.resp, out)
        if self.resp.state in _FRAMED_BODY or self.resp.state == _UNTIL_CLOSE:
            if self.pending or self._status:
                self._response_done(out, complete=False)
        req = self.req
        if self.pending and req.state in _FRAMED_BODY:
            last = self.pending[-1]  # its body was cut short
            last.body_size = req.body_size
            last.preview = bytes(req.preview)
        for p in self.pending:
            out.append(HttpUnanswered(p.request, p.body_size, p.preview, p.done))
        self.pending = []
        return out

    def _unfinished_head(self, side: _Side, out: list) -> None:
        """A side ends (once) inside a head: the credential query values of a request line
        (whole, or cut in its target) and of its URL headers' lines (``URL_HEADERS``; whole,
        or cut in the value) are secret ranges, so the pcap masks them as the line scanner
        masks a credential header there (``chain._unsettled_end``). Before the end they are
        not: the head may still fail, and then the hex view has it."""
        if side.ended or side.state != _HEAD or not side.head:
            return
        side.ended = True
        head = bytes(side.head)
        if not has_params(head):
            return
        lines = head.split(b"\n")
        at = side.head_offset
        if side is self.req:
            words, target_at, _ = request_line(lines[0].rstrip(b"\r"))
            if target_at >= 0 and has_params(words[1]):
                base = at + target_at
                out += [HttpSecret(C2S, base + start, base + end)
                        for start, end in query_secrets(words[1])]
        at += len(lines[0]) + 1
        for raw in lines[1:]:
            base = at
            at += len(raw) + 1
            if not has_params(raw):
                continue
            span = url_value(raw[:-1] if raw.endswith(b"\r") else raw)
            if span is not None:
                base += span[0]
                out += [HttpSecret(side.direction, base + start, base + end)
                        for start, end in query_secrets(raw[span[0]:span[1]])]

    # -- the framing loop -------------------------------------------------------------------
    def _consume(self, side: _Side, data: bytes, out: list) -> None:
        pos = 0
        n = len(data)
        while pos < n:
            state = side.state
            if state == _RAW or state == _FAILED:
                out.append(HttpRaw(side.direction, data[pos:], side.offset))
                side.offset += n - pos
                return
            if state == _PAUSED:
                if len(side.held) + n - pos > self.max_head:
                    # No answer yet and the client keeps talking: not HTTP any more.
                    self._fail(side, "client data after an Upgrade/CONNECT request "
                               "exceeds the bound before the answer", out, side.held_offset)
                    held = bytes(side.held)
                    side.held = bytearray()
                    out.append(HttpRaw(side.direction, held + data[pos:], side.held_offset))
                    side.offset += n - pos
                    return
                side.held += data[pos:]
                side.offset += n - pos
                return
            try:
                if state == _HEAD:
                    pos = self._head(side, data, pos, out)
                elif state == _BODY or state == _CHUNK_DATA:
                    take = min(side.remaining, n - pos)
                    self._body_bytes(side, data, pos, take)
                    pos += take
                    side.remaining -= take
                    if side.remaining == 0:
                        if state == _BODY:
                            self._message_done(side, out)
                        else:
                            side.state = _CHUNK_END
                elif state == _UNTIL_CLOSE:
                    self._body_bytes(side, data, pos, n - pos)
                    pos = n
                else:  # chunk size line, chunk end, trailer lines
                    pos = self._chunk_lines(side, data, pos, out)
            except _Failed as e:
                if state == _HEAD:
                    # The failed head (and anything after it) comes out raw from its start.
                    raw, at = bytes(side.head), side.head_offset
                else:
                    raw, at = data[pos:], side.offset
                self._fail(side, str(e), out, at)
                if raw:
                    out.append(HttpRaw(side.direction, raw, at))
                side.offset = at + len(raw)
                return

    def _body_bytes(self, side: _Side, data: bytes, pos: int, count: int) -> None:
        side.body_size += count
        side.offset += count
        room = self.preview_size - len(side.preview)
        if room > 0:
            side.preview += data[pos:pos + min(room, count)]

    def _fail(self, side: _Side, reason: str, out: list, offset: int | None = None) -> None:
        at = side.offset if offset is None else offset
        out.append(HttpUndecodable(side.direction, reason, at))
        side.state = _FAILED
        side.head = bytearray()

    # -- heads --------------------------------------------------------------------------------
    def _head(self, side: _Side, data: bytes, pos: int, out: list) -> int:
        head = side.head
        base = len(head)
        head += data[pos:]
        end = -1
        scan = side.scan
        line_start = side.line_start
        while True:
            nl = head.find(b"\n", scan)
            if nl < 0:
                break
            line_end = nl - 1 if nl > line_start and head[nl - 1] == 13 else nl
            if line_end == line_start:
                if line_start == 0:
                    # A blank line before a message (allowed between requests): drop it.
                    del head[: nl + 1]
                    side.head_offset += nl + 1
                    base -= nl + 1
                    scan = line_start = 0
                    continue
                end = nl + 1
                break
            scan = line_start = nl + 1
        if end < 0:
            side.scan = len(head)
            side.line_start = line_start
            if len(head) > self.max_head:
                raise _Failed(f"message head larger than {self.max_head} bytes")
            side.offset = side.head_offset + len(head)
            return len(data)
        used = end - base  # bytes of this chunk that belong to the head
        block = bytes(head[:end])
        start_offset = side.head_offset
        if len(block) > self.max_head:
            raise _Failed(f"message head larger than {self.max_head} bytes")
        head_end = start_offset + end
        side.offset = head_end
        if side is self.req:
            self._request_head(block, start_offset, out)
        else:
            self._response_head(block, start_offset, out)
        side.head = bytearray()
        side.scan = side.line_start = 0
        if side.state == _HEAD:
            side.head_offset = side.offset
        return pos + used

    def _split_head(self, block: bytes, offset: int, direction: str, out: list):
        """First line, headers ((name, value), ...); appends secrets found."""
        lines = block.split(b"\n")
        first = lines[0].rstrip(b"\r")
        headers: list[list] = []
        at = len(lines[0]) + 1
        secret = False  # the last header is a credential: its folded lines are too
        # the last header is a URL header's: its line and where, looked at when it ends (with
        # its folded lines, when it has some: [(line, at), ...])
        url = url_at = folds = None
        for raw in lines[1:]:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            line_at = at
            at += len(raw) + 1
            if not line:
                continue
            if line[:1] in (b" ", b"\t") and headers:  # obsolete line folding
                headers[-1][1] += b" " + line.strip(b" \t")  # as folded_value: a VT stays
                if secret:
                    start, end = folded_value(line)
                    if end > start:
                        out.append(HttpSecret(direction, offset + line_at + start,
                                              offset + line_at + end))
                elif url is not None:
                    if folds is None:
                        folds = []
                    folds.append((line, line_at))
                continue
            colon = line.find(b":")
            if colon <= 0:
                continue  # lenient: a line that is no header is ignored (a fold goes on)
            if url is not None:
                if has_params(headers[-1][1]):
                    _url_secrets(headers[-1][1], url, url_at, folds, offset, direction, out)
                url = folds = None
            name = line[:colon].strip()
            value = line[colon + 1:].strip(b" \t")
            kind = HEADER_SECRETS.get(name.lower())
            secret = kind is True
            if secret and value:
                start, end = secret_value(line)
                out.append(HttpSecret(direction, offset + line_at + start,
                                      offset + line_at + end))
            elif kind is False:  # a URL header's: its value may go on in folded lines
                url, url_at = line, line_at
            headers.append([name, value])
        if url is not None and has_params(headers[-1][1]):
            _url_secrets(headers[-1][1], url, url_at, folds, offset, direction, out)
        return first, tuple((k, v) for k, v in headers)

    def _framing(self, headers) -> int | None:
        """-1: chunked, N: content length, None: not stated. Raises on nonsense."""
        te = _header_all(headers, b"transfer-encoding")
        if te:
            codings = [c.strip().lower() for v in te for c in v.split(b",") if c.strip()]
            if codings and codings[-1] == b"chunked":
                return -1
            return -2  # some other coding last: the body runs to the close
        cls = _header_all(headers, b"content-length")
        if cls:
            values = {c.strip() for v in cls for c in v.split(b",")}
            if len(values) != 1:
                raise _Failed("conflicting Content-Length values")
            value = values.pop()
            length = decimal(value, 18)
            if length is None:
                raise _Failed(f"bad Content-Length {value[:40]!r}")
            return length
        return None

    def _request_head(self, block: bytes, offset: int, out: list) -> None:
        mark = len(out)
        first, headers = self._split_head(block, offset, C2S, out)
        words, target_at, versioned = request_line(first, spaces_only=True)
        if len(words) != 3 or not versioned:
            raise _Failed(f"not an HTTP request line: {_shown(first)!r}")
        method, target, version = words
        spans = ()
        if has_params(target):  # the query's secrets, before the headers' (in stream order)
            spans = tuple(query_secrets(target))
            at = offset + target_at
            out[mark:mark] = [HttpSecret(C2S, at + start, at + end) for start, end in spans]
        if not is_token(method):
            raise _Failed(f"bad method {method[:30]!r}")
        framing = self._framing(headers)
        if framing == -2:
            raise _Failed("request with a transfer coding other than chunked")
        if len(self.pending) >= self.max_pipeline:
            raise _Failed(f"more than {self.max_pipeline} requests without an answer")
        connect = method == b"CONNECT"
        upgrade = header(headers, b"upgrade") is not None
        req = HttpRequest(method, target, version, headers, self._now, offset, spans)
        self.pending.append(_Pending(req, upgrade, connect))
        side = self.req
        if self.marks:
            out.append(HttpMark(C2S, "head", side.offset, req))
        side.body_size = 0
        side.preview = bytearray()
        if framing == -1:
            side.state = _CHUNK_SIZE
            side.chunk_line = bytearray()
        elif framing:
            side.state = _BODY
            side.remaining = framing
        else:
            self._message_done(side, out)

    def _response_head(self, block: bytes, offset: int, out: list) -> None:
        first, headers = self._split_head(block, offset, S2C, out)
        parts = first.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not (
            len(parts[1]) == 3 and parts[1].isdigit()
        ):
            raise _Failed(f"not an HTTP status line: {_shown(first)!r}")
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else b""
        side = self.resp
        p = self.pending[0] if self.pending else None
        if status == 101 or (p is not None and p.connect and 200 <= status < 300):
            self._status, self._reason, self._version, self._headers = (
                status, reason, parts[0], headers)
            side.body_size = 0
            side.preview = bytearray()
            self._response_done(out, complete=True)
            how = "connect" if status != 101 else "upgrade"
            out.append(HttpSwitched(how, status, header(headers, b"upgrade") or b""))
            self._switch(out)
            return
        if 100 <= status < 200:
            self._interim.append(status)
            return
        if self.marks:
            out.append(HttpMark(S2C, "head", side.offset))
        self._status, self._reason, self._version, self._headers = (
            status, reason, parts[0], headers)
        side.body_size = 0
        side.preview = bytearray()
        if p is not None and (p.upgrade or p.connect):
            self._resume_requests(out)
        framing = self._framing(headers)
        if (p is not None and p.head) or status in (204, 304) or (
            p is not None and p.connect and 200 <= status < 300
        ):
            self._message_done(side, out)
        elif framing == -1:
            side.state = _CHUNK_SIZE
            side.chunk_line = bytearray()
        elif framing is None or framing == -2:
            side.state = _UNTIL_CLOSE
        elif framing:
            side.state = _BODY
            side.remaining = framing
        else:
            self._message_done(side, out)

    def _switch(self, out: list) -> None:
        self.switched = True
        req = self.req
        held = bytes(req.held)
        req.held = bytearray()
        if req.state == _PAUSED and held:
            out.append(HttpRaw(C2S, held, req.held_offset))
        elif req.state == _HEAD and req.head:
            out.append(HttpRaw(C2S, bytes(req.head), req.head_offset))
            req.offset = req.head_offset + len(req.head)
            req.head = bytearray()
        if req.state not in (_FAILED,):
            req.state = _RAW
        self.resp.state = _RAW

    def _resume_requests(self, out: list) -> None:
        """The answer to an Upgrade/CONNECT request did not switch: parse what the client held."""
        req = self.req
        if req.state != _PAUSED:
            return
        held = bytes(req.held)
        req.held = bytearray()
        req.state = _HEAD
        req.offset = req.held_offset
        req.reset_head()
        if held:
            self._consume(req, held, out)

    # -- chunked ------------------------------------------------------------------------------
    def _chunk_lines(self, side: _Side, data: bytes, pos: int, out: list) -> int:
        nl = data.find(b"\n", pos)
        if nl < 0:
            if len(side.chunk_line) + len(data) - pos > self.max_chunk_line:
                raise _Failed("chunk size or trailer line too long")
            side.chunk_line += data[pos:]
            side.offset += len(data) - pos
            return len(data)
        line = (bytes(side.chunk_line) + data[pos:nl]).rstrip(b"\r")
        state = side.state
        if state == _CHUNK_END:
            if line:
                raise _Failed("chunk data longer than its size")
            side.state = _CHUNK_SIZE
        elif state == _CHUNK_SIZE:
            size_text = line.split(b";", 1)[0].strip()
            size = hexadecimal(size_text, 16)
            if size is None:
                raise _Failed(f"bad chunk size {size_text[:20]!r}")
            side.state = _CHUNK_DATA if size else _TRAILER
            side.remaining = size
            side.trailer_secret = False
        if state == _TRAILER and line:
            if line[:1] in (b" ", b"\t"):  # an obsolete fold: goes on the line before
                span = folded_value(line) if side.trailer_secret else None
            else:
                span = secret_value(line)  # a trailer line is a header line
                side.trailer_secret = span is not None
            if span is not None and span[1] > span[0]:
                at = side.offset - len(side.chunk_line)
                out.append(HttpSecret(side.direction, at + span[0], at + span[1]))
        side.chunk_line = bytearray()
        side.offset += nl + 1 - pos
        if state == _TRAILER and not line:
            self._message_done(side, out)
        return nl + 1

    # -- completion ---------------------------------------------------------------------------
    def _message_done(self, side: _Side, out: list) -> None:
        if self.marks:
            out.append(HttpMark(side.direction, "end", side.offset))
        side.state = _HEAD
        side.head_offset = side.offset
        if side is self.req:
            # Find the request this body belonged to: the newest one (requests finish in order).
            p = self.pending[-1] if self.pending else None
            if p is not None:
                p.body_size = side.body_size
                p.preview = bytes(side.preview)
                p.done = self._now
                if p.upgrade or p.connect:
                    side.state = _PAUSED
                    side.held_offset = side.offset
            side.body_size = 0
            side.preview = bytearray()
        else:
            self._response_done(out, complete=True)

    def _response_done(self, out: list, complete: bool) -> None:
        p = self.pending.pop(0) if self.pending else None
        now = self._now
        side = self.resp
        if p is not None:
            start = p.done if p.done is not None else p.request.started
            latency = max(0.0, now - start)
        else:
            latency = 0.0
        out.append(HttpExchange(
            request=p.request if p else None,
            status=self._status,
            reason=self._reason,
            response_version=self._version,
            response_headers=self._headers,
            request_body_size=p.body_size if p else 0,
            response_body_size=side.body_size,
            request_preview=p.preview if p else b"",
            response_preview=bytes(side.preview),
            request_done=p.done if p else None,
            response_done=now,
            latency=latency,
            interim=tuple(self._interim),
            complete=complete,
        ))
        self._interim = []
        self._status = 0
        side.body_size = 0
        side.preview = bytearray()
        if side.state != _RAW:
            side.state = _HEAD
            side.head_offset = side.offset


# -- the chain's HTTP decoder ------------------------------------------------------------------


class HttpStream:
    """The decoder chain's HTTP decoder for one pair: an ``HttpConversation`` whose events become
    records (``--http-filter`` applied, credentials redacted), raw bytes go to the pair's hex
    view and secrets' stream ranges to the pcap. ``st`` is the chain's per-pair state
    (``playground.decode.chain.PairState``)."""

    protocol = HTTP

    def __init__(self, st):
        self.st = st
        chain = st.chain
        # heads bounded by --max-frame, 1 MiB at most; --max-value 0: bodies shown up to
        # 64 KiB, as the sinks show values
        self.conv = HttpConversation(max_head=min(chain.max_frame, 1024 * 1024),
                                     preview=max(chain.max_value or STREAM_MIN, 64))

    def feed(self, direction, data, now, offset):
        self._events(self.conv.feed(direction, data, now), now)

    def eof(self, direction, now):
        self._events(self.conv.eof(direction, now), now)

    def close(self, now):
        self._events(self.conv.close(now), now)

    def settled(self, direction):
        settled = self.conv.settled(direction)
        held = self.st.hexview.settled(direction) if self.st.hexview is not None else None
        return settled if held is None else min(settled, held)

    def _events(self, events, now):
        st = self.st
        chain = st.chain
        for e in events:
            kind = type(e)
            if kind is HttpExchange:
                req = e.request
                if req is not None:
                    method, target, version, headers = (req.method, req.target, req.version,
                                                        req.headers)
                else:
                    method = target = version = None
                    headers = ()
                if chain.http_filter is not None and not chain.http_filter(method, target):
                    continue
                resp_headers = e.response_headers
                request_preview, response_preview = e.request_preview, e.response_preview
                if chain.redact:
                    target, (headers, resp_headers), secrets = redact_message(
                        target, req.target_secrets if req is not None else (), headers,
                        resp_headers)
                    if secrets:
                        request_preview = mask_preview(request_preview, secrets,
                                                       e.request_body_size)
                        response_preview = mask_preview(response_preview, secrets,
                                                        e.response_body_size)
                chain.emit(R.HttpExchange(
                    pair=st.id, ts=now, client=st.client, method=method, target=target,
                    version=version, status=e.status, reason=e.reason, latency=e.latency,
                    request_headers=headers, response_headers=resp_headers,
                    request_body_size=e.request_body_size,
                    response_body_size=e.response_body_size, content_type=e.content_type,
                    request_preview=request_preview, response_preview=response_preview,
                    interim=e.interim, complete=e.complete))
            elif kind is HttpRaw:
                st.hex_view().feed(e.direction, e.data, now, e.offset)
            elif kind is HttpSecret:
                st.secret(e.direction, e.start, e.end)
            elif kind is HttpUnanswered:
                req = e.request
                if chain.http_filter is not None and not chain.http_filter(req.method,
                                                                           req.target):
                    continue
                headers, preview, target = req.headers, e.preview, req.target
                if chain.redact:
                    target, (headers,), secrets = redact_message(target, req.target_secrets,
                                                                 headers)
                    if secrets:
                        preview = mask_preview(preview, secrets, e.body_size)
                chain.emit(R.HttpExchange(
                    pair=st.id, ts=now, client=st.client, method=req.method, target=target,
                    version=req.version, status=None, reason=b"", latency=None,
                    request_headers=headers, response_headers=(), request_body_size=e.body_size,
                    response_body_size=0, content_type=None, request_preview=preview,
                    response_preview=b"", interim=(), complete=False))
            elif kind is HttpUndecodable:
                chain.emit(R.Undecodable(st.id, now, e.direction, HTTP, e.reason, e.offset))
            elif kind is HttpSwitched:
                what = e.protocol.decode("latin-1") or e.how
                chain.emit(R.Notice(st.id, now, f"switched to {what} ({e.status}): "
                                                "the rest is shown raw"))
