"""Protocol detection from a connection's first bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playground.decode.detect import HEX, HTTP, MAX_BLANK, PEEK, RESP, TEXT, Detector, classify

pytestmark = pytest.mark.pure


@pytest.mark.parametrize(
    "first, expected",
    [
        (b"*1\r\n$4\r\nPING\r\n", RESP),
        (b"*", RESP),
        (b"PING\r\n", RESP),
        (b"ping\n", RESP),
        (b"set foo bar\r\n", RESP),
        (b"GET foo\r\n", RESP),  # inline Redis, not HTTP: no HTTP version
        (b"GET /x?token=t\r\n", HTTP),  # HTTP/0.9's request line: a path, no version
        (b"GET /\n", HTTP),
        (b"GET /a b\r\n", RESP),  # two keys: not a request line
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", HTTP),
        (b"POST /api/v1 HTTP/1.0\r\n", HTTP),
        (b"PROPFIND /dav HTTP/1.1\r\n", HTTP),
        (b"hello there\n", TEXT),
        (b"EHLO example.com\r\n", TEXT),
        (b"h\xc3\xa9llo\n", TEXT),
        (b"\x16\x03\x01\x02\x00\x01\x00", HEX),
        (b"\x00\x00\x00\x10binary\n", HEX),
        (b"SSH-2.0-OpenSSH_9.0\r\n", TEXT),
    ],
)
def test_classify(first, expected):
    assert classify(first) == expected


@pytest.mark.parametrize("prefix", [b"GE", b"GET", b"GET /long/path", b"hello", b"PIN", b"h\xc3"])
def test_waits_for_a_line_end(prefix):
    assert classify(prefix) is None
    assert classify(prefix, final=True) is not None


def test_binary_decides_at_once():
    assert classify(b"\x00") == HEX
    assert classify(b"\xff\xfe") == HEX


def test_bounded_wait_without_newline():
    assert classify(b"a" * (PEEK - 1)) is None
    assert classify(b"a" * PEEK) == TEXT
    assert classify(b"GET /" + b"a" * PEEK) == HTTP  # a long request line still arriving


def test_detector_keeps_pending_chunks_until_decided():
    d = Detector()
    assert d.feed("c2s", b"GET / HT", 1.0) is None
    assert d.feed("c2s", b"TP/1.1\r\n", 2.0) == HTTP
    assert d.pending == [("c2s", b"GET / HT", 1.0), ("c2s", b"TP/1.1\r\n", 2.0)]
    assert d.feed("c2s", b"more", 3.0) == HTTP
    assert len(d.pending) == 2


def test_server_speaks_first():
    d = Detector()
    assert d.feed("s2c", b"220 mail.example.com ESMTP ready\r\n") == TEXT
    d = Detector()
    assert d.feed("s2c", b"\x00\x00\x00\x4a\x0a5.7.0\x00") == HEX
    d = Detector()
    d.feed("c2s", b"*2\r\n$3")
    assert d.decided == RESP


def test_server_first_with_partial_client_bytes_uses_the_client():
    d = Detector()
    assert d.feed("c2s", b"PIN") is None
    assert d.feed("s2c", b"-ERR unknown\r\n") == TEXT or d.decided is not None


def test_finish_decides_with_what_there_is():
    d = Detector()
    d.feed("c2s", b"hi")
    assert d.finish() == TEXT
    assert Detector().finish() == HEX


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_and_always_decide_when_final(data):
    classify(data)
    assert classify(data, final=True) in (RESP, HTTP, TEXT, HEX, None)
    if data:
        assert classify(data, final=True) is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.integers(1, 10))
def test_decision_is_bounded(data, step):
    d = Detector()
    for i in range(0, len(data), step):
        if d.feed("c2s", data[i : i + step]) is not None:
            break
    body = data.lstrip(b" \t\r\n\x0b\x0c")  # what Redis skips before a command
    if len(body) >= PEEK or b"\n" in body or len(data) - len(body) > MAX_BLANK:
        assert d.decided is not None


# -- what the servers skip: Redis ignores blank lines and leading whitespace before an inline
# command, an HTTP/1.1 server empty lines before the request-line (RFC 9112 section 2.2)


@pytest.mark.parametrize(
    "first, expected",
    [
        (b"\r\nAUTH s3cret\r\nPING\r\n", RESP),
        (b" AUTH s3cret\r\nPING\r\n", RESP),
        (b"\n\n\r\n  \t\r\nauth s3cret\n", RESP),
        (b"\x0b\x0cAUTH s3cret\r\n", RESP),
        (b"\r\n*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\n", RESP),
        (b"\r\nGET / HTTP/1.1\r\nAuthorization: Basic eDp5\r\n\r\n", HTTP),
        (b"\r\n\r\n\nPOST /api HTTP/1.0\r\n", HTTP),
        (b" GET foo\r\n", RESP),  # a space before it: Redis' inline GET, no HTTP server's
        (b" GET / HTTP/1.1\r\n", RESP),
        (b"\r\nhello there\n", TEXT),
        (b"\r\n\x16\x03\x01\x02\x00", HEX),
    ],
)
def test_classify_skips_what_the_servers_skip(first, expected):
    assert classify(first) == expected
    d = Detector()
    decided = None
    for i in range(len(first)):  # one byte at a time: the same decision
        decided = d.feed("c2s", first[i:i + 1])
        if decided is not None:
            break
    assert (decided or d.finish()) == expected


@pytest.mark.parametrize("blank", [b"\r\n", b" ", b"\r\n\r\n  \t", b"\n" * MAX_BLANK])
def test_blank_lines_alone_wait(blank):
    assert classify(blank) is None
    assert classify(blank, final=True) == TEXT
    assert classify(blank + b"PING\r\n") == RESP


def test_skipping_blank_bytes_is_bounded():
    assert classify(b"\r\n" * MAX_BLANK) == TEXT
    assert classify(b" " * (MAX_BLANK + 1) + b"PING\r\n") == TEXT
    d = Detector()
    for _ in range(MAX_BLANK):
        d.feed("c2s", b"\r\n")
    assert d.decided == TEXT
    assert len(d.client) <= MAX_BLANK + PEEK + 1024
