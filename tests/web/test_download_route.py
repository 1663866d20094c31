"""The download routes on WebRoot, rendered in memory: headers, the evicted bytes, 404s."""

from __future__ import annotations

import json

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from playground.web.capture import C2S, Capture
from playground.web.export import connection_pcap
from playground.web.site import Slices, WebRoot

pytestmark = pytest.mark.memory


def get(root: WebRoot, name: str):
    request = DummyRequest([b"api", b"connections", name.encode()])
    body = root.render(request)
    if body is NOT_DONE_YET:  # a download: written a slice at a time
        assert request.finished
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


def test_a_big_download_is_made_a_slice_at_a_time():
    # the .pcap of a connection holding 60 MiB was built and written in one go: 0.45 s in which
    # no other client's bytes moved (an echo through the same proxy waited that long)
    capture = Capture(max_bytes=64 << 20)
    capture.opened(7, 1.0, "127.0.0.1:50000", "127.0.0.1:6479", "tcp:x:6379", "127.0.0.1:6379")
    for i in range(48):
        capture.data(7, C2S, bytes([65 + i % 26]) * 65536, 1.0 + i / 100)
    root = WebRoot(capture, reactor=MemoryReactorClock(), assets={})
    request = DummyRequest([b"api", b"connections", b"7.pcap"])
    calls = []
    write = request.write

    def counting(data):
        if not calls or calls[-1] is None:
            calls.append(0)
        calls[-1] += len(data)
        write(data)

    request.write = counting
    producer = []
    register = request.registerProducer

    def registering(p, streaming):
        assert not streaming
        producer.append(p)
        resume = p.resumeProducing

        def resumed():
            calls.append(None)  # a new slice
            resume()

        p.resumeProducing = resumed
        register(p, streaming)

    request.registerProducer = registering
    assert root.render(request) is NOT_DONE_YET and request.finished
    slices = [n for n in calls if n]
    assert len(slices) >= 10 and max(slices) <= Slices.SLICE + 70000
    body = b"".join(request.written)
    assert body == connection_pcap(capture.get(7), capture.stream(7))


def test_a_unix_socket_view_answers_any_host():
    # no browser connects to a socket: a reverse proxy in front of one passes its own Host
    from twisted.internet.address import UNIXAddress

    root = WebRoot(Capture(), reactor=MemoryReactorClock(), assets={})
    request = DummyRequest([b"api", b"connections"])
    request.requestHeaders.setRawHeaders(b"host", [b"tcpplay.example"])
    request.getHost = lambda: UNIXAddress(b"/run/tcpplay.sock")
    root.render(request)
    assert (request.responseCode or 200) == 200


def test_a_filter_on_a_connections_exchanges_reads_a_bounded_number_per_answer():
    # ?cmd=NOPE on a connection of 150000 exchanges read them all in one answer: 0.36 s in
    # which no other client's bytes moved; now MAX_SCAN_ROWS rows an answer, and "after" says
    # where the next one goes on
    from playground.web.site import MAX_SCAN_ROWS

    capture = Capture(max_bytes=64 << 20)
    capture.opened(7, 1.0, "127.0.0.1:50000", "127.0.0.1:6479", "tcp:x:6379", "127.0.0.1:6379")
    entries = [type("E", (), {"first": i + 1, "count": 1})() for i in range(5 * MAX_SCAN_ROWS)]
    described = []

    def describe(entry):
        described.append(entry.first)
        return [{"index": entry.first, "kind": "redis", "request": "PING" if entry.first < len(
            entries) else "GET k", "error": False, "latency": 0.001}]

    root = WebRoot(capture, reactor=MemoryReactorClock(), assets={}, describe=describe)
    real = capture.get(7)
    capture.get = lambda pair: type("C", (), {"id": 7, "exchanges": entries,
                                              "exchanges_evicted": 0,
                                              "summary": staticmethod(real.summary)})()
    after, answers, found = 0, 0, []
    while True:
        request = DummyRequest([b"api", b"connections", b"7"])
        request.args = {b"cmd": [b"GET"], b"after": [str(after).encode()]}
        described.clear()
        out = json.loads(root.render(request))
        answers += 1
        assert len(described) <= MAX_SCAN_ROWS
        found += [row["index"] for row in out["exchanges"]]
        after = out["after"]
        if not out["more"]:
            break
    assert found == [len(entries)] and answers >= 5
