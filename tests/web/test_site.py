"""The web view's event stream on the real reactor: a reconnecting page gets what it missed (or a
resync after a restart), a client that does not read is dropped without stalling anything, and a
stream outlives the site's deadlines for a request."""

from __future__ import annotations

import json
import socket
import time

import attrs
import pytest
import pytest_twisted
from twisted.internet import defer, endpoints, reactor, task
from twisted.internet.testing import MemoryReactorClock

from playground.common.limits import CappedSite, Deadlines
from playground.web.capture import C2S, Capture
from playground.web.site import EventFeed, WebRoot, server, stream_text
from tests.support.waiting import until

pytestmark = pytest.mark.real


# far shorter than the defaults: an event stream, once asked for, is timed by none of them
_SHORT = Deadlines(idle=0.2, head=0.2, body=0.2)


def _site(capture: Capture, deadlines: Deadlines = _SHORT, clock=reactor, **feed_kw):
    """The web view's site (a ``CappedSite``, as ``make_site`` makes it) over ``capture``, its
    event feed made with ``feed_kw``; its connections' deadlines run on ``clock``."""
    feed = EventFeed(capture, reactor, **feed_kw)
    root = WebRoot(capture, reactor=reactor, feed=feed)
    site = CappedSite(root, deadlines=deadlines, reactor=clock)
    site.log = lambda request: None
    return site, feed


@defer.inlineCallbacks
def _listen(site):
    port = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    return port


def _get(port: int, path: str, headers: str = "", rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
    s.setblocking(False)
    return s


def _read(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


def _read_into(s: socket.socket, holder: list) -> bytes:
    """Read what is there into ``holder[0]``; return all read so far."""
    holder[0] += _read(s)
    return holder[0]


def _messages(raw: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            out.append((lines["id"], json.loads(lines["data"])))
    return out


def test_stream_text_escapes_what_is_not_printable():
    assert stream_text(b"GET /\r\n\x1b[31m\\\t\xff") == "GET /\\r\\n\n\\x1b[31m\\\\\\t\\xff"


@pytest_twisted.inlineCallbacks
def test_a_page_that_reconnects_gets_what_it_missed_or_a_resync():
    cap = Capture()
    cap.opened(1, 1.0, "c", "l", "t")
    site, feed = _site(cap, interval=0.05)
    port = yield _listen(site)
    buf = [b""]
    try:
        s = _get(port.getHost().port, "/api/events")
        yield until(lambda: _messages(_read_into(s, buf)), "the first message")
        (event_id, first), = _messages(buf[0])
        assert first["resync"] and [c["id"] for c in first["connections"]] == [1]
        s.close()
        yield until(lambda: not feed.clients, "the feed to let go of the client")
        cap.opened(2, 2.0, "c", "l", "t")
        buf[0] = b""
        s = _get(port.getHost().port, "/api/events", f"Last-Event-ID: {event_id}\r\n")
        yield until(lambda: _messages(_read_into(s, buf)), "the missed change")
        (_, missed), = _messages(buf[0])
        assert not missed["resync"] and [c["id"] for c in missed["connections"]] == [2]
        s.close()
        buf[0] = b""
        s = _get(port.getHost().port, "/api/events", "Last-Event-ID: 0badc0de-3\r\n")
        yield until(lambda: _messages(_read_into(s, buf)), "a resync")
        (_, again), = _messages(buf[0])
        assert again["resync"] and [c["id"] for c in again["connections"]] == [1, 2]
        s.close()
    finally:
        feed.stop()
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_an_event_stream_goes_on_past_every_deadline_of_the_site():
    # the site's deadlines time a request's arrival (idle, head, body), not its answer: a page's
    # stream is never cut by them (they run on a clock of the test's, moved past each of them
    # once the stream is answered)
    cap = Capture()
    cap.opened(1, 1.0, "c", "l", "t")
    clock = MemoryReactorClock()
    site, feed = _site(cap, clock=clock, interval=0.02)
    port = yield _listen(site)
    changer = task.LoopingCall(lambda: cap.data(1, C2S, b"x", 2.0))
    changer.start(0.02)
    buf = [b""]
    s = _get(port.getHost().port, "/api/events")
    try:
        yield until(lambda: _messages(_read_into(s, buf)), "the first message")
        for _ in range(5):
            clock.advance(max(attrs.astuple(_SHORT)))
        seen = len(_messages(_read_into(s, buf)))
        yield until(lambda: len(_messages(_read_into(s, buf))) > seen, "a message after them")
        assert feed.clients and site.open_connections == 1
    finally:
        changer.stop()
        s.close()
        feed.stop()
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_a_last_event_id_with_a_seq_int_refuses_resyncs_instead_of_failing():
    # the feed's own epoch and 5000 digits (int() refuses over 4300) was a 500 "Processing
    # Failed" and a traceback in the log
    cap = Capture()
    cap.opened(1, 1.0, "c", "l", "t")
    site, feed = _site(cap, interval=0.05)
    port = yield _listen(site)
    try:
        for seq in ("9" * 5000, "\u00b2"):
            buf = [b""]
            s = _get(port.getHost().port, "/api/events",
                      f"Last-Event-ID: {feed.epoch}-{seq}\r\n".encode().decode("latin-1"))
            yield until(lambda s=s, buf=buf: b"\r\n\r\n" in _read_into(s, buf), "an answer")
            assert buf[0].startswith(b"HTTP/1.1 200"), buf[0][:40]
            yield until(lambda s=s, buf=buf: _messages(_read_into(s, buf)), "a resync")
            (_, first), = _messages(buf[0].partition(b"\r\n\r\n")[2])
            assert first["resync"]
            s.close()
    finally:
        feed.stop()
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_an_event_stream_that_does_not_read_is_dropped_and_nothing_waits():
    cap = Capture(max_connections=2000)
    for pair in range(1, 1001):
        cap.opened(pair, 1.0, "127.0.0.1:40000", "127.0.0.1:6479", "tcp:host=h:port=1" + "x" * 200)
    site, feed = _site(cap, interval=0.02, stall_ticks=5)
    port = yield _listen(site)
    lags = []
    last = [time.monotonic()]

    def beat():  # how late the reactor runs a 10 ms timer: it must never be stalled
        now = time.monotonic()
        lags.append(now - last[0])
        last[0] = now

    heartbeat = task.LoopingCall(beat)
    heartbeat.start(0.01)
    changer = task.LoopingCall(lambda: [cap.data(p, C2S, b"x", 2.0) for p in range(1, 1001)])
    changer.start(0.02)  # every connection changes every tick: ~300 KB per message
    s = _get(port.getHost().port, "/api/events", rcvbuf=4096)  # and it never reads
    try:
        yield until(lambda: feed.dropped == 1, "the stalled client to be dropped", timeout=30)
        assert feed.clients == []
        assert max(lags) < 1.0, max(lags)
    finally:
        changer.stop()
        heartbeat.stop()
        s.close()
        feed.stop()
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_api_answers_are_bounded_and_say_there_is_more():
    from twisted.web.client import Agent, readBody

    from playground.web import site as site_mod

    cap = Capture()
    cap.opened(1, 1.0, "c", "l", "t")
    for i in range(3):  # three chunks of 700 KiB: the answer stops after the second
        cap.data(1, C2S if i % 2 == 0 else "s2c", b"x" * (700 * 1024), 2.0 + i)
    for i in range(7):
        cap.add_exchanges(1, 3.0, "notice", (f"n{i}", "", None, None, None))
    site, feed = _site(cap)
    port = yield _listen(site)
    base = f"http://127.0.0.1:{port.getHost().port}"
    agent = Agent(reactor)
    try:
        response = yield agent.request(b"GET", f"{base}/api/connections/1/stream".encode())
        first = json.loads((yield readBody(response)))
        assert [ch["n"] for ch in first["chunks"]] == [1, 2] and first["more"]
        assert 2 * 700 * 1024 >= site_mod.MAX_STREAM_ANSWER
        response = yield agent.request(b"GET", f"{base}/api/connections/1/stream?after=2".encode())
        rest = json.loads((yield readBody(response)))
        assert [ch["n"] for ch in rest["chunks"]] == [3] and not rest["more"]
        response = yield agent.request(b"GET", f"{base}/api/connections/1?limit=5".encode())
        one = json.loads((yield readBody(response)))
        assert [r["request"] for r in one["exchanges"]] == [f"n{i}" for i in range(5)]
        assert one["more"]
        response = yield agent.request(b"GET", f"{base}/api/connections/1?after=5".encode())
        one = json.loads((yield readBody(response)))
        assert [r["index"] for r in one["exchanges"]] == [6, 7] and not one["more"]
    finally:
        feed.stop()
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_an_integer_in_the_query_is_ascii_digits_named_as_typed():
    """``?after=x`` is a 400 that shows ``'x'``, as the other parameters' errors show their value
    (``slow: ... got 'abc'``), not Python's ``b'x'``. ``+5``, ``1_0``, `` 5`` (percent-encoded)
    are 400s too, as a connection id in the path is: int() alone read them as 5 and 10. A minus
    sign is still read, to be named out of range."""
    from twisted.web.client import Agent, readBody

    cap = Capture()
    cap.opened(1, 1.0, "c", "l", "t")
    site, feed = _site(cap)
    port = yield _listen(site)
    base = f"http://127.0.0.1:{port.getHost().port}"
    agent = Agent(reactor)

    def answer(path):
        response = yield agent.request(b"GET", f"{base}{path}".encode())
        body = json.loads((yield readBody(response)))
        return response.code, body.get("error")

    bad = [("/api/connections?since=x", "since", "x"),
           ("/api/connections?before=x", "before", "x"),
           ("/api/connections/1?after=x", "after", "x"),
           ("/api/connections/1/stream?after=x", "after", "x"),
           ("/api/connections?limit=%C3%A9", "limit", "é")]
    bad += [(f"/api/connections?limit={raw}", "limit", shown)
            for raw, shown in (("%2B5", "+5"), ("1_0", "1_0"), ("%205", " 5"), ("5%20", "5 "),
                               ("-", "-"), ("--1", "--1"))]
    try:
        for path, name, shown in bad:
            got = yield from answer(path)
            assert got == (400, f"{name}: expected an integer, got {shown!r}"), path
        got = yield from answer("/api/connections?since=-1")
        assert got == (400, "since: must be 0-4611686018427387904, got -1")
        got = yield from answer("/api/connections?limit=007")
        assert got == (200, None)
    finally:
        feed.stop()
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_a_connection_id_in_the_path_is_ascii_digits_only():
    """``/api/connections/+1`` (or `` 1``, ``0_1``, an Arabic-Indic one) names no connection,
    as ``/api/connections/+1.jsonl`` does not: int() alone took them all for connection 1, and
    a close for them closed connection 1."""
    from io import BytesIO

    from twisted.web.client import Agent, FileBodyProducer, readBody
    from twisted.web.http_headers import Headers

    cap = Capture()
    cap.opened(1, 1.0, "c", "l", "t")
    closed = []
    root = WebRoot(cap, reactor=reactor, feed=EventFeed(cap, reactor),
                   close=lambda pair, how: closed.append(pair) or True)
    site = server.Site(root)
    site.log = lambda request: None
    port = yield _listen(site)
    base = f"http://127.0.0.1:{port.getHost().port}/api/connections/"
    agent = Agent(reactor)
    try:
        response = yield agent.request(b"GET", f"{base}01".encode())
        assert response.code == 200
        yield readBody(response)
        for text in ("+1", "%201", "0_1", "%D9%A1", "+1.jsonl"):
            response = yield agent.request(b"GET", f"{base}{text}".encode())
            body = json.loads((yield readBody(response)))
            assert (response.code, body["status"]) == (404, 404), text
            response = yield agent.request(
                b"POST", f"{base}{text}/close".encode(),
                Headers({b"x-tcpplay-action": [b"close"]}),
                FileBodyProducer(BytesIO(b'{"how": "fin"}')))
            body = json.loads((yield readBody(response)))
            assert (response.code, body["status"]) == (404, 404), text
        assert closed == []
    finally:
        root.feed.stop()
        yield port.stopListening()
