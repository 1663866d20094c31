"""The pure HTTP/1.1 request parser and response helpers: every rule, any split, any bytes."""

from __future__ import annotations

import subprocess
import sys

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground.examples.http.parser import (
    CONTINUE,
    BodyChunk,
    HttpRequestParser,
    ParseError,
    RequestEnd,
    RequestHead,
    bodiless_status,
    chunk,
    error_response,
    http_date,
    response_head,
    status_line,
)


def feed_all(data: bytes, parser=None, **kw) -> list:
    parser = parser or HttpRequestParser(**kw)
    return coalesce(parser.feed(data, 1.0))


def coalesce(events: list) -> list:
    """Merge adjacent BodyChunks: how a body is split into chunks depends on the input split."""
    out: list = []
    for ev in events:
        if isinstance(ev, BodyChunk) and out and isinstance(out[-1], BodyChunk):
            out[-1] = BodyChunk(out[-1].data + ev.data)
        else:
            out.append(ev)
    return out


def feed_split(data: bytes, cuts, **kw) -> list:
    parser = HttpRequestParser(**kw)
    events: list = []
    last = 0
    for cut in sorted(set(cuts)):
        events += parser.feed(data[last:cut], 1.0)
        last = cut
    events += parser.feed(data[last:], 1.0)
    return coalesce(events)


def only_error(events) -> ParseError:
    assert isinstance(events[-1], ParseError), events
    return events[-1]


GET = b"GET /get?a=1 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n"


# --- well-formed requests --------------------------------------------------------------------


@pytest.mark.pure
def test_simple_get():
    events = feed_all(GET)
    assert len(events) == 2
    head, end = events
    assert isinstance(head, RequestHead) and isinstance(end, RequestEnd)
    assert (head.method, head.target, head.version) == ("GET", "/get?a=1", "HTTP/1.1")
    assert head.headers == (("Host", "example.test"), ("User-Agent", "t"))
    assert head.host == "example.test"
    assert head.raw_head == GET
    assert head.keep_alive and not head.expect_continue and not head.chunked
    assert head.content_length is None and head.at == 1.0
    assert head.get("user-agent") == "t" and head.get("x-none") is None


@pytest.mark.pure
def test_content_length_body():
    data = b"POST /post HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    head, body, end = feed_all(data)
    assert head.content_length == 5 and head.has_body
    assert body == BodyChunk(b"hello") and isinstance(end, RequestEnd)


@pytest.mark.pure
def test_body_arrives_in_pieces():
    p = HttpRequestParser()
    events = p.feed(b"PUT /put HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nab", 1.0)
    assert [type(e) for e in events] == [RequestHead, BodyChunk]
    assert p.in_body and not p.awaiting_head
    assert p.feed(b"cd", 2.0) == [BodyChunk(b"cd")]
    assert p.feed(b"efGET", 3.0) == [BodyChunk(b"ef"), RequestEnd(3.0)]
    assert p.awaiting_head and p.buffered == 3


@pytest.mark.pure
def test_chunked_body_with_extensions_and_trailers():
    data = (
        b"POST /post HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n6 \r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    head, body, end = feed_all(data)
    assert head.chunked and head.content_length is None
    assert body == BodyChunk(b"hello world")
    assert isinstance(end, RequestEnd)


CHUNKED = b"POST /post HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.pure
@pytest.mark.parametrize("body", [
    b"3\nabc\r\n0\r\n\r\n",  # a chunk size line ended by a bare LF
    b"3;x=y\nabc\r\n0\r\n\r\n",
    b"3\r\nabc\n0\r\n\r\n",  # chunk data followed by a bare LF
    b"3\r\nabc\r\n0\n\r\n",
    b"3;\r\nabc\r\n0\r\n\r\n",  # extensions outside the grammar
    b"3;x=\r\nabc\r\n0\r\n\r\n",
    b"3;x=a b\r\nabc\r\n0\r\n\r\n",
    b'3;x="open\r\nabc\r\n0\r\n\r\n',
    b"3;x=\x00\r\nabc\r\n0\r\n\r\n",
    b"3;=y\r\nabc\r\n0\r\n\r\n",
])
def test_chunked_framing_is_crlf_and_the_grammar_only(body):
    # RFC 9112 7.1: chunk lines end in CRLF (the bare LF leniency of 2.2 is for the head and
    # fields only), and chunk-ext is ;name[=token|quoted-string]. Readers that disagree on
    # where a chunk line ends are how bodies get smuggled (aiohttp CVE-2024-52304, h11
    # CVE-2025-43859)
    err = only_error(feed_all(CHUNKED + body))
    assert err.status == 400


@pytest.mark.pure
@pytest.mark.parametrize("size_line", [
    b"3", b"3 ", b"3;a", b"3;a=b", b"3 ; a = b ;c", b'3;a="b;c\\"\td"', b"3;a=b;c=d", b'3;e=""',
])
def test_chunk_extensions_in_the_grammar_are_read_and_ignored(size_line):
    (_head, body, _end) = feed_all(CHUNKED + size_line + b"\r\nabc\r\n0\r\nT: 1\r\n\r\n")
    assert body == BodyChunk(b"abc")


@pytest.mark.pure
def test_pipelined_requests_in_one_feed():
    data = GET + b"POST /post HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok" + GET
    events = feed_all(data)
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "RequestHead",
        "RequestEnd",
        "RequestHead",
        "BodyChunk",
        "RequestEnd",
        "RequestHead",
        "RequestEnd",
    ]


@pytest.mark.pure
def test_bare_lf_line_endings_are_accepted():
    (head, _end) = feed_all(b"GET /echo HTTP/1.1\nHost: x\n\n")
    assert head.target == "/echo" and head.host == "x"
    (head, _end) = feed_all(b"GET /echo HTTP/1.1\r\nHost: x\nA: b\r\n\n")
    assert head.headers == (("Host", "x"), ("A", "b"))


@pytest.mark.pure
def test_empty_lines_before_a_request_are_skipped():
    events = feed_all(b"\r\n\n\r\n" + GET)
    assert isinstance(events[0], RequestHead)


@pytest.mark.pure
def test_header_values_are_trimmed_and_may_be_empty():
    (head, _) = feed_all(b"GET / HTTP/1.1\r\nHost:h\r\nX-A: \t spaced out \t\r\nX-E:\r\n\r\n")
    assert head.headers == (("Host", "h"), ("X-A", "spaced out"), ("X-E", ""))


@pytest.mark.pure
@pytest.mark.parametrize("host", [
    b"a b", b"x/y", b"user@x", b"x?y", b"x#y", b"[::1", b"x:8o", b'x"y', b"x\\y", b"\xc3\xa9.test",
    b"%zz",
])
def test_an_invalid_host_is_400(host):
    # RFC 9110 7.2: a server MUST answer 400 to a Host header field with an invalid value
    err = only_error(feed_all(b"GET /get HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"))
    assert (err.status, err.reason) == (400, "invalid Host header")


@pytest.mark.pure
@pytest.mark.parametrize("host", [
    "", "example.test", "example.test:", "127.0.0.1:8080", "[::1]:80", "[v1.x]", "xn--caf-dma.test",
    "a_b~c!$&'()*+,;=", "ex%41mple.test",
])
def test_a_valid_host_is_read(host):
    (head, _) = feed_all(f"GET /get HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert head.host == host


@pytest.mark.pure
@pytest.mark.parametrize("target", [
    b"http://[x/get", b"http://x]/get", b"http://[::1/get", b"http://a:b@x/get", b"http:///get",
    b"https://x:8o/", b"http://x/get#frag", b"/get#frag", b"/#",
])
def test_a_malformed_target_is_400(target):
    # RFC 9112 3.2: no fragment in a request target; RFC 9110 4.2.4: no userinfo, no empty
    # host in an http URI; an unclosed '[' made urlsplit raise: a 500 and a logged traceback
    err = only_error(feed_all(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert (err.status, err.reason) == (400, "malformed request target")


@pytest.mark.pure
@pytest.mark.parametrize("target", [
    "http://[::1]:80/get?a=1", "HTTP://Example.TEST/get", "http://x", "http://x?q=1", "https://x:/",
    "http://x:8080/a/b%20c?d=/e?f", "/get?a=b/c?d",
])
def test_a_well_formed_target_is_read(target):
    (head, _) = feed_all(f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert head.target == target


@pytest.mark.pure
def test_absolute_form_target_and_asterisk():
    (head, _) = feed_all(b"GET http://example.test/get?x=1 HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert head.target == "http://example.test/get?x=1"
    (head, _) = feed_all(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert head.target == "*"
    assert only_error(feed_all(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n")).status == 400
    assert only_error(feed_all(b"GET get HTTP/1.1\r\nHost: h\r\n\r\n")).status == 400


@pytest.mark.pure
@pytest.mark.parametrize(
    "version,headers,keep_alive",
    [
        ("HTTP/1.1", "", True),
        ("HTTP/1.1", "Connection: close\r\n", False),
        ("HTTP/1.1", "Connection: Keep-Alive, Close\r\n", False),
        ("HTTP/1.0", "", False),
        ("HTTP/1.0", "Connection: keep-alive\r\n", True),
        ("HTTP/1.0", "Connection: Keep-Alive\r\n", True),
    ],
)
def test_keep_alive_rules(version, headers, keep_alive):
    data = f"GET / {version}\r\nHost: h\r\n{headers}\r\n".encode()
    (head, _) = feed_all(data)
    assert head.keep_alive is keep_alive


@pytest.mark.pure
def test_input_after_a_closing_request_is_ignored():
    p = HttpRequestParser()
    events = p.feed(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + GET, 1.0)
    assert [type(e) for e in events] == [RequestHead, RequestEnd]
    assert p.finished and p.feed(GET, 2.0) == []


@pytest.mark.pure
def test_http_1_0_needs_no_host_and_minor_versions_read_as_1_1():
    (head, _) = feed_all(b"GET / HTTP/1.0\r\n\r\n")
    assert head.version == "HTTP/1.0" and head.host is None
    (head, _) = feed_all(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n")
    assert head.version == "HTTP/1.1"


@pytest.mark.pure
def test_expect_100_continue():
    data = b"POST /post HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"
    p = HttpRequestParser()
    (head,) = p.feed(data, 1.0)
    assert head.expect_continue and head.has_body
    # HTTP/1.0 clients cannot expect 100 (RFC 9110 10.1.1): ignored
    (head, *_) = feed_all(data.replace(b"HTTP/1.1", b"HTTP/1.0"))
    assert not head.expect_continue


@pytest.mark.pure
def test_max_requests_holds_bytes_back():
    p = HttpRequestParser()
    events = p.feed(GET * 3, 1.0, max_requests=1)
    assert [type(e) for e in events] == [RequestHead, RequestEnd]
    assert p.held and p.buffered == 2 * len(GET)
    assert p.feed(b"", 2.0, max_requests=0) == [] and p.held
    events = p.feed(b"", 3.0, max_requests=5)
    assert [type(e) for e in events] == [RequestHead, RequestEnd] * 2
    assert not p.held and p.buffered == 0


@pytest.mark.pure
def test_eof():
    p = HttpRequestParser()
    p.feed(GET, 1.0)
    assert p.eof(2.0) == []
    p = HttpRequestParser()
    p.feed(b"GET / HT", 1.0)
    assert only_error(p.eof(2.0)).status == 400
    p = HttpRequestParser()
    p.feed(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nabc", 1.0)
    assert only_error(p.eof(2.0)).status == 400
    assert p.feed(GET, 3.0) == []


# --- errors: status and close ----------------------------------------------------------------

H = b"Host: h\r\n"

ERRORS = [
    # malformed request line
    (b"GET /\r\n" + H + b"\r\n", 400),
    (b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET / HTTP/1.1 extra\r\n" + H + b"\r\n", 400),
    (b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    (b"GET / HTTP/1\r\n" + H + b"\r\n", 400),
    (b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET /a\rb HTTP/1.1\r\n" + H + b"\r\n", 400),
    # words separated by SP only (RFC 9112 3): bytes.split() would split at these too
    (b"GET\x0b/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET\x0c/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET /\x0bHTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET /a\x0cb HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET / HTTP/1.1\x0b\r\n" + H + b"\r\n", 400),
    (b"\x0bGET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    # versions
    (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    (b"GET / HTTP/3.1\r\n" + H + b"\r\n", 505),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    (b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505),
    # header syntax
    (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\r\n  folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"\tX-A: 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"no colon\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b": empty name\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x0bb\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A:\x0c1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A\x0b: 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\x0c\r\n\r\n", 400),
    # Host
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    # Content-Length
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1_0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + "Content-Length: ٣\r\n\r\n".encode(), 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1, 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + "Content-Length: ²\r\n\r\n".encode("latin-1"), 400),
    # smuggling
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \r\n\r\n", 400),
    # unsupported codings
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n", 501),
    # expectations
    (b"POST / HTTP/1.1\r\n" + H + b"Expect: the-unexpected\r\n\r\n", 417),
    # chunk framing
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-1\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n 5\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 17 + b"\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1;" + b"e" * 5000, 400),
    (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n",
        400,
    ),
    # sizes (with the default limits)
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    (b"GET /" + b"a" * 9000, 414),
    (b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * 17000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * 17000, 431),
    (b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n", 431),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1048577\r\n\r\n", 413),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\n", 413),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n100001\r\n", 413),
    (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX: " + b"t" * 17000,
        431,
    ),
]


@pytest.mark.pure
@pytest.mark.parametrize("data,status", ERRORS, ids=[f"{s}-{i}" for i, (_, s) in enumerate(ERRORS)])
def test_errors(data, status):
    p = HttpRequestParser()
    events = coalesce(p.feed(data, 1.0))
    err = only_error(events)
    assert err.status == status, err
    assert err.reason
    assert sum(isinstance(e, ParseError) for e in events) == 1
    assert p.finished and p.failed
    assert p.feed(GET, 2.0) == []  # nothing after an error


@pytest.mark.pure
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_max_header_bytes_is_the_size_of_the_field_lines(eol):
    # the header section is its field lines, line endings included: at the limit it is read,
    # one byte over it is a 431, whole or a byte at a time
    def head(size: int) -> bytes:
        fields = b"Host: h" + eol + b"X: "
        fields += b"v" * (size - len(fields) - len(eol)) + eol
        assert len(fields) == size
        return b"GET / HTTP/1.1" + eol + fields + eol

    for split in (None, 1):
        cuts = range(1, len(head(41)), split) if split else ()
        assert isinstance(feed_split(head(40), cuts, max_header_bytes=40)[0], RequestHead)
        assert only_error(feed_split(head(41), cuts, max_header_bytes=40)).status == 431


@pytest.mark.pure
def test_chunked_total_over_max_body():
    data = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
    )
    events = feed_all(data, max_body=10)
    assert only_error(events).status == 413
    assert events[1] == BodyChunk(b"12345678")  # the first chunk fit


@pytest.mark.pure
def test_limits_are_options():
    assert only_error(feed_all(GET, max_request_line=10)).status == 414
    assert only_error(feed_all(GET, max_header_bytes=10)).status == 431
    assert only_error(feed_all(GET, max_headers=1)).status == 431
    post = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
    assert only_error(feed_all(post, max_body=10)).status == 413
    assert isinstance(feed_all(post, max_body=11)[-1], RequestEnd)


@pytest.mark.pure
def test_buffer_stays_bounded_under_a_flood():
    p = HttpRequestParser()
    events = []
    for _ in range(100):  # 100 KiB of a never-ending header
        events += p.feed(b"X" * 1024, 1.0)
        if events:
            break
        assert p.buffered <= 8192 + 16384 + 4
    assert only_error(events).status == 414


# --- h11 as an oracle ------------------------------------------------------------------------


def h11_request_bytes(method, target, headers, body=b""):
    c = h11.Connection(h11.CLIENT)
    data = c.send(h11.Request(method=method, target=target, headers=headers))
    if body:
        data += c.send(h11.Data(data=body))
    data += c.send(h11.EndOfMessage())
    return data


@pytest.mark.pure
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    path=st.text("abcxyz019-._~%/", max_size=30),
    extra=st.lists(
        st.tuples(
            st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
            st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
        ),
        max_size=6,
    ),
    body=st.binary(max_size=200),
    chunked=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_agrees_with_h11(method, path, extra, body, chunked):
    extra = [
        (k, v)
        for k, v in extra
        if k.lower() not in ("host", "content-length", "transfer-encoding", "connection", "expect")
    ]
    headers = [("Host", "example.test"), *extra]
    if body:
        headers.append(
            ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(len(body)))
        )
    data = h11_request_bytes(method, "/" + path, headers, body)
    events = feed_all(data)
    assert isinstance(events[0], RequestHead), events
    head = events[0]
    assert head.method == method and head.target == "/" + path
    assert list(head.headers) == headers
    got = b"".join(e.data for e in events if isinstance(e, BodyChunk))
    assert got == body
    assert isinstance(events[-1], RequestEnd)


# --- split invariance and robustness ---------------------------------------------------------

CORPUS = [
    GET,
    GET * 3,
    b"\r\n" + GET + b"\n" + GET,
    b"POST /post HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world" + GET,
    b"POST /post HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n1;x=y\r\n \r\n5\r\nworld\r\n0\r\nT: 1\r\n\r\n" + GET,
    b"GET / HTTP/1.1\nHost: x\n\nGET / HTTP/1.0\r\n\r\n" + GET,
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + GET,
] + [data for data, _ in ERRORS if len(data) < 30000]


@pytest.mark.pure
@pytest.mark.parametrize("data", CORPUS, ids=range(len(CORPUS)))
def test_whole_equals_byte_by_byte(data):
    assert feed_all(data) == feed_split(data, range(1, len(data)))


@pytest.mark.pure
@given(
    data=st.sampled_from(CORPUS),
    cuts=st.lists(st.integers(min_value=0, max_value=40000), max_size=12),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_split_gives_the_same_events(data, cuts):
    cuts = [c % (len(data) + 1) for c in cuts]
    assert feed_split(data, cuts) == feed_all(data)


@pytest.mark.pure
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=6))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_raise(data, cuts):
    cuts = [c % (len(data) + 1) for c in cuts]
    events = feed_split(data, cuts)
    assert events == feed_all(data)
    assert sum(isinstance(e, ParseError) for e in events) <= 1
    p = HttpRequestParser()
    p.feed(data, 1.0)
    p.eof(2.0)


@pytest.mark.pure
@given(
    base=st.sampled_from(CORPUS[:7]),
    pos=st.integers(0, 10000),
    junk=st.binary(min_size=1, max_size=8),
)
@settings(max_examples=300, deadline=None)
def test_mutated_requests_never_raise_and_stay_split_invariant(base, pos, junk):
    pos %= len(base)
    data = base[:pos] + junk + base[pos + len(junk) :]
    events = feed_all(data)
    assert feed_split(data, range(1, len(data))) == events
    for ev in events:
        if isinstance(ev, ParseError):
            assert ev.status in (400, 413, 414, 417, 431, 501, 505)


# --- response helpers ------------------------------------------------------------------------


@pytest.mark.pure
def test_response_helpers():
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(299) == b"HTTP/1.1 299 Unknown\r\n"
    assert response_head(204, [("Server", "x")]) == b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n"
    assert chunk(b"hello") == b"5\r\nhello\r\n" and chunk(b"") == b""
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert bodiless_status(204) and bodiless_status(304) and bodiless_status(101)
    assert not bodiless_status(200)


@pytest.mark.pure
@pytest.mark.parametrize("status", [400, 408, 413, 414, 417, 431, 501, 505, 503])
def test_error_responses_are_valid_http(status):
    data = error_response(status, "because", http_date(0))
    c = h11.Connection(h11.CLIENT)
    c.send(h11.Request(method="GET", target="/", headers=[("Host", "h")]))
    c.send(h11.EndOfMessage())
    c.receive_data(data)
    resp = c.next_event()
    assert isinstance(resp, h11.Response) and resp.status_code == status
    assert (b"connection", b"close") in resp.headers
    body = c.next_event()
    assert b"because" in body.data
    assert isinstance(c.next_event(), h11.EndOfMessage)


@pytest.mark.real
def test_pure_modules_import_no_twisted():
    code = (
        "import sys, playground.examples.http.parser, playground.examples.http.app; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'twisted'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
