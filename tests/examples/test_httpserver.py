"""HTTP responder: endpoints (pure), the adapter on StringTransport + MemoryReactorClock, then real
sockets on loopback (curl, h11 as a strict client, raw pipelining, 500 connections, twistd)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import h11
import pytest
import pytest_twisted
from twisted.internet import defer, error, threads, utils
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import formatEvent
from twisted.python import failure, usage

from playground.examples.http import server as httpserver
from playground.examples.http.app import AppLimits, HttpApp
from playground.examples.http.parser import HttpRequestParser, RequestHead
from tests.support.net import free_port, read_to_close
from tests.support.processes import need
from tests.support.waiting import until

PEER = IPv4Address("TCP", "127.0.0.1", 40001)


# --- helpers ---------------------------------------------------------------------------------


def head_of(raw: bytes) -> RequestHead:
    return HttpRequestParser().feed(raw, 0.0)[0]


def app_call(raw: bytes, body: bytes = b"", app=None):
    return (app or HttpApp()).respond(head_of(raw), body, "10.0.0.1")


def make(**kw):
    clock = MemoryReactorClock()
    factory = httpserver.HttpFactory(clock, **kw)
    return factory, clock


def connect(factory, addr=PEER):
    proto = factory.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr)
    proto.makeConnection(transport)
    return proto, transport


def lose(proto):
    proto.connectionLost(failure.Failure(error.ConnectionDone()))


def responses(data: bytes, methods=None) -> list[tuple[h11.Response, bytes]]:
    """Parse server output strictly with h11 (a client that sent ``methods``, GET by default)."""
    out = []
    c = h11.Connection(h11.CLIENT)
    c.receive_data(data)
    methods = list(methods or [])
    while True:
        method = methods.pop(0) if methods else "GET"
        if c.our_state is h11.DONE:
            c.start_next_cycle()
        c.send(h11.Request(method=method, target="/", headers=[("Host", "h")]))
        c.send(h11.EndOfMessage())
        resp, body = None, b""
        while True:
            ev = c.next_event()
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                return out
            if isinstance(ev, h11.InformationalResponse):
                continue
            if isinstance(ev, h11.Response):
                resp = ev
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                out.append((resp, body))
                break
            elif isinstance(ev, h11.ConnectionClosed):
                return out
        if c.their_state is h11.MUST_CLOSE:
            return out


def req(target="/get", method="GET", headers=b"", body=b"", version=b"HTTP/1.1"):
    if body and b"content-length" not in headers.lower() and b"chunked" not in headers.lower():
        headers += b"Content-Length: %d\r\n" % len(body)
    return (method.encode() + b" " + target.encode() + b" " + version + b"\r\nHost: test\r\n"
            + headers + b"\r\n" + body)


# --- endpoints (pure) ------------------------------------------------------------------------


@pytest.mark.pure
def test_get_echoes_args_headers_origin_url():
    r = app_call(req("/get?a=1&a=2&b=", headers=b"User-Agent: t\r\n"))
    assert r.status == 200 and dict(r.headers)["Content-Type"] == "application/json"
    data = json.loads(r.body)
    assert data == {"args": {"a": ["1", "2"], "b": ""},
                    "headers": {"Host": "test", "User-Agent": "t"},
                    "origin": "10.0.0.1", "url": "http://test/get?a=1&a=2&b="}


@pytest.mark.pure
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_body_methods(method):
    path = "/" + method.lower()
    r = app_call(req(path, method, b"Content-Type: application/json\r\n", b'{"x": [1]}'),
                 b'{"x": [1]}')
    data = json.loads(r.body)
    assert data["json"] == {"x": [1]} and data["data"] == '{"x": [1]}' and data["form"] == {}
    r = app_call(req(path, "GET"))
    assert r.status == 405 and dict(r.headers)["Allow"] == method


@pytest.mark.pure
def test_form_binary_and_anything():
    body = b"a=1&b=two+words&a=3"
    r = app_call(req("/post", "POST", b"Content-Type: application/x-www-form-urlencoded\r\n",
                     body), body)
    assert json.loads(r.body)["form"] == {"a": ["1", "3"], "b": "two words"}
    r = app_call(req("/post", "POST", body=b"\xff\x00"), b"\xff\x00")
    assert json.loads(r.body)["data"] == "data:application/octet-stream;base64,/wA="
    r = app_call(req("/anything/x/y?q=1", "PROPFIND"))
    data = json.loads(r.body)
    assert data["method"] == "PROPFIND" and data["args"] == {"q": "1"}
    assert json.loads(app_call(req("/anything")).body)["url"] == "http://test/anything"


def _gathering_copies(monkeypatch, raw: bytes, body: bytes):
    """Answers ``raw`` (with ``body``) and counts the work of gathering a repeated name's values:
    after each ``name=value`` pair the reader takes (``parse_qsl`` watched), a list of values it
    holds (in a dict among its locals) that is not the list it held for that name after the pair
    before is a copy, of every value but the newest. Returns the answer, the values copied, and
    the values in the longest list seen (the watch saw the gathering: not 0)."""
    import sys

    from playground.examples.http import app as app_module

    parse_qsl = app_module.parse_qsl
    held: dict = {}  # name -> its list of values after the last pair
    counts = {"copied": 0, "longest": 0}

    def watched(query, **kwargs):
        for pair in parse_qsl(query, **kwargs):
            yield pair
            reader = sys._getframe(1).f_locals  # the frame reading the pairs, this one done
            for fields in [v for v in reader.values() if isinstance(v, dict)]:
                for name, values in fields.items():
                    if type(values) is list:
                        if name in held and held[name] is not values:
                            counts["copied"] += len(values) - 1
                        held[name] = values
                        counts["longest"] = max(counts["longest"], len(values))

    monkeypatch.setattr(app_module, "parse_qsl", watched)
    answer = HttpApp().respond(head_of(raw), body, "10.0.0.1")
    return answer, counts["copied"], counts["longest"]


@pytest.mark.pure
@pytest.mark.parametrize("where", ["form", "query"])
def test_a_form_repeating_one_name_gathers_its_values_without_copying_them(monkeypatch, where):
    # each repeat of a name copied the list of its values so far: 200,000 repeats (400 KB,
    # under --max-body) held the reactor for 10 s, 1 MiB of them for over a minute. Counted,
    # not timed: 2,000 repeats copied 1,998,999 values (n * (n - 1) / 2 - 1); now none is
    # copied, at most one per repeat allowed.
    n = 2000
    fields = b"&".join([b"a="] * n)
    if where == "form":
        raw = req("/post", "POST", b"Content-Type: application/x-www-form-urlencoded\r\n",
                  fields)
        answer, copied, longest = _gathering_copies(monkeypatch, raw, fields)
    else:
        answer, copied, longest = _gathering_copies(monkeypatch, req("/get?" + fields.decode()),
                                                    b"")
    assert answer.status == 200
    assert json.loads(answer.body)["form" if where == "form" else "args"] == {"a": [""] * n}
    assert longest == n
    assert copied <= n


def _strict_json(text: bytes):
    """JSON as RFC 8259 has it: no NaN, Infinity or -Infinity (json.loads takes them)."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.pure
@pytest.mark.parametrize("body", [b"NaN", b"[1, Infinity]", b'{"x": -Infinity}', b"1e400",
                                  b"[-1e999]"])
def test_a_body_json_cannot_hold_is_data_and_the_answer_stays_json(body):
    # json.loads reads NaN, Infinity and 1e400 (inf); echoed back they made the answer
    # '"json": NaN', which strict JSON parsers (JavaScript's, Go's) refuse
    r = app_call(req("/post", "POST", body=body), body)
    data = _strict_json(r.body)
    assert data["json"] is None and data["data"] == body.decode()
    assert _strict_json(app_call(req("/post", "POST", body=b"[1.5, 2]"), b"[1.5, 2]").body)[
        "json"] == [1.5, 2]


@pytest.mark.pure
def test_small_endpoints():
    ua = b"User-Agent: probe/1\r\n"
    assert json.loads(app_call(req("/user-agent", headers=ua)).body) == {"user-agent": "probe/1"}
    assert json.loads(app_call(req("/ip")).body) == {"origin": "10.0.0.1"}
    assert json.loads(app_call(req("/headers", headers=ua)).body)["headers"]["User-Agent"] == \
        "probe/1"
    u = json.loads(app_call(req("/uuid")).body)["uuid"]
    assert len(u) == 36 and u[14] == "4"
    index = app_call(req("/")).body.decode()
    for path in ("/get", "/post", "/anything", "/status/", "/delay/", "/bytes/", "/stream/",
                 "/drip", "/redirect/", "/uuid", "/echo", "/headers", "/ip", "/user-agent"):
        assert path in index
    raw = req("/echo", "POST", body=b"hi there")
    assert app_call(raw, b"hi there").body == raw


@pytest.mark.pure
def test_status_bytes_redirect_delay_stream_drip():
    app = HttpApp(AppLimits(max_bytes=100, max_stream=3, max_delay=2))
    assert app_call(req("/status/418"), app=app).status == 418
    assert app_call(req("/status/204", "POST"), app=app).status == 204
    assert app_call(req("/status/99"), app=app).status == 400
    assert app_call(req("/status/abc"), app=app).status == 400
    assert len(app_call(req("/bytes/10"), app=app).body) == 10
    assert len(app_call(req("/bytes/1000000"), app=app).body) == 100  # capped
    seeded = [app_call(req("/bytes/16?seed=7"), app=app).body for _ in range(2)]
    assert seeded[0] == seeded[1]
    r = app_call(req("/redirect/3"), app=app)
    assert r.status == 302 and dict(r.headers)["Location"] == "/redirect/2"
    assert dict(app_call(req("/redirect/1"), app=app).headers)["Location"] == "/get"
    assert app_call(req("/redirect/0"), app=app).status == 400
    assert app_call(req("/delay/1.5"), app=app).delay == 1.5
    assert app_call(req("/delay/60"), app=app).delay == 2  # capped
    assert app_call(req("/delay/nan"), app=app).status == 400
    r = app_call(req("/stream/10"), app=app)
    assert r.chunked and [json.loads(p)["id"] for p in r.pieces] == [0, 1, 2]
    r = app_call(req("/drip?duration=1&numbytes=4&delay=0.5&code=201"), app=app)
    assert (r.status, r.delay, r.interval, b"".join(r.pieces)) == (201, 0.5, 0.25, b"****")
    assert app_call(req("/drip?numbytes=0"), app=app).status == 400


@pytest.mark.pure
@pytest.mark.parametrize("target", [
    "/bytes/1_000", "/bytes/+5", "/bytes/%205", "/bytes/%D9%A3", "/stream/0_1", "/redirect/%2B2",
    "/status/2_00", "/delay/1_0", "/delay/1e1", "/delay/+1", "/delay/%201",
    "/drip?numbytes=1_0", "/drip?duration=1e1", "/drip?code=+200",
])
def test_numbers_in_urls_are_ascii_digits_only(target):
    # int() and float() also read '1_000', '+5', ' 5', '\u0663' (Arabic-Indic three) and '1e1';
    # a number in a URL is digits (and one decimal point), as playground.common.digits says
    assert app_call(req(target)).status == 400


@pytest.mark.pure
def test_numbers_in_urls_past_every_cap_are_capped():
    app = HttpApp(AppLimits(max_bytes=100, max_delay=2))
    assert len(app_call(req("/bytes/" + "9" * 30), app=app).body) == 100
    assert app_call(req("/delay/" + "9" * 400), app=app).status == 400  # inf as a float
    assert app_call(req("/delay/.5"), app=app).delay == 0.5


@pytest.mark.pure
@pytest.mark.parametrize("authority", ["[zz]", "[1.2.3.4]", "[v1.x]", "[::1]:80", "x:"])
def test_any_absolute_form_the_parser_reads_is_routed(authority):
    # urlsplit refuses some bracketed hosts the URI grammar allows ('[1.2.3.4]', '[zz]'):
    # respond raised ValueError, a 500 and a logged traceback
    r = app_call(req(f"http://{authority}/get?a=1"))
    assert r.status == 200 and json.loads(r.body)["args"] == {"a": "1"}
    assert app_call(req(f"http://{authority}?b=2", "HEAD")).status == 200  # the index, "/"


@pytest.mark.pure
def test_routing_errors():
    assert app_call(req("/nope")).status == 404
    assert app_call(req("/get", "POST", body=b"x")).status == 405
    r = app_call(req("/get", "DELETE"))
    assert dict(r.headers)["Allow"] == "GET, HEAD"
    assert app_call(req("/status")).status == 404
    assert app_call(req("http://example.test/get?z=1")).status == 200
    assert json.loads(app_call(req("http://example.test/get?z=1")).body)["args"] == {"z": "1"}
    assert app_call(req("*", "OPTIONS")).status == 200
    app = HttpApp()
    assert app.wants_body(head_of(req("/post", "POST", body=b"x")))
    assert not app.wants_body(head_of(req("/get", "POST", body=b"x")))
    assert not app.wants_body(head_of(req("/missing", "POST", body=b"x")))


@pytest.mark.pure
@pytest.mark.parametrize("target", ["example.test:443", "/anything", "/status/200", "/echo"])
def test_connect_is_not_implemented(target):
    # a 2xx answer to CONNECT opens a tunnel for the client, and may not carry Content-Length
    # (RFC 9110 9.3.6): the responder is no proxy, so CONNECT gets 501 on every path
    r = app_call(req(target, "CONNECT"))
    assert r.status == 501 and b"CONNECT" in r.body


@pytest.mark.memory
@pytest.mark.parametrize("depth", [400, 990, 1000, 5000, 100_000])
def test_deeply_nested_json_is_shown_as_data_not_a_500(depth, logged):
    # json.loads raises RecursionError (not a ValueError) past the interpreter's depth: that
    # was a 500 and a traceback in the log for every such request
    factory, _clock = make()
    proto, t = connect(factory)
    body = b"[" * depth + b"]" * depth
    proto.dataReceived(req("/post", "POST", body=body))
    ((resp, data),) = responses(t.value())
    assert resp.status_code == 200 and json.loads(data)["data"] == body.decode()
    assert not [e for e in logged if e.get("log_failure")]


# --- adapter: StringTransport + MemoryReactorClock -------------------------------------------


@pytest.mark.memory
def test_simple_exchange_and_framing_headers():
    factory, clock = make()
    clock.advance(784111777)
    proto, t = connect(factory)
    proto.dataReceived(req("/get"))
    ((resp, body),) = responses(t.value())
    assert resp.status_code == 200
    hdrs = dict(resp.headers)
    assert hdrs[b"server"] == b"tcpplay" and hdrs[b"date"] == b"Sun, 06 Nov 1994 08:49:37 GMT"
    assert int(hdrs[b"content-length"]) == len(body)
    assert json.loads(body)["url"] == "http://test/get"
    assert not t.disconnecting


@pytest.mark.memory
def test_head_has_get_headers_and_no_body():
    factory, _ = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/get") + req("/get", "HEAD") + req("/stream/2", "HEAD"))
    (get, g_body), (head, h_body), (stream, s_body) = responses(t.value(), ["GET", "HEAD", "HEAD"])
    assert h_body == b"" and s_body == b""
    assert dict(head.headers)[b"content-length"] == dict(get.headers)[b"content-length"]
    assert dict(stream.headers)[b"transfer-encoding"] == b"chunked"


@pytest.mark.memory
def test_pipelining_order_with_a_delayed_first_response():
    factory, clock = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/delay/2") + req("/get?n=2") + req("/uuid"))
    assert t.value() == b""  # the delayed first holds everything back
    clock.advance(1.9)
    assert t.value() == b""
    clock.advance(0.1)
    got = responses(t.value())
    assert [json.loads(b).get("url", "uuid") for _, b in got] == [
        "http://test/delay/2", "http://test/get?n=2", "uuid"]


@pytest.mark.memory
def test_delays_overlap_but_answers_keep_order():
    factory, clock = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/delay/2") + req("/delay/1"))
    clock.advance(1)
    assert t.value() == b""
    clock.advance(1)
    assert [json.loads(b)["url"] for _, b in responses(t.value())] == [
        "http://test/delay/2", "http://test/delay/1"]


@pytest.mark.memory
def test_one_write_per_batch():
    factory, _ = make()
    proto, t = connect(factory)
    writes = []
    original = t.write
    t.write = lambda data: (writes.append(data), original(data))
    proto.dataReceived(req("/get") * 5)
    assert len(writes) == 1 and len(responses(writes[0])) == 5


@pytest.mark.memory
def test_pipeline_limit_holds_reading_and_resumes():
    factory, clock = make(max_pipeline=2)
    proto, t = connect(factory)
    proto.dataReceived(req("/delay/1") * 2 + req("/get") * 3)
    assert len(proto.queue) == 2 and proto.parser.held
    assert t.producerState == "paused"
    clock.advance(1)
    got = responses(t.value())
    assert len(got) == 5 and [r.status_code for r, _ in got] == [200] * 5
    assert t.producerState == "producing" and not proto.parser.held


@pytest.mark.memory
def test_write_backpressure_stops_responses():
    factory, _ = make()
    proto, t = connect(factory)
    proto.pauseProducing()  # the transport's buffer is full
    assert t.producerState == "paused"
    proto.dataReceived(req("/get"))
    assert t.value() == b""
    proto.resumeProducing()
    assert len(responses(t.value())) == 1 and t.producerState == "producing"


@pytest.mark.memory
def test_responses_made_ahead_are_bounded_for_a_client_that_does_not_read():
    # 32 pipelined /bytes/1048576 from a client whose window is full: each response used to be
    # made as its request was read, 32 MiB held by one connection (10 MiB each: 320 MiB)
    factory, _ = make()
    proto, t = connect(factory)
    proto.pauseProducing()  # the transport's buffer is full
    proto.dataReceived(req("/bytes/1048576?seed=1") * 32)
    made = sum(len(s.response.body) for s in proto.queue if s.response is not None)
    assert len(proto.queue) == 32 and made <= 2 << 20  # MAX_AHEAD (1 MiB) and one more
    proto.resumeProducing()  # each of the rest is made when its turn comes, in order
    got = responses(t.value())
    assert [r.status_code for r, _ in got] == [200] * 32
    assert {b for _, b in got} == {got[0][1]} and len(got[0][1]) == 1 << 20
    assert not proto.queue and proto._ahead == 0


@pytest.mark.memory
def test_request_bodies_read_ahead_are_bounded():
    # 31 bodies of 256 kB behind a /delay: each was read as it came, 7.75 MiB a connection
    # (1 MiB bodies: 31 MiB a connection, 31 GB at the default --max-connections 1000)
    factory, clock = make()
    proto, t = connect(factory)
    body = b"b" * 256_000
    data = req("/delay/1") + req("/anything", "POST", body=body) * 31
    fed = 0

    def read():  # as the transport reads: 64 KiB at a time, until it is paused
        nonlocal fed
        while t.producerState == "producing" and fed < len(data):
            fed += 65536
            proto.dataReceived(data[fed - 65536:fed])

    read()
    held = sum(len(p) for s in proto.queue for p in s.parts) + sum(
        len(s.response.body) for s in proto.queue if s.response is not None)
    assert held <= (1 << 20) + len(body) + 4096  # MAX_AHEAD and the body being read
    assert t.producerState == "paused"  # no more reading meanwhile
    for _ in range(200):  # each answer lets the next requests in
        clock.advance(1)
        read()
    got = responses(t.value(), ["GET"] + ["POST"] * 31)
    assert [r.status_code for r, _ in got] == [200] * 32
    assert all(len(json.loads(b)["data"]) == len(body) for _, b in got[1:])
    assert not proto.queue and proto._bodies == 0 and proto._ahead == 0


@pytest.mark.memory
def test_client_that_never_reads_is_aborted():
    factory, clock = make(idle_timeout=10)
    proto, t = connect(factory)
    proto.dataReceived(req("/get"))
    proto.pauseProducing()  # the transport's buffer filled and does not drain
    clock.advance(9)
    assert not t.disconnecting
    clock.advance(1)
    assert t.disconnected  # aborted


@pytest.mark.memory
def test_header_timeout_slowloris():
    factory, clock = make(header_timeout=5)
    proto, t = connect(factory)
    proto.dataReceived(b"GET /get HTTP/1.1\r\nHo")
    for _ in range(4):  # trickling bytes does not extend the deadline
        clock.advance(1)
        proto.dataReceived(b"s")
    assert t.value() == b""
    clock.advance(1)
    ((resp, body),) = responses(t.value())
    assert resp.status_code == 408 and b"5s" in body
    assert t.disconnecting


@pytest.mark.memory
def test_each_head_gets_its_own_header_deadline():
    factory, clock = make(header_timeout=2, keepalive_timeout=0)
    proto, t = connect(factory)
    one = req("/get")
    proto.dataReceived(one[:10])
    for _ in range(6):  # always a partial head buffered, but every head completes in time
        clock.advance(1.5)
        proto.dataReceived(one[10:] + one[:10])
    assert not t.disconnecting and len(responses(t.value())) == 6


@pytest.mark.memory
def test_header_timeout_on_a_silent_connection():
    factory, clock = make(header_timeout=2)
    proto, t = connect(factory)
    clock.advance(2)
    assert responses(t.value())[0][0].status_code == 408 and t.disconnecting


@pytest.mark.memory
def test_keepalive_timeout_closes_quietly():
    factory, clock = make(keepalive_timeout=3, header_timeout=1)
    proto, t = connect(factory)
    proto.dataReceived(req("/get"))
    n = len(t.value())
    clock.advance(2.9)
    assert not t.disconnecting
    proto.dataReceived(req("/get"))  # activity starts a new idle period
    clock.advance(2.9)
    assert not t.disconnecting
    clock.advance(0.2)
    assert t.disconnecting and len(responses(t.value())) == 2 and len(t.value()) == 2 * n


@pytest.mark.memory
def test_empty_lines_between_requests_do_not_extend_the_keepalive_timeout():
    # RFC 9112 2.2 lets a server skip empty lines before a request line; they are not a
    # request, so a client sending one now and then must not hold the connection forever
    factory, clock = make(keepalive_timeout=3, header_timeout=1)
    proto, t = connect(factory)
    proto.dataReceived(req("/get"))
    for _ in range(5):
        clock.advance(1)
        proto.dataReceived(b"\r\n")
    assert t.disconnecting and len(responses(t.value())) == 1


@pytest.mark.memory
def test_body_idle_timeout():
    factory, clock = make(idle_timeout=4)
    proto, t = connect(factory)
    proto.dataReceived(req("/post", "POST", b"Content-Length: 10\r\n") + b"abc")
    clock.advance(3)
    proto.dataReceived(b"def")  # progress resets the idle timer
    clock.advance(3)
    assert t.value() == b""
    clock.advance(1)
    assert responses(t.value())[0][0].status_code == 408 and t.disconnecting


@pytest.mark.memory
def test_body_timeout_trickle():
    # Content-Length: 1000 sent one byte a second: every byte is progress for the idle timer,
    # but the whole body has a deadline from the end of the head
    factory, clock = make(body_timeout=5, idle_timeout=4)
    proto, t = connect(factory)
    proto.dataReceived(req("/post", "POST", b"Content-Length: 1000\r\n"))
    for _ in range(4):
        clock.advance(1)
        proto.dataReceived(b"x")
    clock.advance(0.9)
    assert t.value() == b"" and not t.disconnecting
    clock.advance(0.1)
    ((resp, body),) = responses(t.value())
    assert resp.status_code == 408 and b"body not complete within 5s" in body
    assert (b"connection", b"close") in resp.headers and t.disconnecting


@pytest.mark.memory
def test_body_timeout_is_per_request_and_a_body_in_time_passes():
    factory, clock = make(body_timeout=3, keepalive_timeout=0)
    proto, t = connect(factory)
    for _ in range(3):  # each body takes 2.5 s: within its own deadline, over 3 s in total
        proto.dataReceived(req("/post", "POST", b"Content-Length: 5\r\n"))
        for c in b"hello":
            clock.advance(0.5)
            proto.dataReceived(bytes([c]))
    assert not t.disconnecting
    rs = responses(t.value(), ["POST"] * 3)
    assert [r.status_code for r, _ in rs] == [200] * 3
    assert all(json.loads(b)["data"] == "hello" for _, b in rs)


@pytest.mark.memory
def test_body_timeout_chunked_and_zero_means_never():
    factory, clock = make(body_timeout=2)
    proto, t = connect(factory)
    proto.dataReceived(req("/post", "POST", b"Transfer-Encoding: chunked\r\n"))
    for _ in range(3):
        proto.dataReceived(b"1\r\nx\r\n")
        clock.advance(0.9)
    assert responses(t.value())[0][0].status_code == 408 and t.disconnecting
    factory, clock = make(body_timeout=0, idle_timeout=2)
    proto, t = connect(factory)
    proto.dataReceived(req("/post", "POST", b"Content-Length: 100\r\n"))
    for _ in range(60):
        clock.advance(1.5)
        proto.dataReceived(b"x")
    assert t.value() == b"" and not t.disconnecting


@pytest.mark.memory
def test_body_timeout_starts_at_100_continue():
    # the client sends nothing until 100 Continue, which waits behind a delayed response
    factory, clock = make(body_timeout=3, idle_timeout=0)
    proto, t = connect(factory)
    proto.dataReceived(req("/delay/5") + req(
        "/post", "POST", b"Expect: 100-continue\r\nContent-Length: 2\r\n"))
    clock.advance(5)
    assert t.value().endswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    clock.advance(2)
    proto.dataReceived(b"ok")
    rs = responses(t.value().replace(b"HTTP/1.1 100 Continue\r\n\r\n", b""), ["GET", "POST"])
    assert [r.status_code for r, _ in rs] == [200, 200] and not t.disconnecting


@pytest.mark.memory
def test_expect_100_continue():
    factory, _ = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/post", "POST", b"Expect: 100-continue\r\nContent-Length: 5\r\n"))
    assert t.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    proto.dataReceived(b"hello")
    ((resp, body),) = responses(t.value(), ["POST"])
    assert resp.status_code == 200 and json.loads(body)["data"] == "hello"


@pytest.mark.memory
def test_expect_100_continue_waits_for_its_turn():
    factory, clock = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/delay/1") + req("/put", "PUT",
                                              b"Expect: 100-continue\r\nContent-Length: 2\r\n"))
    assert t.value() == b""
    clock.advance(1)
    assert t.value().endswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    proto.dataReceived(b"ok")
    got = responses(t.value(), ["GET", "PUT"])
    assert [r.status_code for r, _ in got] == [200, 200] and json.loads(got[1][1])["data"] == "ok"


@pytest.mark.memory
def test_expect_100_continue_refused_when_the_body_is_not_wanted():
    factory, _ = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/nowhere", "POST", b"Expect: 100-continue\r\nContent-Length: 5\r\n"))
    assert b"100 Continue" not in t.value()
    ((resp, _),) = responses(t.value(), ["POST"])
    assert resp.status_code == 404 and dict(resp.headers)[b"connection"] == b"close"
    assert t.disconnecting


@pytest.mark.memory
def test_expect_too_large_is_413_without_100():
    factory, _ = make(max_body=4)
    proto, t = connect(factory)
    proto.dataReceived(req("/post", "POST", b"Expect: 100-continue\r\nContent-Length: 5\r\n"))
    assert t.value().startswith(b"HTTP/1.1 413 ") and t.disconnecting


@pytest.mark.memory
@pytest.mark.parametrize(
    "data,status",
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"y" * 20000, 431),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
         400),
        (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: h\r\nExpect: tea\r\n\r\n", 417),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # TLS on a plain port
        (b"GET\x0b/get HTTP/1.1\r\nHost: h\r\n\r\n", 400),  # words split by SP only
        (b"GET /get HTTP/1.1\r\nHost: h\r\nX-A: a\x0cb\r\n\r\n", 400),
    ],
)
def test_errors_are_answered_then_closed(data, status):
    factory, _ = make()
    proto, t = connect(factory)
    proto.dataReceived(GOOD := req("/get"))
    proto.dataReceived(data)
    got = responses(t.value())
    assert [r.status_code for r, _ in got] == [200, status]
    assert dict(got[1][0].headers)[b"connection"] == b"close"
    assert t.disconnecting
    n = len(t.value())
    proto.dataReceived(GOOD)  # ignored after the error
    assert len(t.value()) == n


@pytest.mark.memory
@pytest.mark.parametrize(
    "data,status",
    [
        (b"HEAD /" + b"a" * 9000, 414),  # the line not yet ended
        (b"HEAD /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
        (b"HEAD / HTTP/1.1\r\nHost: h\r\nX: " + b"y" * 20000, 431),
        (b"HEAD / HTTP/1.1\r\nHost: h\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
        (b"HEAD / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n", 413),
        # over --max-body in the chunked body: the head was read
        (b"HEAD / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n", 413),
        (b"HEAD / HTTP/1.1\r\n\r\n", 400),
    ],
)
def test_an_error_answered_to_a_head_request_carries_no_body(data, status):
    """RFC 9110 9.3.2: a response to HEAD carries no content, an error's neither; its text
    came after the head, bytes a client reads as the start of its next response."""
    factory, _ = make()
    proto, t = connect(factory)
    proto.dataReceived(GOOD := req("/get"))
    n = len(t.value())
    proto.dataReceived(data)
    answer = t.value()[n:]
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer
    head, blank, body = answer.partition(b"\r\n\r\n")
    assert blank and body == b"", answer
    assert head.endswith(b"\r\nConnection: close") and t.disconnecting
    proto.dataReceived(GOOD)  # ignored after the error
    assert t.value()[n:] == answer


@pytest.mark.memory
def test_a_get_over_a_limit_still_gets_the_error_text():
    factory, _ = make()
    proto, t = connect(factory)
    proto.dataReceived(b"GET /" + b"a" * 9000)
    assert t.value().startswith(b"HTTP/1.1 414 ")
    assert t.value().endswith(b"\r\n\r\n414 Request-URI Too Long: request line too long\n")


@pytest.mark.memory
def test_error_waits_behind_a_delayed_response():
    factory, clock = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/delay/1") + b"BAD REQUEST LINE\r\n\r\n")
    assert t.value() == b"" and not t.disconnecting
    clock.advance(1)
    assert [r.status_code for r, _ in responses(t.value())] == [200, 400] and t.disconnecting


@pytest.mark.memory
def test_http_1_0_and_connection_close():
    factory, _ = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/get", version=b"HTTP/1.0", headers=b"Connection: keep-alive\r\n"))
    ((resp, _),) = responses(t.value())
    assert dict(resp.headers)[b"connection"] == b"keep-alive" and not t.disconnecting
    t.clear()
    proto.dataReceived(req("/get", version=b"HTTP/1.0"))
    assert b"Connection: close\r\n" in t.value() and t.disconnecting
    factory, _ = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/get", headers=b"Connection: close\r\n") + req("/uuid"))
    assert len(responses(t.value())) == 1 and t.disconnecting


@pytest.mark.memory
def test_http_1_0_stream_is_not_chunked():
    factory, _ = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/stream/3", version=b"HTTP/1.0"))
    assert b"Transfer-Encoding" not in t.value() and b"Content-Length: " in t.value()
    assert t.value().count(b'"id"') == 3


@pytest.mark.memory
def test_drip_is_spread_over_time():
    factory, clock = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/drip?duration=2&numbytes=4&delay=1") + req("/uuid"))
    assert t.value() == b""
    clock.advance(1)
    head_only = t.value()
    assert head_only.startswith(b"HTTP/1.1 200 ") and head_only.endswith(b"\r\n\r\n")
    for i in range(1, 5):
        clock.advance(0.5)
        assert t.value().count(b"*") == i
    got = responses(t.value())
    assert got[0][1] == b"****" and len(got) == 2


@pytest.mark.memory
def test_half_close_still_answers():
    factory, _ = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/get"))
    proto.readConnectionLost()
    assert len(responses(t.value())) == 1 and t.disconnecting


@pytest.mark.memory
def test_half_close_after_more_requests_than_the_pipeline_limit():
    factory, clock = make(max_pipeline=2)
    proto, t = connect(factory)
    proto.dataReceived(req("/delay/1") + req("/get") * 4)
    proto.readConnectionLost()  # like nc -N: everything sent, write side shut
    assert not t.disconnecting
    clock.advance(1)
    assert [r.status_code for r, _ in responses(t.value())] == [200] * 5
    assert t.disconnecting


@pytest.mark.memory
def test_half_close_mid_head_is_a_400():
    factory, _ = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/get") + b"GET /x HT")
    proto.readConnectionLost()
    assert [r.status_code for r, _ in responses(t.value())] == [200, 400] and t.disconnecting


@pytest.mark.memory
def test_access_log_line_per_request(logged):
    factory, clock = make()
    proto, t = connect(factory)
    proto.dataReceived(req("/get") + req("/status/404"))
    proto.dataReceived(req("/get?q={x}") + b"NONSENSE\r\n\r\n")
    lines = [e for e in logged if e.get("access")]
    assert [(e["method"], e["target"], e["status"]) for e in lines] == [
        ("GET", "/get", 200), ("GET", "/status/404", 404), ("GET", "/get?q={x}", 200),
        ("-", "-", 400)]
    assert all(e["client"] == "127.0.0.1:40001" and e["bytes"] > 0 for e in lines)
    text = [formatEvent(e) for e in lines]
    assert text[0].startswith("127.0.0.1:40001 GET /get HTTP/1.1 200 ")
    assert text[2].startswith("127.0.0.1:40001 GET /get?q={x} HTTP/1.1 200 ")  # braces are text
    assert text[3].startswith("127.0.0.1:40001 - - - 400 ") and lines[3]["reason"]


@pytest.mark.memory
def test_connection_count_released():
    factory, _ = make(max_connections=1)
    proto, t = connect(factory)
    refused, rt = connect(factory)
    assert rt.value().startswith(b"HTTP/1.1 503 ") and rt.disconnecting
    lose(proto)
    assert factory.limits.open == 0


@pytest.mark.memory
def test_options():
    o = httpserver.Options()
    o.parseOptions([])
    assert o["listen"].startswith("tcp:8080:interface=127.0.0.1")
    assert (o["max-body"], o["header-timeout"], o["max-headers"]) == (1 << 20, 5.0, 100)
    o = httpserver.Options()
    o.parseOptions(["--max-body", "10", "--header-timeout", "0.5", "--keepalive-timeout", "1",
                    "--no-access-log", "--listen", "0"])
    f = httpserver.make_factory(o, MemoryReactorClock())
    assert (f.max_body, f.header_timeout, f.keepalive_timeout, f.access_log) == (10, 0.5, 1, False)
    with pytest.raises(usage.UsageError, match="--max-body"):
        httpserver.Options().parseOptions(["--max-body", "lots"])
    with pytest.raises(usage.UsageError, match="--max-headers"):
        httpserver.Options().parseOptions(["--max-headers", "0"])
    assert httpserver.make_factory(httpserver.Options(), MemoryReactorClock()).body_timeout == 30
    o = httpserver.Options()
    o.parseOptions(["--body-timeout", "2.5"])
    assert httpserver.make_factory(o, MemoryReactorClock()).body_timeout == 2.5
    with pytest.raises(usage.UsageError, match="--body-timeout"):
        httpserver.Options().parseOptions(["--body-timeout", "-1"])


# --- real sockets ----------------------------------------------------------------------------


@pytest.fixture
def server():
    """The responder in this process on a free loopback port (port 0)."""
    from twisted.internet import endpoints, reactor

    factory = httpserver.HttpFactory(reactor, max_connections=2000, access_log=False)
    ep = endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1:backlog=1024")
    port = pytest_twisted.blockon(ep.listen(factory))
    factory.port = port.getHost().port
    yield factory
    pytest_twisted.blockon(defer.maybeDeferred(port.stopListening))


def curl(*args):
    exe = need("curl")
    return utils.getProcessOutputAndValue(exe, ["-sS", "--max-time", "20", *args],
                                          env=os.environ)


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_curl_get_head_and_1_0(server):
    base = f"http://127.0.0.1:{server.port}"
    out, err, code = yield curl("-w", "\n%{http_code}", f"{base}/get?x=1")
    assert code == 0, err
    body, status = out.rsplit(b"\n", 1)
    assert status == b"200" and json.loads(body)["args"] == {"x": "1"}
    out, err, code = yield curl("-I", f"{base}/get")
    assert code == 0 and out.startswith(b"HTTP/1.1 200 OK") and b"Content-Length:" in out
    out, err, code = yield curl("--http1.0", "-v", f"{base}/uuid")
    assert code == 0 and b"GET /uuid HTTP/1.0" in err and len(json.loads(out)["uuid"]) == 36


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_head_request_over_a_limit_gets_its_error_without_a_body(server):
    """A raw HEAD and ``curl -I`` with a request line over --max-request-line: the 414's head
    alone (its text followed it: bytes that are no response to whoever reads on)."""
    target = "/" + "a" * 9000
    got = yield threads.deferToThread(
        read_to_close, server.port, b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode())
    assert got.startswith(b"HTTP/1.1 414 ") and got.endswith(b"\r\nConnection: close\r\n\r\n"), got
    out, err, code = yield curl("-I", "-v", f"http://127.0.0.1:{server.port}{target}")
    assert code == 0, err
    assert out.startswith(b"HTTP/1.1 414 ") and out.endswith(b"\r\n\r\n"), out
    assert b"Excess found" not in err, err


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_curl_post_1mb_with_expect_100_continue(server, tmp_path):
    payload = os.urandom(500_000).hex().encode()[:1_000_000]
    path = tmp_path / "body"
    path.write_bytes(payload)
    out, err, code = yield curl("-v", "-H", "Expect: 100-continue", "-H",
                                "Content-Type: text/plain", "--data-binary", f"@{path}",
                                f"http://127.0.0.1:{server.port}/post")
    assert code == 0, err
    assert b"HTTP/1.1 100 Continue" in err
    assert json.loads(out)["data"].encode() == payload


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_curl_reuses_one_connection_for_several_urls(server):
    base = f"http://127.0.0.1:{server.port}"
    before = server.limits.total
    out, err, code = yield curl("-v", f"{base}/get", f"{base}/uuid", f"{base}/headers",
                                f"{base}/stream/3", f"{base}/bytes/100")
    assert code == 0, err
    assert err.count(b"< HTTP/1.1 200 OK") == 5
    assert b"Re-using existing connection" in err
    assert server.limits.total - before == 1


def h11_exchange(port: int, requests: list[tuple[str, str, bytes]]) -> list:
    """A strict h11 client on one keep-alive connection; h11 raises on any framing error."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        c = h11.Connection(h11.CLIENT)
        for method, target, body in requests:
            headers = [("Host", "test"), ("User-Agent", "h11")]
            if body:
                headers.append(("Content-Length", str(len(body))))
            data = c.send(h11.Request(method=method, target=target, headers=headers))
            if body:
                data += c.send(h11.Data(data=body))
            data += c.send(h11.EndOfMessage())
            s.sendall(data)
            resp, got = None, b""
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                ev = c.next_event()
                if ev is h11.NEED_DATA:
                    c.receive_data(s.recv(65536))
                elif isinstance(ev, h11.Response):
                    resp = ev
                elif isinstance(ev, h11.Data):
                    got += ev.data
                elif isinstance(ev, h11.EndOfMessage):
                    break
            out.append((resp.status_code, dict(resp.headers), got))
            if c.our_state is h11.MUST_CLOSE or c.their_state is h11.MUST_CLOSE:
                break
            c.start_next_cycle()
    return out


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_h11_validates_every_endpoint(server):
    plan = [
        ("GET", "/", b""), ("GET", "/get?a=b", b""), ("HEAD", "/get", b""),
        ("POST", "/post", b"x=1"), ("PUT", "/put", b"{}"), ("PATCH", "/patch", b"p"),
        ("DELETE", "/delete", b""), ("OPTIONS", "/anything/deep/path", b""),
        ("GET", "/headers", b""), ("GET", "/ip", b""), ("GET", "/user-agent", b""),
        ("GET", "/status/201", b""), ("GET", "/status/204", b""), ("GET", "/status/304", b""),
        ("GET", "/status/418", b""), ("GET", "/delay/0.2", b""), ("GET", "/bytes/70000", b""),
        ("GET", "/stream/5", b""), ("HEAD", "/stream/5", b""),
        ("GET", "/drip?duration=0.3&numbytes=3", b""), ("GET", "/redirect/2", b""),
        ("GET", "/uuid", b""), ("POST", "/echo", b"raw"), ("GET", "/missing", b""),
        ("POST", "/get", b"z"), ("GET", "/status/500", b""),
    ]
    got = yield threads.deferToThread(h11_exchange, server.port, plan)
    statuses = [status for status, _, _ in got]
    assert statuses == [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 201, 204, 304,
                        418, 200, 200, 200, 200, 200, 302, 200, 200, 404, 405, 500]
    by_target = {plan[i][1]: got[i] for i in range(len(plan)) if plan[i][0] != "HEAD"}
    assert len(by_target["/bytes/70000"][2]) == 70000
    assert by_target["/drip?duration=0.3&numbytes=3"][2] == b"***"
    assert [json.loads(line)["id"] for line in by_target["/stream/5"][2].splitlines()] == \
        list(range(5))
    assert by_target["/echo"][2].endswith(b"\r\n\r\nraw")


def raw_pipeline(port: int, data: bytes, expect: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        buf = b""
        deadline = time.monotonic() + 10
        while buf.count(b"HTTP/1.1 ") < expect or not buf.endswith(b"}\n"):
            if time.monotonic() > deadline:
                break
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_raw_socket_pipelining(server):
    data = req("/delay/0.3") + req("/get?n=1") + req("/anything", "POST", body=b"b") + \
        req("/get?n=3")
    buf = yield threads.deferToThread(raw_pipeline, server.port, data, 4)
    got = responses(buf, ["GET", "GET", "POST", "GET"])
    assert [json.loads(b)["url"] for _, b in got] == [
        "http://test/delay/0.3", "http://test/get?n=1", "http://test/anything",
        "http://test/get?n=3"]


def pipeline_unread(port: int, data: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(data)
    return s


def read_until_closed(s: socket.socket) -> bytes:
    buf = b""
    deadline = time.monotonic() + 15
    with s:
        while time.monotonic() < deadline:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    return buf


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_client_pipelining_big_responses_and_not_reading_holds_a_bounded_amount(server):
    # 32 pipelined /bytes/1048576, none read: every ready response went into the transport's
    # buffer in one write (32 MiB a connection; at /bytes/10485760, 320 MiB)
    from twisted.internet import reactor, task

    from playground.common.twistedprivate import pending_write_bytes

    protocols = []
    build = server.buildProtocol
    server.buildProtocol = lambda addr: protocols.append(build(addr)) or protocols[-1]
    data = req("/bytes/1048576?seed=2") * 31 + req("/bytes/1048576?seed=2",
                                                    headers=b"Connection: close\r\n")
    s = yield threads.deferToThread(pipeline_unread, server.port, data)
    yield until(lambda: protocols and protocols[0]._write_paused, "the transport to fill")
    yield task.deferLater(reactor, 0.2, lambda: None)  # time to write on, had it not paused
    p = protocols[0]
    held = pending_write_bytes(p.transport) + sum(
        len(slot.response.body) for slot in p.queue if slot.response is not None)
    assert held <= 4 << 20, held  # MAX_AHEAD (1 MiB) twice and a response or two
    buf = yield threads.deferToThread(read_until_closed, s)
    got = responses(buf)
    assert len(got) == 32 and {b for _, b in got} == {got[0][1]}


def send_all_then_half_close(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # like nc -N
        buf = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                return buf  # the server closed after answering everything
            buf += chunk
        raise AssertionError("server did not close after the last response")


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_raw_socket_half_close_after_40_pipelined_requests(server):
    data = b"".join(req(f"/get?i={i}") for i in range(40))
    buf = yield threads.deferToThread(send_all_then_half_close, server.port, data)
    got = responses(buf)
    assert [json.loads(b)["args"]["i"] for _, b in got] == [str(i) for i in range(40)]


def many_connections(port: int, n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            socks.append(s)
        for s in socks:  # all open at once before any request
            s.sendall(req("/get"))
        statuses = []
        for s in socks:
            buf = b""
            while b"\r\n\r\n" not in buf or not buf.endswith(b"}\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            statuses.append(int(buf.split(b" ", 2)[1]) if buf else 0)
        return statuses
    finally:
        for s in socks:
            s.close()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_500_concurrent_connections(server):
    statuses = yield threads.deferToThread(many_connections, server.port, 500)
    assert statuses == [200] * 500
    assert server.limits.total >= 500


def slow_read(port: int, request: bytes, pause: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(request)
        buf = bytearray()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            time.sleep(pause)
        return bytes(buf)


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_slow_reader_of_a_closing_response_gets_everything(server, monkeypatch):
    # HTTP/1.0: the server half-closes after the response and lingers for the client; a
    # reader that keeps making progress is never cut off, even past the linger period
    monkeypatch.setattr(httpserver, "LINGER", 0.3)
    data = yield threads.deferToThread(slow_read, server.port,
                                       req("/bytes/3000000", version=b"HTTP/1.0"), 0.01)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in head
    assert len(body) == 3000000


def trickle_body(port: int, head: bytes, pause: float) -> tuple[bytes, int, float]:
    """Send ``head``, then body bytes one at a time every ``pause`` seconds until the server
    answers or closes; return what it sent, the bytes trickled and the seconds it took."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        start = time.monotonic()
        sent = 0
        buf = b""
        s.settimeout(pause)
        while time.monotonic() - start < 10:
            try:
                s.sendall(b"x")
                sent += 1
            except OSError:
                break
            try:
                chunk = s.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        s.settimeout(5)
        try:
            while chunk := s.recv(4096):
                buf += chunk
        except OSError:
            pass
        return buf, sent, time.monotonic() - start


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_raw_socket_body_trickle_gets_408(server, monkeypatch):
    monkeypatch.setattr(server, "body_timeout", 0.6)
    head = req("/post", "POST", b"Content-Length: 1000\r\n")
    data, sent, took = yield threads.deferToThread(trickle_body, server.port, head, 0.05)
    assert data.startswith(b"HTTP/1.1 408 ") and b"body not complete within 0.6s" in data
    assert b"Connection: close" in data
    assert 3 < sent < 1000 and took < 5


@pytest.mark.twistd
def test_twistd_end_to_end(twistd):
    port = free_port()
    t = twistd(["http", "--listen", str(port), "--header-timeout", "0.5"])
    t.wait_for("http listening on")
    out = subprocess.run([need("curl"), "-sS", "--max-time", "10", f"http://127.0.0.1:{port}/ip"],
                         capture_output=True, timeout=20)
    assert json.loads(out.stdout) == {"origin": "127.0.0.1"}
    line = t.wait_for(" GET /ip HTTP/1.1 200 ")
    assert "127.0.0.1:" in line
    # slowloris on a real socket: 408, then the server closes
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /get HTTP/1.1\r\nHost: x\r\n")
        buf = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    assert buf.startswith(b"HTTP/1.1 408 ")
    assert t.terminate() == 0



@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_curl_with_too_many_small_header_fields_gets_431(server):
    # a head far below --max-header-bytes with more fields than --max-headers (100): 431, as
    # an over-long head gets; at the bound it is answered
    base = f"http://127.0.0.1:{server.port}/headers"
    for fields, status in ((600, b"431"), (101, b"431"), (97, b"200")):  # curl adds 3
        extra = [a for i in range(fields) for a in ("-H", f"X-N{i}: 1")]
        out, err, code = yield curl("-w", "\n%{http_code}", *extra, base)
        assert code == 0, err
        assert out.rsplit(b"\n", 1)[1] == status, (fields, out[-300:])
