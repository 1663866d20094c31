"""WebRoot rendered in memory: the download routes (headers, the evicted bytes and the gap they
leave in a pcap, 404s), which requests it answers (a loopback Host, a page's own and not another
site's, HEAD), and how much one connection's answer holds."""

from __future__ import annotations

import itertools
import json

import pytest
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from playground.decode.chain import Chain
from playground.web import site
from playground.web.capture import C2S, Capture, StreamEvicted
from playground.web.export import pcap_pieces
from playground.web.sink import WebSink
from playground.web.site import WebRoot
from tests.support.chain import pair
from tests.support.webexport import connection_jsonl, connection_pcap

pytestmark = pytest.mark.memory
SET = b"*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n"


class Request(DummyRequest):
    """A DummyRequest that takes a push producer (DummyRequest's own drives a pull producer
    in a loop) and says what it was told."""

    producer = None
    paused = 0

    def registerProducer(self, producer, streaming):
        assert streaming
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None


def get(root: WebRoot, name: str):
    """The answer to ``name``: a download comes in pieces over reactor turns (run here)."""
    request = Request([b"api", b"connections", name.encode()])
    body = root.render(request)
    if body is NOT_DONE_YET:
        for _ in range(10_000):
            if request.finished:
                break
            root.reactor.advance(0)
        assert request.finished and request.producer is None
        body = b"".join(request.written)
    return request, body


def header(request, name: bytes):
    values = request.responseHeaders.getRawHeaders(name)
    return values[-1] if values else None


def test_a_pcap_download_names_its_file_and_the_bytes_the_capture_evicted():
    capture = Capture(max_bytes=300)
    capture.opened(7, 1.0, "127.0.0.1:50000", "127.0.0.1:6479", "tcp:x:6379", "127.0.0.1:6379")
    capture.data(7, C2S, b"A" * 300, 1.1)
    capture.data(7, C2S, b"later", 1.2)
    root = WebRoot(capture, reactor=MemoryReactorClock(), assets={})
    request, body = get(root, "7.pcap")
    assert header(request, b"content-disposition") == b'attachment; filename="tcpplay-7.pcap"'
    assert header(request, b"x-tcpplay-evicted") == b"bytes c2s 0-299"
    assert b"later" in body and b"A" * 300 not in body
    request, body = get(root, "7.jsonl")
    assert header(request, b"content-disposition") == b'attachment; filename="tcpplay-7.jsonl"'
    assert json.loads(body.splitlines()[0])["type"] == "open"


def _segments(pcap: bytes) -> list[tuple[str, int, int, int]]:
    """``(direction, sequence number relative to its SYN's, flags, payload length)`` per TCP
    segment of a one-connection pcap (the client sends the first SYN)."""
    import io

    import dpkt

    out, isn, client = [], {}, None
    for _, frame in dpkt.pcap.Reader(io.BytesIO(pcap)):
        tcp = dpkt.ethernet.Ethernet(frame).data.data
        client = tcp.sport if client is None else client
        direction = C2S if tcp.sport == client else "s2c"
        isn.setdefault(direction, tcp.seq)
        out.append((direction, (tcp.seq - isn[direction]) % 2**32, tcp.flags, len(tcp.data)))
    return out


def test_a_pcap_of_a_stream_the_capture_evicted_shows_the_gap():
    # the file's sequence numbers began at the first byte the capture still had: saved, a
    # connection whose 4.7 MB of requests were evicted read in tshark as a client that sent
    # nothing (its FIN at Seq=1), the evicted bytes silently missing; now tshark says
    # "previous segment not captured" where they were
    capture = Capture(max_bytes=1000)
    capture.opened(7, 1.0, "127.0.0.1:50000", "127.0.0.1:6479", "tcp:x:6379", "127.0.0.1:6379")
    capture.data(7, C2S, b"A" * 600, 1.1)
    capture.data(7, "s2c", b"B" * 600, 1.2)  # the A's go
    capture.data(7, C2S, b"later", 1.3)
    capture.half_closed(7, "s2c", 1.4)
    capture.data(7, C2S, b"C" * 600, 1.5)  # the B's go
    capture.closed(7, 1.6, "client", "fin")
    c = capture.get(7)
    assert c.stream_evicted == {C2S: 600, "s2c": 600}
    _, body = get(WebRoot(capture, reactor=MemoryReactorClock(), assets={}), "7.pcap")
    segments = _segments(body)
    data = [(d, seq, n) for d, seq, flags, n in segments if n]
    assert data == [(C2S, 601, 5), (C2S, 606, 600)]  # 1 is the first byte after the SYN
    fins = [(d, seq) for d, seq, flags, n in segments if flags & 0x01]
    assert fins == [("s2c", 601), (C2S, 1206)]  # after the 600 evicted B's; the last C


def test_unknown_ids_are_json_404s():
    root = WebRoot(Capture(), reactor=MemoryReactorClock(), assets={})
    for name in ("8.pcap", "8.jsonl", "x.pcap", ".jsonl"):
        request, body = get(root, name)
        assert request.responseCode == 404 and json.loads(body)["status"] == 404, name


def test_ids_that_are_digits_only_to_unicode_are_404s_not_tracebacks():
    # '²'.isdigit() is True but int('²') fails; so do 5000 ASCII digits: both were a 500
    # "Processing Failed" with a traceback in the log
    root = WebRoot(Capture(), reactor=MemoryReactorClock(), assets={})
    for name in ("\u00b2.pcap", "\u00b2.jsonl", "9" * 5000 + ".pcap"):
        request, body = get(root, name)
        assert request.responseCode == 404 and json.loads(body)["status"] == 404, name[:8]


@pytest.mark.parametrize("host, status", [
    (b"evil.example:8478", 403), (b"127.0.0.1.evil.example", 403), (b"[::2]:8478", 403),
    (b"localhost.evil.example", 403), (b"127.0.0.1:8478", 200), (b"127.1.2.3", 200),
    (b"localhost:8478", 200), (b"LOCALHOST.", 200), (b"app.localhost:1", 200),
    (b"[::1]:8478", 200), (None, 200),
])
def test_without_a_token_only_a_loopback_host_is_answered(host, status):
    # a page whose name was re-pointed at 127.0.0.1 (DNS rebinding) read the capture and could
    # close connections, same-origin, from the tokenless view on loopback
    root = WebRoot(Capture(), reactor=MemoryReactorClock(), assets={})
    request = DummyRequest([b"api", b"connections"])
    if host is not None:
        request.requestHeaders.setRawHeaders(b"host", [host])
    body = root.render(request)
    assert (request.responseCode or 200) == status, body[:80]
    request = DummyRequest([b"api", b"connections"])  # with a token, the token decides
    request.requestHeaders.setRawHeaders(b"host", [b"evil.example"])
    request.args[b"token"] = [b"t"]
    root = WebRoot(Capture(), token="t", reactor=MemoryReactorClock(), assets={})
    root.render(request)
    assert (request.responseCode or 200) == 200


@pytest.mark.parametrize("path, site, mode, dest, status", [
    ([b"api", b"events"], b"cross-site", b"navigate", b"iframe", 403),
    ([b"api", b"connections", b"1"], b"cross-site", b"no-cors", b"image", 403),
    ([b"api", b"connections"], b"same-site", b"cors", b"empty", 403),  # another port's page
    ([b"api", b"connections", b"1.pcap"], b"cross-site", b"navigate", b"iframe", 403),
    ([], b"cross-site", b"navigate", b"iframe", 403),
    ([], b"cross-site", b"navigate", b"document", 200),  # a link that opens the view
    ([], b"none", b"navigate", b"document", 200),  # an address typed, a bookmark
    ([b"api", b"connections"], b"same-origin", b"cors", b"empty", 200),  # the view's own page
    ([b"api", b"connections"], None, None, None, 200),  # curl
])
def test_a_request_a_page_on_another_site_made_is_refused(path, site, mode, dest, status):
    # a page anywhere can have the browser ask the loopback view (only reading the answer is
    # refused to it): 40 frames of /api/events on names under .localhost held all 32 event
    # streams of the view, whose own page then said reconnecting…
    root = WebRoot(Capture(), reactor=MemoryReactorClock(), assets={"index.html": b"page"})
    request = DummyRequest(path)
    for name, value in ((b"sec-fetch-site", site), (b"sec-fetch-mode", mode),
                        (b"sec-fetch-dest", dest)):
        if value is not None:
            request.requestHeaders.setRawHeaders(name, [value])
    body = root.render(request)
    assert (request.responseCode or 200) == status, body[:80]
    assert root.feed.clients == []
    if status == 403:
        assert json.loads(body)["error"].startswith("a request from a page on another site")


def test_a_connections_answer_holds_a_bounded_text_and_says_there_is_more():
    # 5000 rows (the row limit) of SETs of 2 KB of binary key and value, each value cut at
    # --max-value and escaped \\xNN, were one answer of 11 MB, made in 0.52 s of the reactor
    # (the proxy's with --decode-inline, forwarding nothing meanwhile)
    capture = Capture()
    capture.opened(1, 1.0, "127.0.0.1:50000", "127.0.0.1:6479", "tcp:x:6379", "127.0.0.1:6379")
    request_text = "SET " + "\\xff" * 1000
    for _ in range(600):
        capture.add_exchanges(1, 2.0, "notice", (request_text, "+OK", None, None, None))
    root = WebRoot(capture, reactor=MemoryReactorClock(), assets={})
    seen, after, answers = [], 0, 0
    while True:
        request = DummyRequest([b"api", b"connections", b"1"])
        request.args[b"after"] = [str(after).encode()]
        body = root.render(request)
        answers += 1
        assert len(body) <= 2 * site.MAX_EXCHANGES_TEXT, len(body)  # a backslash is 2 in JSON
        one = json.loads(body)
        seen += [row["index"] for row in one["exchanges"]]
        after = one["next_after"]
        if not one["more"]:
            break
    assert seen == list(range(1, 601)) and answers > 2


def test_a_since_answer_holds_at_most_its_limit_and_says_there_is_more():
    # ?limit= was ignored with ?since=: an answer held every connection changed since, a
    # resync every connection of the capture (100,000 of them at --web-connections 100000)
    capture = Capture()
    for pair_id in range(1, 11):
        capture.opened(pair_id, 1.0, "127.0.0.1:40000", "127.0.0.1:6479", "tcp:x:6379")
    root = WebRoot(capture, reactor=MemoryReactorClock(), assets={})

    def ask(since: int) -> dict:
        request = DummyRequest([b"api", b"connections"])
        request.args.update({b"since": [str(since).encode()], b"limit": [b"3"]})
        return json.loads(root.render(request))

    seen, since = [], 2
    for _ in range(10):
        out = ask(since)
        assert len(out["connections"]) <= 3
        seen += [row["id"] for row in out["connections"]]
        since = out["seq"]
        if not out["more"]:
            break
    assert seen == list(range(3, 11)) and since == capture.seq
    first = ask(capture.seq + 5)  # from the future: a resync, a page at a time too
    assert first["resync"] and first["more"] and len(first["connections"]) == 3


def test_head_on_the_event_stream_is_its_headers_alone():
    # a HEAD of /api/events took one of the 32 event streams for as long as its connection
    # stayed: nothing is written to a HEAD's transport, so its client never looked stalled and
    # was never dropped, as one that does not read is
    root = WebRoot(Capture(), reactor=MemoryReactorClock(), assets={})
    request = Request([b"api", b"events"])
    request.method = b"HEAD"
    body = root.render(request)
    assert body == b"" and root.feed.clients == []
    assert header(request, b"content-type") == b"text/event-stream"


def test_a_unix_socket_view_answers_any_host():
    # no browser connects to a socket: a reverse proxy in front of one passes its own Host
    from twisted.internet.address import UNIXAddress

    root = WebRoot(Capture(), reactor=MemoryReactorClock(), assets={})
    request = DummyRequest([b"api", b"connections"])
    request.requestHeaders.setRawHeaders(b"host", [b"tcpplay.example"])
    request.getHost = lambda: UNIXAddress(b"/run/tcpplay.sock")
    root.render(request)
    assert (request.responseCode or 200) == 200


def turn(reactor: MemoryReactorClock) -> None:
    """One reactor turn: the calls due when it starts (``Clock.advance`` also runs those they
    schedule for now, which a real reactor leaves to its next turn)."""
    due = [call for call in reactor.getDelayedCalls() if call.getTime() <= reactor.seconds()]
    for call in due:
        reactor.calls.remove(call)
        call.called = True
        call.func(*call.args, **call.kw)


def _big(runs: int = 3000) -> WebSink:
    """A connection of ``runs`` pipelined runs of 16 SETs (as redis-benchmark -P 16 makes),
    stream included: 48,000 exchanges as JSON lines take ~150 ms to format."""
    web = WebSink(Capture())
    chain = Chain([web], pcap=web)
    chain.pair_opened(pair(), 0.0)
    for i in range(runs):
        chain.data(1, "c2s", SET * 16, 1.0 + i * 1e-4)
        chain.data(1, "s2c", b"+OK\r\n" * 16, 1.0 + i * 1e-4)
    web.flush()
    return web


@pytest.mark.parametrize("kind", ["jsonl", "pcap"])
def test_a_big_download_goes_out_in_pieces_over_reactor_turns(kind, monkeypatch):
    # before, the whole file was made in the request's turn (JSON lines of a full capture:
    # 5 s during which the proxy forwarded nothing). A tick ends after PIECES pieces here, not
    # after DOWNLOAD_TURN seconds (what a turn makes in 4 ms is the machine's speed)
    pieces = 8

    def turn_over(seconds):
        made = itertools.count(1)
        return lambda: next(made) >= pieces

    monkeypatch.setattr(site, "_turn_over", turn_over)
    web = _big()
    reactor = MemoryReactorClock()
    root = WebRoot(web.capture, reactor=reactor, assets={}, describe=web.rows)
    request = Request([b"api", b"connections", f"1.{kind}".encode()])
    assert root.render(request) is NOT_DONE_YET and request.written == []
    turns = []
    for _ in range(10_000):
        if request.finished:
            break
        before = len(request.written)
        turn(reactor)
        turns.append(len(request.written) - before)
    assert request.finished and request.producer is None
    assert len(turns) > 3 and max(turns) <= pieces  # no turn made more than its tick's share
    c = web.capture.get(1)
    whole = (connection_jsonl(c, web.rows) if kind == "jsonl"
             else connection_pcap(c, web.capture.stream(1)))
    assert b"".join(request.written) == whole


def test_a_download_waits_while_the_client_does_not_read_and_stops_when_it_goes():
    web = _big(300)
    reactor = MemoryReactorClock()
    root = WebRoot(web.capture, reactor=reactor, assets={}, describe=web.rows)
    request = Request([b"api", b"connections", b"1.jsonl"])
    root.render(request)
    turn(reactor)
    request.producer.pauseProducing()  # the transport's buffer is full
    written = len(request.written)
    for _ in range(20):
        turn(reactor)
    assert len(request.written) == written and not request.finished
    request.producer.resumeProducing()
    turn(reactor)
    assert len(request.written) > written
    request.processingFailed(Failure(ConnectionDone()))  # the client went
    written = len(request.written)
    for _ in range(20):
        reactor.advance(0)
    assert len(request.written) == written and not request.finished


def test_a_download_whose_piece_raises_is_cut_not_finished():
    web = _big(300)
    reactor = MemoryReactorClock()
    rows = iter(range(10))

    def describe(entry):  # the fifth entry's rows raise
        if next(rows, None) == 4:
            raise ValueError("a bug")
        return web.rows(entry)

    root = WebRoot(web.capture, reactor=reactor, assets={}, describe=describe)
    request = Request([b"api", b"connections", b"1.jsonl"])
    request.transport = StringTransport()
    root.render(request)
    for _ in range(100):
        reactor.advance(0)
    assert not request.finished and request.transport.disconnecting
    assert b"".join(request.written).count(b"\n") == 1 + 4 * 16  # open, four runs


def test_a_pcap_download_is_cut_where_the_capture_evicted_chunks_meanwhile():
    # the file is made window by window; chunks evicted between two windows cut it there
    # (a gap would be drawn as if the bytes had followed each other; a file ended there looked
    # whole)
    capture = Capture(max_bytes=64 * 1024)
    capture.opened(7, 1.0, "127.0.0.1:50000", "127.0.0.1:6479", "tcp:x:6379", "127.0.0.1:6379")
    for i in range(600):
        capture.data(7, C2S if i % 2 == 0 else "s2c", b"x%d" % i, 1.0 + i)
    whole = connection_pcap(capture.get(7), capture.stream(7))
    pieces = pcap_pieces(capture.get(7), capture.stream_windows(7, size=256))
    made = next(pieces) + next(pieces) + next(pieces)  # header, handshake, the first window
    assert whole.startswith(made) and len(made) < len(whole)
    for i in range(40):  # later reads: the oldest chunks are evicted
        capture.data(7, C2S, b"y" * 1500, 700.0 + i)
    assert capture.stream(7)[0].n > 257  # the next window's first chunk is gone
    with pytest.raises(StreamEvicted):
        next(pieces)


@pytest.mark.parametrize("whole", [False, True])
def test_a_pcap_download_the_capture_evicts_meanwhile_is_cut_not_finished(whole):
    # before, the transfer ended as if the file were whole (200, its last chunk sent): only a
    # part of the connection, nothing said so (the x-tcpplay-evicted header is of the start)
    capture = Capture(max_connections=1, max_bytes=256 * 1024)
    capture.opened(7, 1.0, "127.0.0.1:50000", "127.0.0.1:6479", "tcp:x:6379", "127.0.0.1:6379")
    for i in range(3000):
        capture.data(7, C2S if i % 2 == 0 else "s2c", b"x%d" % i, 1.0 + i)
    reactor = MemoryReactorClock()
    root = WebRoot(capture, reactor=reactor, assets={})
    request = Request([b"api", b"connections", b"7.pcap"])
    request.transport = StringTransport()
    assert root.render(request) is NOT_DONE_YET
    turn(reactor)  # the first pieces
    assert request.written and not request.finished
    if whole:  # the connection goes: closed, another takes its place
        capture.closed(7, 5000.0, "client", "fin")
        capture.opened(8, 1.0, "127.0.0.1:50001", "127.0.0.1:6479", "tcp:x:6379",
                       "127.0.0.1:6379")
        assert capture.get(7) is None
    else:  # its oldest chunks go, those the download has not sent among them
        for i in range(300):
            capture.data(7, C2S, b"y" * 1500, 6000.0 + i)
    # the cooperator's ticks are timed (what a tick sends depends on the machine's load): turn
    # until the download ends one way or the other, in a bounded number of turns
    for _ in range(100_000):
        if request.finished or request.transport.disconnecting:
            break
        reactor.advance(0)
    assert not request.finished and request.transport.disconnecting


@pytest.mark.parametrize("kind", ["jsonl", "pcap"])
def test_a_head_of_a_download_is_its_headers_alone(kind):
    # before, PieceWriter wrote through the request's write taken before the first piece,
    # past twisted.web's HEAD override: the headers, then the file but its first piece, raw,
    # on a keep-alive connection (the next answer on it read as garbage)
    from twisted.internet.address import IPv4Address
    from twisted.web import server

    web = _big(300)
    reactor = MemoryReactorClock()
    site = server.Site(WebRoot(web.capture, reactor=reactor, assets={}, describe=web.rows))
    proto = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(f"HEAD /api/connections/1.{kind} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                       "GET /api/connections/9.pcap HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    for _ in range(2000):
        turn(reactor)
    answers = transport.value().split(b"HTTP/1.1 ")
    assert len(answers) == 3, transport.value()[:300]  # the HEAD's, then the 404's
    head, _, body = answers[1].partition(b"\r\n\r\n")
    assert head.startswith(b"200 ") and f"tcpplay-1.{kind}".encode() in head
    assert body == b""
    assert answers[2].startswith(b"404 ")
    proto.connectionLost(Failure(ConnectionDone()))


def test_a_jsonl_download_the_capture_evicts_meanwhile_is_cut_not_finished():
    # the entries are read from the store window by window, not taken at the start: a paused
    # download kept every entry alive after the capture evicted it (a capture's worth a
    # download); one whose unsent entries go is cut, as a pcap's
    web = _big(3000)
    capture = web.capture
    reactor = MemoryReactorClock()
    root = WebRoot(capture, reactor=reactor, assets={}, describe=web.rows)
    request = Request([b"api", b"connections", b"1.jsonl"])
    request.transport = StringTransport()
    assert root.render(request) is NOT_DONE_YET
    turn(reactor)
    request.producer.pauseProducing()  # a client that stopped reading
    written = b"".join(request.written).count(b"\n")
    c = capture.get(1)
    # the capture's bound takes the oldest: its chunks, then entries past those written
    capture.max_bytes = capture.bytes // 8
    capture.data(1, C2S, b"x", 2.0)
    assert c.exchanges_evicted > written + 2000
    request.producer.resumeProducing()
    for _ in range(200):
        turn(reactor)
    assert not request.finished and request.transport.disconnecting


def test_a_jsonl_download_of_a_connection_that_grows_is_its_rows_of_the_start_once_each():
    web = WebSink(Capture())
    chain = Chain([web], pcap=web)
    chain.pair_opened(pair(), 0.0)
    ping, pong = b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"
    for i in range(1000):  # unpipelined: rows of one growing entry, then sealed ones
        chain.data(1, "c2s", ping, 1.0 + i)
        chain.data(1, "s2c", pong, 1.0 + i)
    web.flush()
    reactor = MemoryReactorClock()
    root = WebRoot(web.capture, reactor=reactor, assets={}, describe=web.rows)
    whole = connection_jsonl(web.capture.get(1), web.rows)
    request = Request([b"api", b"connections", b"1.jsonl"])
    root.render(request)
    for i in range(10_000):
        if request.finished:
            break
        chain.data(1, "c2s", ping, 2000.0 + i)  # it grows between the pieces
        chain.data(1, "s2c", pong, 2000.0 + i)
        web.flush()
        turn(reactor)
    assert request.finished
    assert b"".join(request.written) == whole
