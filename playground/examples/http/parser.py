"""HTTP/1.1 request parsing and response framing, pure: bytes in, events out; no I/O, no clock.

``HttpRequestParser(...).feed(data, now)`` returns a list of events for everything complete in the
bytes seen so far: ``RequestHead``, ``BodyChunk`` (decoded body bytes, possibly split anywhere),
``RequestEnd``, or one final ``ParseError(status, reason)`` after which the parser ignores input.
Pipelined requests follow one another in the same list; after a request that does not keep the
connection alive, further bytes are ignored (RFC 9112 9.6).

Strict where laxness lets one request be read two ways (request smuggling): a space before a
header colon, obs-fold, ``Content-Length`` together with ``Transfer-Encoding``, conflicting or
malformed lengths, bad chunk sizes and bare CRs are all errors; so are a missing (in HTTP/1.1),
repeated or malformed ``Host`` (RFC 9110 7.2). Every buffer is bounded: the request line (414),
the header section and trailers (431), the body (413). A bare LF is accepted as a line ending of
the head and trailers, so ``printf 'GET / HTTP/1.1\\nHost: x\\n\\n' | nc`` works, but not in
chunked framing: chunk lines end in CRLF and extensions follow the grammar (RFC 9112 7.1), where
a lenient reader is how bodies get smuggled.

The response side is a handful of helpers that build framing bytes with a single join.
"""

from __future__ import annotations

import re
from email.utils import formatdate
from http import HTTPStatus

import attrs

from playground.common.digits import decimal, digits_only, hexadecimal

# ----------------------------------------------------------------------------- events


@attrs.frozen
class RequestHead:
    """A complete, validated request head. ``headers`` keeps names as sent, in order.

    ``version`` is ``"HTTP/1.0"`` or ``"HTTP/1.1"`` (a higher 1.x minor is read as 1.1).
    ``content_length`` is None when the request has no ``Content-Length``; ``chunked`` says the
    body is chunked. ``raw_head`` is the head exactly as received, blank line included.
    """

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    raw_head: bytes
    keep_alive: bool
    expect_continue: bool
    content_length: int | None
    chunked: bool
    host: str | None
    at: float

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default


@attrs.frozen
class BodyChunk:
    """Decoded body bytes (chunked framing removed); a body may arrive in any number of these."""

    data: bytes


@attrs.frozen
class RequestEnd:
    """The current request is complete (body and trailers read)."""

    at: float


@attrs.frozen
class ParseError:
    """The input cannot be read as HTTP/1.1; answer ``status`` and close. Always the last event."""

    status: int
    reason: str


# ----------------------------------------------------------------------------- limits

DEFAULT_MAX_REQUEST_LINE = 8192
DEFAULT_MAX_HEADER_BYTES = 16384
DEFAULT_MAX_HEADERS = 100
DEFAULT_MAX_BODY = 1 << 20
MAX_CHUNK_LINE = 4096

# reasons shared by every path that detects the same condition (so any split of the input
# yields equal events)
_TOO_LONG_LINE = "request line too long"
_TOO_LARGE_HEADERS = "request header fields too large"
_TOO_LARGE_TRAILERS = "request trailer fields too large"
_TOO_LARGE_BODY = "request body larger than the limit"
_BAD_CHUNK_LINE = "chunk size line too long"

_TOKEN_BYTES = frozenset(b"!#$%&'*+-.^_`|~0123456789"
                         b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*)")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # tokens
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection", "expect"})
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_TARGET = re.compile(r"[^\x21-\x7e]")
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
# uri-host (RFC 3986 3.2.2): an IP literal in brackets, or a reg-name (unreserved, sub-delims, %XX)
_IP_LITERAL = r"\[[0-9A-Za-z:._~!$&'()*+,;=-]+\]"
_REG_NAME_CHAR = r"(?:[0-9A-Za-z._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})"
# Host = uri-host [ ":" port ], the host possibly empty (RFC 9110 7.2)
_HOST = re.compile(rf"(?:{_IP_LITERAL}|{_REG_NAME_CHAR}*)(?::[0-9]*)?")
# absolute-form: an http(s) URI with a host, no userinfo (RFC 9110 4.2.4), no fragment
_ABSOLUTE = re.compile(
    rf"https?://(?:{_IP_LITERAL}|{_REG_NAME_CHAR}+)(?::[0-9]*)?(?:/[^?#]*)?(?:\?[^#]*)?", re.I
)

# chunk-ext after its first ";" (RFC 9112 7.1.1): name [= token / quoted-string], ";"-separated,
# with optional white space around the separators
_EXT_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_EXT_VALUE = rb'(?:' + _EXT_TOKEN + rb'|"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*")'
_CHUNK_EXT = re.compile(
    rb"[ \t]*" + _EXT_TOKEN + rb"(?:[ \t]*=[ \t]*" + _EXT_VALUE + rb")?"
    rb"(?:[ \t]*;[ \t]*" + _EXT_TOKEN + rb"(?:[ \t]*=[ \t]*" + _EXT_VALUE + rb")?)*[ \t]*"
)

_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS, _DONE = range(7)


class HttpRequestParser:
    """Server-side HTTP/1.x request parser. See the module docstring for the contract."""

    def __init__(
        self,
        max_request_line: int = DEFAULT_MAX_REQUEST_LINE,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_body: int = DEFAULT_MAX_BODY,
    ):
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_body = max_body
        self._buf = b""
        self._scan = 0  # where the head-terminator search resumes in _buf
        self._state = _HEAD
        self._remaining = 0  # body or chunk bytes still to read
        self._body_total = 0  # decoded body bytes of the current chunked request
        self._trailer_bytes = 0
        self._keep_alive = True
        self._head_request = False  # head_request
        self.requests = 0  # complete requests parsed
        self.failed = False
        self.held = False  # the last feed stopped at max_requests with bytes left unparsed

    # -- introspection for the adapter (timeouts, flow control)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed."""
        return len(self._buf)

    @property
    def awaiting_head(self) -> bool:
        return self._state == _HEAD

    @property
    def in_body(self) -> bool:
        return self._state in (_BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS)

    @property
    def head_request(self) -> bool:
        """The request being read began ``HEAD `` (its line perhaps too long, or its head too
        large, to be read further): an error answered to it carries no body (RFC 9110 9.3.2).
        False between requests."""
        return self._head_request

    @property
    def finished(self) -> bool:
        """No more requests will be read: an error, or the last request asked to close."""
        return self._state == _DONE

    # -- feeding

    def feed(self, data: bytes, now: float, max_requests: int | None = None) -> list:
        """Consume ``data``; return the events it completes.

        ``max_requests`` stops parsing (bytes stay buffered) once that many requests have been
        completed in this call, so an adapter can bound how far ahead of its responses it reads;
        call ``feed(b"", now, n)`` later to continue.
        """
        self.held = False
        if self._state == _DONE:
            return []
        buf = self._buf + data if self._buf else bytes(data)
        events: list = []
        try:
            pos = self._run(buf, now, events, max_requests)
        except _Fail as f:
            events.append(ParseError(f.status, f.reason))
            self._fail()
            return events
        self._buf = buf[pos:] if self._state != _DONE else b""
        return events

    def eof(self, now: float) -> list:
        """The peer finished sending. A request cut short is an error event."""
        if self._state == _DONE:
            return []
        state, buf = self._state, self._buf
        self._state = _DONE
        self._buf = b""
        if state == _HEAD and buf.strip(b"\r\n"):
            return [ParseError(400, "connection closed before the request head was complete")]
        if state != _HEAD:
            return [ParseError(400, "connection closed before the request body was complete")]
        return []

    def _fail(self):
        self._state = _DONE
        self._buf = b""
        self.failed = True

    def _run(self, buf: bytes, now: float, events: list, max_requests) -> int:
        pos = 0
        end = len(buf)
        done = 0
        while True:
            state = self._state
            if state == _HEAD:
                if max_requests is not None and done >= max_requests:
                    self.held = pos < end
                    return pos
                if self._scan == 0:  # skip empty lines before a request line (RFC 9112 2.2)
                    while pos < end:
                        c = buf[pos]
                        if c == 10:
                            pos += 1
                        elif c == 13 and pos + 1 < end and buf[pos + 1] == 10:
                            pos += 2
                        else:
                            break
                    if pos >= end or (pos + 1 == end and buf[pos] == 13):
                        return pos
                    if buf[pos] not in _TOKEN_BYTES:  # e.g. a TLS hello: fail at once
                        raise _Fail(400, "malformed request line: bad method")
                self._head_request = buf.startswith(b"HEAD ", pos)
                start = pos + self._scan
                t = buf.find(b"\n\r\n", start)
                t2 = buf.find(b"\n\n", start, t + 1 if t >= 0 else end)
                if t2 >= 0:
                    t, term = t2, 2
                elif t >= 0:
                    term = 3
                else:
                    self._check_partial_head(buf, pos, end)
                    self._scan = max(0, end - pos - 2)
                    return pos
                self._scan = 0
                head = self._parse_head(buf, pos, t, term, now)
                events.append(head)
                pos = t + term
                self._keep_alive = head.keep_alive
                if head.chunked:
                    self._state = _CHUNK_SIZE
                    self._body_total = 0
                    self._trailer_bytes = 0
                elif head.content_length:
                    self._state = _BODY
                    self._remaining = head.content_length
                else:
                    done += 1
                    if self._end(events, now):
                        return pos
            elif state == _BODY or state == _CHUNK_DATA:
                n = min(self._remaining, end - pos)
                if n:
                    events.append(BodyChunk(buf[pos : pos + n]))
                    pos += n
                    self._remaining -= n
                if self._remaining:
                    return pos
                if state == _CHUNK_DATA:
                    self._state = _CHUNK_CRLF
                else:
                    done += 1
                    if self._end(events, now):
                        return pos
            elif state == _CHUNK_SIZE:
                nl = buf.find(b"\n", pos, pos + MAX_CHUNK_LINE + 1)
                if nl < 0:
                    if end - pos > MAX_CHUNK_LINE:
                        raise _Fail(400, _BAD_CHUNK_LINE)
                    return pos
                if nl == pos or buf[nl - 1] != 13:
                    raise _Fail(400, "chunk size line not ended by CRLF")
                size_text, semi, ext = buf[pos : nl - 1].partition(b";")
                pos = nl + 1
                size = hexadecimal(size_text.rstrip(b" \t"), 16)
                if size is None or (semi and not _CHUNK_EXT.fullmatch(ext)):
                    raise _Fail(400, "invalid chunk size line")
                if size == 0:
                    self._state = _TRAILERS
                    continue
                if self._body_total + size > self.max_body:
                    raise _Fail(413, _TOO_LARGE_BODY)
                self._body_total += size
                self._remaining = size
                self._state = _CHUNK_DATA
            elif state == _CHUNK_CRLF:
                if end - pos >= 2 and buf[pos] == 13 and buf[pos + 1] == 10:
                    pos += 2
                elif end - pos == 0 or (end - pos == 1 and buf[pos] == 13):
                    return pos
                else:
                    raise _Fail(400, "chunk data not followed by CRLF")
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                room = self.max_header_bytes - self._trailer_bytes
                nl = buf.find(b"\n", pos, pos + room + 1)
                if nl < 0:
                    if end - pos + 1 > room:
                        raise _Fail(431, _TOO_LARGE_TRAILERS)
                    return pos
                cost = nl - pos + 1
                line = buf[pos:nl]
                pos = nl + 1
                if line.endswith(b"\r"):
                    line = line[:-1]
                if not line:
                    done += 1
                    if self._end(events, now):
                        return pos
                    continue
                if cost > room:
                    raise _Fail(431, _TOO_LARGE_TRAILERS)
                self._trailer_bytes += cost
                _check_field(line.decode("latin-1"))
            else:  # _DONE: ignore what follows a request that closes the connection
                return end

    def _end(self, events: list, now: float) -> bool:
        """Finish the current request; True when parsing stops for good."""
        events.append(RequestEnd(now))
        self.requests += 1
        self._head_request = False
        if self._keep_alive:
            self._state = _HEAD
            return False
        self._state = _DONE
        return True

    def _check_partial_head(self, buf: bytes, pos: int, end: int) -> None:
        """An incomplete head already over a limit fails now, with the same error the complete
        head would get (so the events never depend on how the bytes were split)."""
        nl = buf.find(b"\n", pos, pos + self.max_request_line + 2)
        if nl < 0:
            if end - pos - 1 > self.max_request_line:
                raise _Fail(414, _TOO_LONG_LINE)
            return
        line_len = nl - pos - (1 if nl > pos and buf[nl - 1] == 13 else 0)
        if line_len > self.max_request_line:
            raise _Fail(414, _TOO_LONG_LINE)
        # the terminator is not in buf, so the field lines end at end - 2 or later
        if (end - 2) - nl > self.max_header_bytes:
            raise _Fail(431, _TOO_LARGE_HEADERS)

    def _parse_head(self, buf: bytes, pos: int, t: int, term: int, now: float) -> RequestHead:
        text = buf[pos:t].decode("latin-1")
        if text[-1:] == "\r" and text.count("\n") == text.count("\r\n"):
            lines = text[:-1].split("\r\n")  # all CRLF: the common case
        else:
            lines = [ln[:-1] if ln[-1:] == "\r" else ln for ln in text.split("\n")]
        first = lines[0]
        if len(first) > self.max_request_line:
            raise _Fail(414, _TOO_LONG_LINE)
        nl = buf.find(b"\n", pos, t + 1)
        # the field lines, their endings included, are buf[nl + 1 : t + 1]
        if t - nl > self.max_header_bytes or len(lines) - 1 > self.max_headers:
            raise _Fail(431, _TOO_LARGE_HEADERS)
        # request line
        parts = first.split(" ")
        if len(parts) != 3:
            raise _Fail(400, "malformed request line")
        method, target, version = parts
        if method not in _METHODS and not _TOKEN.fullmatch(method):
            raise _Fail(400, "malformed request line: bad method")
        if not target or _BAD_TARGET.search(target):
            raise _Fail(400, "malformed request line: bad target")
        if version == "HTTP/1.1":
            http11 = True
        elif version == "HTTP/1.0":
            http11 = False
        else:
            m = _VERSION.fullmatch(version)
            if m is None:
                raise _Fail(400, "malformed request line: bad version")
            if m.group(1) != "1":
                raise _Fail(505, f"{version} is not supported")
            http11 = m.group(2) != "0"  # HTTP/1.x, x > 1: read as 1.1 (RFC 9110 2.5)
            version = "HTTP/1.1" if http11 else "HTTP/1.0"
        if target[0] == "/":
            if "#" in target:  # a fragment is never sent (RFC 9112 3.2)
                raise _Fail(400, "malformed request target")
        elif not (
            _ABSOLUTE.fullmatch(target)
            or (target == "*" and method == "OPTIONS")
            or method == "CONNECT"
        ):
            raise _Fail(400, "malformed request target")
        # header fields
        headers = []
        host = None
        hosts = 0
        lengths = None
        codings = None
        connection = ""
        expect = None
        for i in range(1, len(lines)):
            m = _FIELD.fullmatch(lines[i])
            if m is None:
                _check_field(lines[i])  # raises with the precise reason
                raise _Fail(400, "invalid header line")
            name, value = m.groups()
            value = value.rstrip(" \t")
            headers.append((name, value))
            low = name.lower()
            if low not in _FRAMING:
                continue
            if low == "host":
                host = value
                hosts += 1
            elif low == "content-length":
                lengths = value if lengths is None else lengths + "," + value
            elif low == "transfer-encoding":
                codings = value if codings is None else codings + "," + value
            elif low == "connection":
                connection = connection + "," + value.lower() if connection else value.lower()
            elif low == "expect":
                expect = value.lower() if expect is None else expect + "," + value.lower()
        if hosts > 1:
            raise _Fail(400, "more than one Host header")
        if http11 and hosts == 0:
            raise _Fail(400, "HTTP/1.1 request without a Host header")
        if host is not None and not _HOST.fullmatch(host):
            raise _Fail(400, "invalid Host header")
        tokens = {c.strip() for c in connection.split(",")} if connection else ()
        if http11:
            keep_alive = "close" not in tokens
        else:
            keep_alive = "keep-alive" in tokens and "close" not in tokens
        content_length = None
        chunked = False
        if codings is not None:
            if lengths is not None:
                raise _Fail(400, "both Content-Length and Transfer-Encoding (request smuggling)")
            if not http11:
                raise _Fail(400, "Transfer-Encoding in an HTTP/1.0 request")
            items = [c.strip().lower() for c in codings.split(",")]
            items = [c for c in items if c]
            if any(c != "chunked" for c in items):
                raise _Fail(501, f"unsupported transfer coding: {codings}")
            if len(items) != 1:
                raise _Fail(400, f"invalid Transfer-Encoding: {codings}")
            chunked = True
        elif lengths is not None:
            values = {v.strip() for v in lengths.split(",")}
            if len(values) != 1:
                raise _Fail(400, "conflicting Content-Length values")
            (text_len,) = values
            content_length = decimal(text_len, 18)
            if content_length is None and not digits_only(text_len):
                raise _Fail(400, "invalid Content-Length")
            if content_length is None or content_length > self.max_body:
                raise _Fail(413, _TOO_LARGE_BODY)
        expect_continue = False
        if expect is not None:
            items = {e.strip() for e in expect.split(",")} - {""}
            if items - {"100-continue"}:
                raise _Fail(417, f"unsupported expectation: {expect}")
            expect_continue = http11 and bool(items)
        return RequestHead(
            method=method,
            target=target,
            version=version,
            headers=tuple(headers),
            raw_head=buf[pos : t + term],
            keep_alive=keep_alive,
            expect_continue=expect_continue,
            content_length=content_length,
            chunked=chunked,
            host=host,
            at=now,
        )


class _Fail(Exception):
    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason


def _check_field(line: str) -> tuple[str, str]:
    if line[:1] in (" ", "\t"):
        raise _Fail(400, "obsolete line folding in header section")
    name, sep, value = line.partition(":")
    if not sep:
        raise _Fail(400, "header line without a colon")
    if not _TOKEN.fullmatch(name):
        raise _Fail(400, f"invalid header name {name[:40]!r}")
    value = value.strip(" \t")
    if _BAD_VALUE.search(value):
        raise _Fail(400, f"invalid character in header {name}")
    return name, value


# ----------------------------------------------------------------------------- responses

SERVER = "tcpplay"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"

_STATUS_LINES = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("latin-1") for s in HTTPStatus
}


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


_STATUS_TEXT = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in HTTPStatus}


def status_text(status: int) -> str:
    """``HTTP/1.1 200 OK\\r\\n`` as text."""
    text = _STATUS_TEXT.get(status)
    if text is None:
        text = f"HTTP/1.1 {status} {reason_phrase(status)}\r\n"
    return text


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} {reason_phrase(status)}\r\n".encode("latin-1")
    return line


def http_date(ts: float) -> str:
    """An IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``) for a POSIX timestamp."""
    return formatdate(ts, usegmt=True)


def response_head(status: int, headers) -> bytes:
    """The status line and header section, blank line included, as one bytes object."""
    parts = [status_line(status)]
    for name, value in headers:
        parts.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
    parts.append(b"\r\n")
    return b"".join(parts)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (empty data gives nothing: an empty chunk would end it)."""
    if not data:
        return b""
    return b"%x\r\n%s\r\n" % (len(data), data)


def bodiless_status(status: int) -> bool:
    """1xx, 204 and 304 responses never carry a body (RFC 9112 6.3)."""
    return status < 200 or status in (204, 304)


def error_response(status: int, reason: str, date: str | None, head: bool = False) -> bytes:
    """A complete error response with a short text body and ``Connection: close``; to a HEAD
    request (``head``), the same head without the body (RFC 9110 9.3.2)."""
    body = f"{status} {reason_phrase(status)}: {reason}\n".encode("latin-1", "replace")
    headers = [("Server", SERVER)]
    if date is not None:
        headers.append(("Date", date))
    headers += [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    return response_head(status, headers) + (b"" if head else body)
