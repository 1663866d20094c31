"""The passive HTTP/1.x decoder: framing, pairing, pipelining, switches, bounds, leniency."""

from __future__ import annotations

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground.decode.httpdecoder import (
    C2S,
    S2C,
    HttpConversation,
    HttpExchange,
    HttpRaw,
    HttpSecret,
    HttpSwitched,
    HttpUnanswered,
    HttpUndecodable,
)

pytestmark = pytest.mark.pure


def run(chunks, **kw):
    """chunks: [(direction, bytes)]; returns all events, ending with close."""
    conv = HttpConversation(**kw)
    out = []
    for i, (d, data) in enumerate(chunks):
        out += conv.feed(d, data, float(i))
    out += conv.close(float(len(chunks)))
    return out


def exchanges(events):
    return [e for e in events if isinstance(e, HttpExchange)]


def split_run(chunks, cuts, **kw):
    """The same conversation with each chunk cut at the given positions (timestamps per chunk)."""
    conv = HttpConversation(**kw)
    out = []
    for i, (d, data) in enumerate(chunks):
        points = sorted({c % (len(data) + 1) for c in cuts})
        last = 0
        for p in points + [len(data)]:
            if p > last:
                out += conv.feed(d, data[last:p], float(i))
                last = p
    out += conv.close(float(len(chunks)))
    return out


GET = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"


def test_simple_exchange_and_latency():
    conv = HttpConversation()
    assert conv.feed(C2S, GET, 10.0) == []
    [e] = conv.feed(S2C, OK, 10.25)
    assert e.request.method == b"GET" and e.request.target == b"/a"
    assert e.request.version == b"HTTP/1.1"
    assert (e.status, e.reason, e.response_body_size) == (200, b"OK", 5)
    assert e.content_type == b"text/plain" and e.response_preview == b"hello"
    assert e.latency == pytest.approx(0.25)
    assert conv.close(11.0) == []


def test_keep_alive_and_pipelining_pair_in_order():
    reqs = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
    resps = b"".join(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % i for i in range(5))
    ex = exchanges(run([(C2S, reqs), (S2C, resps)]))
    assert [e.request.target for e in ex] == [b"/%d" % i for i in range(5)]
    assert [e.response_preview for e in ex] == [b"%d" % i for i in range(5)]


def test_chunked_response_with_extensions_and_trailers():
    body = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    [e] = exchanges(run([(C2S, GET), (S2C, body + OK)]))[:1]
    assert e.response_body_size == 11 and e.response_preview == b"hello world"


def test_chunked_request_body():
    req = b"POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    [e] = exchanges(run([(C2S, req), (S2C, OK)]))
    assert e.request_body_size == 3 and e.request_preview == b"abc"


def test_head_204_304_have_no_body():
    reqs = b"HEAD / HTTP/1.1\r\n\r\n" + GET + GET + GET
    resps = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n" + OK
    )
    ex = exchanges(run([(C2S, reqs), (S2C, resps)]))
    assert [(e.status, e.response_body_size) for e in ex] == [
        (200, 0),
        (204, 0),
        (304, 0),
        (200, 5),
    ]


def test_close_delimited_response_completes_at_eof():
    conv = HttpConversation()
    conv.feed(C2S, GET, 1.0)
    assert conv.feed(S2C, b"HTTP/1.0 200 OK\r\n\r\nabc", 2.0) == []
    assert conv.feed(S2C, b"def", 3.0) == []
    [e] = conv.eof(S2C, 4.0)
    assert e.response_body_size == 6 and e.complete and e.latency == 3.0


def test_close_delimited_response_without_eof_is_cut_at_close():
    """The connection went (a reset, an abort, the proxy's force-close) without the server's
    FIN: a body delimited by the close never saw its end, so it is cut, as a Content-Length
    body cut short is; whatever the bytes' splits."""
    resp = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nabcdef"
    for step in (len(resp), 7, 1):
        conv = HttpConversation()
        conv.feed(C2S, GET, 1.0)
        for i in range(0, len(resp), step):
            assert conv.feed(S2C, resp[i:i + step], 2.0) == []
        [e] = conv.close(4.0)
        assert isinstance(e, HttpExchange) and not e.complete
        assert (e.status, e.response_body_size, e.response_preview) == (200, 6, b"abcdef")
        assert e.request.target == b"/a"
    conv = HttpConversation()  # with the FIN first, it is complete, and close adds nothing
    conv.feed(C2S, GET, 1.0)
    conv.feed(S2C, resp, 2.0)
    [e] = conv.eof(S2C, 3.0)
    assert e.complete and e.response_body_size == 6
    assert conv.close(4.0) == []


def test_expect_100_continue():
    req_head = b"POST /p HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    conv = HttpConversation()
    out = conv.feed(C2S, req_head, 1.0)
    out += conv.feed(S2C, b"HTTP/1.1 100 Continue\r\n\r\n", 2.0)
    out += conv.feed(C2S, b"data", 3.0)
    out += conv.feed(S2C, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 3.5)
    [e] = out
    assert e.interim == (100,) and e.status == 201 and e.request_body_size == 4
    assert e.latency == 0.5  # from the request's last byte


def test_upgrade_switches_to_raw_and_holds_client_bytes():
    req = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    conv = HttpConversation()
    out = conv.feed(C2S, req + b"\x81\x01a", 1.0)  # a frame sent eagerly
    assert out == []
    out = conv.feed(
        S2C, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x01b", 2.0
    )
    assert isinstance(out[0], HttpExchange) and out[0].status == 101
    assert out[1] == HttpSwitched("upgrade", 101, b"websocket")
    assert HttpRaw(C2S, b"\x81\x01a", len(req)) in out
    assert isinstance(out[-1], HttpRaw) and out[-1].data == b"\x81\x01b"
    assert conv.feed(C2S, b"GET / HTTP/1.1\r\n\r\n", 3.0)[0].direction == C2S  # raw now


def test_upgrade_refused_resumes_parsing():
    req = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"
    conv = HttpConversation()
    conv.feed(C2S, req + GET, 1.0)
    out = conv.feed(S2C, b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n" + OK, 2.0)
    assert [e.status for e in exchanges(out)] == [400, 200]
    assert exchanges(out)[1].request.target == b"/a"


def test_connect_2xx_switches():
    conv = HttpConversation()
    conv.feed(C2S, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 1.0)
    out = conv.feed(S2C, b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01", 2.0)
    assert out[1].how == "connect"
    assert out[-1] == HttpRaw(S2C, b"\x16\x03\x01", 39)


def test_secret_header_ranges():
    req = b"GET / HTTP/1.1\r\nAuthorization:  Basic dXNlcjpwYXNz\r\nCookie: a=b\r\n\r\n"
    out = HttpConversation().feed(C2S, req, 0.0)
    secrets = [e for e in out if isinstance(e, HttpSecret)]
    assert [req[s.start : s.end] for s in secrets] == [b"Basic dXNlcjpwYXNz", b"a=b"]
    resp = b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=123; HttpOnly\r\nContent-Length: 0\r\n\r\n"
    conv = HttpConversation()
    conv.feed(C2S, GET, 0.0)
    out = conv.feed(S2C, b"x" * 0 + resp, 0.0)
    [s] = [e for e in out if isinstance(e, HttpSecret)]
    assert resp[s.start : s.end] == b"sid=123; HttpOnly"


def test_folded_lines_of_a_secret_header_are_secret_too():
    req = (b"GET / HTTP/1.1\r\nCookie: a=1\r\n\tsid=s3cret \r\n  more=s3cret2\r\n"
           b"Host: h\r\n folded-host\r\nSet-Cookie:\r\n x=s3cret3\r\n\r\n")
    for step in (len(req), 1):
        conv = HttpConversation()
        out = [e for i in range(0, len(req), step) for e in conv.feed(C2S, req[i:i + step], 0.0)]
        secrets = [req[e.start:e.end] for e in out if isinstance(e, HttpSecret)]
        assert secrets == [b"a=1", b"sid=s3cret", b"more=s3cret2", b"x=s3cret3"]


def test_a_failure_reason_hides_a_credential_header_line():
    conv = HttpConversation()
    conv.feed(C2S, GET, 0.0)
    out = conv.feed(C2S, b"\r\nAuthorization: Basic s3cret\r\n\r\n", 0.0)
    [u] = [e for e in out if isinstance(e, HttpUndecodable)]
    assert "s3cret" not in u.reason and "Authorization: (redacted)" in u.reason


@pytest.mark.parametrize("line, shown", [
    (b"AUTH s3cret", "AUTH (redacted)"),  # Redis after an HTTP request (cross-protocol)
    (b"  auth default s3cret", "  auth (redacted)"),
    (b"CONFIG SET masterauth s3cret", "CONFIG (redacted)"),
    (b'"HELLO" 3 AUTH u s3cret', '"HELLO" (redacted)'),
    (b"PING s3cret", "PING s3cret"),  # no secret command: as it is
])
def test_a_failure_reason_hides_a_redis_command_s_password(line, shown):
    """A Redis command where a request line was expected (a client speaking HTTP and then
    Redis on one connection, the cross-protocol pattern, or --decode http in front of Redis)
    is quoted in the failure reason the console and JSON show: its password is not."""
    conv = HttpConversation()
    conv.feed(C2S, GET, 0.0)
    [u] = [e for e in conv.feed(C2S, line + b"\r\n\r\n", 0.0) if isinstance(e, HttpUndecodable)]
    assert u.reason == f"not an HTTP request line: {shown.encode()!r}"


def test_a_failure_reason_hides_an_answer_echoing_a_password():
    """``-ERR ... modifier '>pw'`` (Redis refusing an ACL rule) where a status line was
    expected: the error is not quoted past its first word."""
    conv = HttpConversation()
    conv.feed(C2S, GET, 0.0)
    out = conv.feed(S2C, b"-ERR Error in ACL SETUSER modifier '>s3cret': no\r\n\r\n", 0.0)
    [u] = [e for e in out if isinstance(e, HttpUndecodable)]
    assert "s3cret" not in u.reason and "-ERR (redacted)" in u.reason


def test_secret_header_ranges_cover_folded_lines():
    """Obsolete line folding continues a header's value: a secret's continuation lines are
    masked in the pcap too, also when its first line is empty."""
    req = (b"GET / HTTP/1.1\r\nAuthorization: Bearer\r\n  s3cr3t-first\r\n\ts3cr3t-more \r\n"
           b"Cookie:\r\n s3cr3t-cookie\r\nX-Other: a\r\n folded-plain\r\n\r\n")
    out = HttpConversation().feed(C2S, req, 0.0)
    secrets = [req[e.start : e.end] for e in out if isinstance(e, HttpSecret)]
    assert secrets == [b"Bearer", b"s3cr3t-first", b"s3cr3t-more", b"s3cr3t-cookie"]


def test_settled_holds_an_incomplete_head():
    conv = HttpConversation()
    conv.feed(C2S, GET, 0.0)
    assert conv.settled(C2S) == len(GET)
    conv.feed(C2S, b"GET /b HTTP/1.1\r\nAuthoriz", 0.0)
    assert conv.settled(C2S) == len(GET)  # the partial head may still hold a secret
    conv.feed(C2S, b"ation: x\r\n\r\n", 0.0)
    assert conv.settled(C2S) == len(GET) + len(b"GET /b HTTP/1.1\r\nAuthorization: x\r\n\r\n")


def test_lenient_bare_lf_and_odd_headers():
    req = b"GET /x HTTP/1.1\nHost: a\nno colon here\n folded\n\n"
    resp = b"HTTP/1.1 200\nContent-Length: 2\n\nok"
    [e] = exchanges(run([(C2S, req), (S2C, resp)]))
    assert e.status == 200 and e.reason == b"" and e.response_preview == b"ok"


@pytest.mark.parametrize("line", [
    b"GET\x0b/x HTTP/1.1", b"GET\x0c/x HTTP/1.1", b"GET /x\x0bHTTP/1.1", b"GET\t/x HTTP/1.1",
    b"GET /x\x0c\x0bHTTP/1.1",
])
def test_a_request_line_split_by_other_white_space_than_spaces_is_no_request(line):
    """RFC 9112 3: a request line's words are separated by SP. bytes.split() also split them
    at a VT, an FF or a tab, and the decoder showed ``GET /x`` where a server (ours, Twisted's,
    nginx, Node) saw no request line and answered 400: it now shows the bytes (undecodable),
    and the 400 answering no request it could read."""
    out = run([(C2S, line + b"\r\nHost: x\r\n\r\n"),
               (S2C, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")])
    [e] = exchanges(out)
    assert e.request is None and e.status == 400, e
    [u] = [e for e in out if isinstance(e, HttpUndecodable)]
    assert u.direction == C2S and "not an HTTP request line" in u.reason
    assert b"".join(e.data for e in out if isinstance(e, HttpRaw) and e.direction == C2S) == (
        line + b"\r\nHost: x\r\n\r\n")


def test_a_vertical_tab_or_form_feed_in_a_word_or_a_fold_is_shown_as_sent():
    """Inside a word, or at the ends of an obsolete folded line, a VT or an FF is part of what
    the server saw (bytes.strip() dropped it from a fold); runs of spaces stay one separator."""
    req = (b"GET  /a\x0bb HTTP/1.1\x0c\r\nHost: x\r\nX-Folded: one\r\n \x0ctwo\x0b\r\n\r\n")
    [e] = exchanges(run([(C2S, req), (S2C, OK)]))
    assert (e.request.method, e.request.target, e.request.version) == (
        b"GET", b"/a\x0bb", b"HTTP/1.1\x0c")
    assert (b"X-Folded", b"one \x0ctwo\x0b") in e.request.headers


def test_garbage_gives_undecodable_then_raw():
    out = run([(C2S, b"\x16\x03\x01\x00garbage\r\n\r\nmore"), (C2S, b"x")])
    assert isinstance(out[0], HttpUndecodable) and out[0].offset == 0
    raw = b"".join(e.data for e in out if isinstance(e, HttpRaw))
    assert raw == b"\x16\x03\x01\x00garbage\r\n\r\nmorex"


@pytest.mark.parametrize("length", [b"+2", b"1_0", b"0x2", "٢".encode(), b"9" * 19])
def test_a_content_length_int_would_read_is_undecodable(length):
    """Only ASCII digits (at most 18) frame a body; int() would take a sign, an underscore, any
    Unicode digit, and a length no body has."""
    out = run([(C2S, b"POST / HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\nok")])
    assert isinstance(out[0], HttpUndecodable) and "bad Content-Length" in out[0].reason


def test_head_bound():
    out = run([(C2S, b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 2000)], max_head=1024)
    assert isinstance(out[0], HttpUndecodable) and "larger" in out[0].reason


def test_unanswered_at_close():
    out = run([(C2S, GET + b"POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")])
    assert [type(e) for e in out] == [HttpUnanswered, HttpUnanswered]
    assert out[1].body_size == 2 and out[1].request_done is None


def test_large_body_is_counted_not_buffered():
    conv = HttpConversation(preview=16)
    conv.feed(C2S, b"POST /big HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n", 0.0)
    for _ in range(100):
        conv.feed(C2S, b"z" * 100000, 0.0)
    assert conv.req.body_size == 0 and len(conv.req.preview) == 0  # moved to the request
    [e] = conv.feed(S2C, b"HTTP/1.1 204 No Content\r\n\r\n", 1.0)
    assert e.request_body_size == 10_000_000 and e.request_preview == b"z" * 16


# -- h11 as the oracle ------------------------------------------------------------------------


def _h11_messages(method, target, headers, body, status, resp_headers, resp_body):
    client = h11.Connection(h11.CLIENT)
    server = h11.Connection(h11.SERVER)
    c2s = client.send(h11.Request(method=method, target=target, headers=headers))
    if body is not None:
        c2s += client.send(h11.Data(data=body))
    c2s += client.send(h11.EndOfMessage())
    server.receive_data(c2s)
    while True:
        ev = server.next_event()
        if ev is h11.NEED_DATA or isinstance(ev, h11.EndOfMessage):
            break
    s2c = server.send(h11.Response(status_code=status, headers=resp_headers))
    if resp_body:
        s2c += server.send(h11.Data(data=resp_body))
    s2c += server.send(h11.EndOfMessage())
    return c2s, s2c


messages = st.builds(
    lambda method, path, body, status, resp_body, chunked: (
        method,
        path,
        body,
        status,
        resp_body,
        chunked,
    ),
    st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE"]),
    st.from_regex(rb"\A/[a-z0-9/_.?=&-]{0,30}\Z"),
    st.binary(max_size=300),
    st.sampled_from([200, 201, 204, 301, 304, 404, 500]),
    st.binary(max_size=300),
    st.booleans(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages, min_size=1, max_size=4), st.lists(st.integers(0, 2000), max_size=6))
def test_agrees_with_h11_whatever_the_splits(msgs, cuts):
    chunks = []
    expected = []
    for method, path, body, status, resp_body, chunked in msgs:
        headers = [("Host", "x")]
        send_body = body if method in (b"POST", b"PUT") else None
        if send_body is not None:
            headers.append(
                ("Transfer-Encoding", "chunked")
                if chunked
                else ("Content-Length", str(len(send_body)))
            )
        no_body = method == b"HEAD" or status in (204, 304)
        rb = b"" if no_body else resp_body
        rh = [("Content-Type", "application/octet-stream")]
        if not no_body:
            rh.append(
                ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(len(rb)))
            )
        elif method == b"HEAD":
            rh.append(("Content-Length", str(len(resp_body))))
        c2s, s2c = _h11_messages(method, path, headers, send_body, status, rh, rb)
        chunks += [(C2S, c2s), (S2C, s2c)]
        expected.append((method, path, status, len(send_body or b""), len(rb)))
    whole = run(chunks)
    got = [
        (e.request.method, e.request.target, e.status, e.request_body_size, e.response_body_size)
        for e in exchanges(whole)
    ]
    assert got == expected
    assert split_run(chunks, cuts) == whole


def test_byte_by_byte_equals_whole():
    chunks = [
        (C2S, GET + b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        (S2C, OK + b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    ]
    whole = run(chunks)
    conv = HttpConversation()
    out = []
    for i, (d, data) in enumerate(chunks):
        for b in range(len(data)):
            out += conv.feed(d, data[b : b + 1], float(i))
    out += conv.close(2.0)
    assert out == whole and len(exchanges(whole)) == 2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([C2S, S2C]), st.binary(max_size=200)), max_size=8))
def test_random_bytes_never_raise(chunks):
    conv = HttpConversation(max_head=256)
    for d, data in chunks:
        conv.feed(d, data, 0.0)
    conv.eof(C2S, 1.0)
    conv.close(1.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([C2S, S2C]),
            st.sampled_from(
                [
                    GET,
                    OK,
                    b"HTTP/1.1 100 Continue\r\n\r\n",
                    b"5\r\nhello\r\n",
                    b"0\r\n\r\n",
                    b"\r\n",
                    b"Transfer-Encoding: chunked\r\n",
                    b"HTTP/1.1 101 Switching\r\n\r\n",
                    b"GET / HTTP/1.1\r\nUpgrade: x\r\n\r\n",
                    b"CONNECT h:1 HTTP/1.1\r\n\r\n",
                ]
            ),
        ),
        max_size=12,
    )
)
def test_http_shaped_soup_never_raises_and_offsets_are_consistent(chunks):
    conv = HttpConversation()
    sent = {C2S: b"", S2C: b""}
    for d, data in chunks:
        sent[d] += data
        for e in conv.feed(d, data, 0.0):
            if isinstance(e, HttpRaw):
                assert sent[e.direction][e.offset : e.offset + len(e.data)] == e.data
    conv.close(1.0)


def test_a_credential_in_a_trailer_is_secret_and_held_back_until_its_line_ends():
    """A chunked body's trailer lines are header lines too: a credential there is masked in
    the pcap like one in the head, and its line is not settled before it ends."""
    req = (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
           b"X-Sum: 1\r\nAuthorization: Basic s3cret\r\nCookie: a=s3cret2\r\n\r\n")
    for step in (len(req), 7, 1):
        conv = HttpConversation()
        out = []
        for i in range(0, len(req), step):
            out += conv.feed(C2S, req[i:i + step], 0.0)
        secrets = [req[e.start:e.end] for e in out if isinstance(e, HttpSecret)]
        assert secrets == [b"Basic s3cret", b"a=s3cret2"], step
    conv = HttpConversation()
    conv.feed(C2S, req[:req.index(b"Basic") + 8], 0.0)
    assert conv.settled(C2S) == req.index(b"Authorization")  # the line is not finished


def test_a_folded_credential_trailer_line_is_secret_to_its_last_fold():
    """An obsolete folded line continues a trailer line as it does a head's: the folds of a
    credential there are masked in the pcap too, a fold of another line is not."""
    req = (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
           b"Authorization: Basic\r\n\ts3cret\r\n  more\r\nX-Sum: 1\r\n 2\r\n\r\n")
    for step in (len(req), 7, 1):
        conv = HttpConversation()
        out = []
        for i in range(0, len(req), step):
            out += conv.feed(C2S, req[i:i + step], 0.0)
        assert _secrets(req, out) == [b"Basic", b"s3cret", b"more"], step


_QUERY_REQ = (b"\r\nGET  /cb?access_token=abc123&x=1;sig[]=s1g&page=2#id_token=f7g HTTP/1.1\r\n"
              b"Host: x\r\nAuthorization: Bearer t0k\r\n\r\n")


def _secrets(req, out):
    return [req[e.start:e.end] for e in out if isinstance(e, HttpSecret)]


def test_credential_query_values_are_secret_ranges_before_the_headers():
    """A request target's credential query (and fragment) parameters
    (``redaction.SECRET_PARAMS``) are masked in the pcap like a credential header: their
    stream ranges, in stream order (a blank line before the request and two spaces before the
    target included)."""
    conv = HttpConversation()
    out = conv.feed(C2S, _QUERY_REQ, 0.0)
    assert _secrets(_QUERY_REQ, out) == [b"abc123", b"s1g", b"f7g", b"Bearer t0k"]
    # the event keeps the target as sent: the chain's HttpStream redacts the records
    [e] = conv.feed(S2C, OK, 1.0)
    assert e.request.target == b"/cb?access_token=abc123&x=1;sig[]=s1g&page=2#id_token=f7g"
    plain = b"GET /a?page=2&q=token HTTP/1.1\r\n\r\n"
    assert _secrets(plain, HttpConversation().feed(C2S, plain, 0.0)) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, len(_QUERY_REQ)), max_size=8))
def test_credential_query_ranges_whatever_the_splits(cuts):
    chunks = [(C2S, _QUERY_REQ + GET), (S2C, OK + OK)]
    whole = run(chunks)
    assert split_run(chunks, cuts) == whole
    assert _secrets(_QUERY_REQ, whole) == [b"abc123", b"s1g", b"f7g", b"Bearer t0k"]
    conv = HttpConversation()
    one = [e for i in range(len(_QUERY_REQ)) for e in conv.feed(C2S, _QUERY_REQ[i:i + 1], 0.0)]
    assert _secrets(_QUERY_REQ, one) == [b"abc123", b"s1g", b"f7g", b"Bearer t0k"]


def test_a_failure_reason_hides_a_credential_query_value():
    for line in (b"GET /x?token=s3cret&a=1 HTTP/1.1 junk", b"GET /x#token=s3cret HTTP/1.1 junk"):
        out = HttpConversation().feed(C2S, line + b"\r\n\r\n", 0.0)
        [u] = [e for e in out if isinstance(e, HttpUndecodable)]
        assert "s3cret" not in u.reason and "token=(redacted)" in u.reason


@pytest.mark.parametrize("end", ["eof", "close"])
def test_an_unfinished_head_at_the_end_gives_its_query_secrets(end):
    """The client's side ends inside a request head (its FIN, the connection's close): the
    credential query values of its request line, whole or cut, are secret ranges then, once."""
    for req, secrets in ((b"\r\nGET /cb?access_token=s3cret&x=1 HTTP/1.1\r\nHost: x\r\n",
                          [b"s3cret"]),
                         (b"GET /cb?x=1;sig=s1g&token=s3cr", [b"s1g", b"s3cr"]),
                         (b"GET /cb?access_tok", []),
                         (b"GET /cb#access_token=s3cr", [b"s3cr"]),
                         (b"GET /cb?page=2 HTTP/1.1\r\n", [])):
        for step in (len(req), 1):
            conv = HttpConversation()
            out = [e for i in range(0, len(req), step) for e in conv.feed(C2S, req[i:i + step], 0)]
            assert _secrets(req, out) == []  # not before the end: the head may still fail
            if end == "eof":
                out = conv.eof(C2S, 1.0)
                assert _secrets(req, out) == secrets
                out = conv.close(2.0)
                assert _secrets(req, out) == []  # once
            else:
                out = conv.close(2.0)
                assert _secrets(req, out) == secrets


_URL_REQ = (b"GET /next HTTP/1.1\r\nHost: x\r\nReferer:  http://h/cb?access_token=abc123&x=1 \r\n"
            b"Content-Location: /c?page=2&q=token\r\n\r\n")
_URL_RESP = (b"HTTP/1.1 302 Found\r\nlocation: /cb?code=7&API-Key=k3y&sig=s1g\r\n"
             b"Refresh: 0; url=/r?token=t0k\r\nContent-Location: /cb#access_token=f7g&state=s\r\n"
             b"Content-Length: 0\r\n\r\n")


def test_url_header_query_values_are_secret_ranges_both_ways():
    """The credential query (or fragment) values in a URL header's value
    (``redaction.URL_HEADERS``: ``Referer``, ``Location``, ``Content-Location``, ``Refresh``'s
    ``url=``) are secret ranges
    as a request target's are, in a request (C2S) and in a response (S2C); ordinary
    parameters, and other headers' queries, are not."""
    conv = HttpConversation()
    out = conv.feed(C2S, _URL_REQ, 0.0)
    assert _secrets(_URL_REQ, out) == [b"abc123"]
    assert {e.direction for e in out if isinstance(e, HttpSecret)} == {C2S}
    out = conv.feed(S2C, _URL_RESP, 1.0)
    assert _secrets(_URL_RESP, out) == [b"k3y", b"s1g", b"t0k", b"f7g"]
    assert {e.direction for e in out if isinstance(e, HttpSecret)} == {S2C}
    # the event keeps the values as sent: the chain's HttpStream redacts the records
    [e] = exchanges(out)
    assert (b"Referer", b"http://h/cb?access_token=abc123&x=1") in e.request.headers
    other = b"GET / HTTP/1.1\r\nX-Next: /a?token=abc\r\nLink: </a?token=abc>\r\n\r\n"
    assert _secrets(other, HttpConversation().feed(C2S, other, 0.0)) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, len(_URL_RESP)), max_size=8))
def test_url_header_ranges_whatever_the_splits(cuts):
    chunks = [(C2S, _URL_REQ + GET), (S2C, _URL_RESP + OK)]
    whole = run(chunks)
    assert split_run(chunks, cuts) == whole
    c2s = [e for e in whole if isinstance(e, HttpSecret) and e.direction == C2S]
    s2c = [e for e in whole if isinstance(e, HttpSecret) and e.direction == S2C]
    assert _secrets(_URL_REQ, c2s) == [b"abc123"]
    assert _secrets(_URL_RESP, s2c) == [b"k3y", b"s1g", b"t0k", b"f7g"]
    conv = HttpConversation()
    conv.feed(C2S, GET, 0.0)
    one = [e for i in range(len(_URL_RESP)) for e in conv.feed(S2C, _URL_RESP[i:i + 1], 0.0)]
    assert _secrets(_URL_RESP, one) == [b"k3y", b"s1g", b"t0k", b"f7g"]


@pytest.mark.parametrize("end", ["eof", "close"])
def test_an_unfinished_head_at_the_end_gives_its_url_header_secrets(end):
    """A side ends inside a head, a request's or a response's: the credential query values of
    its URL header lines (whole, or cut in the value) are secret ranges then, once, after the
    request line's; other headers' queries are not."""
    for direction, head, secrets in (
            (C2S, b"GET /cb?token=s1 HTTP/1.1\r\nReferer: h/?x=1&sig=s3g&a=2\r\nX-A: /?key=k\r\n",
             [b"s1", b"s3g"]),
            (C2S, b"GET / HTTP/1.1\r\nreferer:/p?access_token=s3cr", [b"s3cr"]),
            (S2C, b"HTTP/1.1 302 Found\r\nLocation: /cb?access_token=s3cret\r\nRefresh: 0;url=/",
             [b"s3cret"]),
            (S2C, b"HTTP/1.1 302 Found\r\nLocation: /cb#access_token=s3cr", [b"s3cr"]),
            (S2C, b"HTTP/1.1 302 Found\r\nLocation: /cb?page=2\r\n", [])):
        for step in (len(head), 1):
            conv = HttpConversation()
            out = conv.feed(C2S, GET, 0.0) if direction == S2C else []
            out += [e for i in range(0, len(head), step)
                    for e in conv.feed(direction, head[i:i + step], 0)]
            assert _secrets(head, out) == []  # not before the end: the head may still fail
            if end == "eof":
                out = conv.eof(direction, 1.0)
                assert _secrets(head, out) == secrets
                assert {e.direction for e in out if isinstance(e, HttpSecret)} <= {direction}
                out = conv.close(2.0)
                assert _secrets(head, [e for e in out if isinstance(e, HttpSecret)]) == []
            else:
                out = conv.close(2.0)
                assert _secrets(head, out) == secrets


@pytest.mark.parametrize("direction, head, secrets", [
    (S2C, b"HTTP/1.1 302 Found\r\nLocation: /x\r\n ?token=s3cret\r\nContent-Length: 0\r\n\r\n",
     [b"s3cret"]),
    (S2C, b"HTTP/1.1 302 Found\r\nLocation: /x\r\n #access_token=s3c\r\nContent-Length: 0\r\n\r\n",
     [b"s3c"]),
    (S2C, b"HTTP/1.1 302 Found\r\nLocation: /x?token=abc\r\n\tdef&y=1\r\nContent-Length: 0\r\n\r\n",
     [b"abc", b"def"]),
    (S2C, b"HTTP/1.1 302 Found\r\nLocation:\r\n  /cb?sig=s1g \r\nContent-Length: 0\r\n\r\n",
     [b"s1g"]),
    (C2S, b"GET / HTTP/1.1\r\nReferer: http://h/cb\r\n ?a=1&access_token=t0k\r\nX: ?token=no\r\n\r\n",
     [b"t0k"]),
    # a line that is no header (ignored) between: the fold still goes on the URL header's value
    (S2C, b"HTTP/1.1 302 Found\r\nLocation: /x\r\nno header\r\n ?token=s3c\r\nContent-Length: 0\r\n\r\n",
     [b"s3c"]),
])
def test_a_folded_url_header_gives_its_query_secrets_on_each_line(direction, head, secrets):
    """A URL header (``redaction.URL_HEADERS``) whose value goes on in obsolete folded lines:
    the records show the value joined (its secret redacted), and the pcap's ranges are the
    secret's bytes on whichever lines they are, as a credential header's folds are."""
    conv = HttpConversation()
    out = conv.feed(C2S, GET, 0.0) if direction == S2C else []
    out = conv.feed(direction, head, 1.0) + conv.close(2.0)
    assert _secrets(head, out) == secrets
    assert {e.direction for e in out if isinstance(e, HttpSecret)} == {direction}


def test_a_url_header_folded_many_times_costs_linear_work():
    """A response head of one ``Location`` folded into 1,000 lines, each with a credential
    value: each value's line is found in one sweep, so ``_url_secrets`` runs a few lines of
    Python per fold (counted with a line tracer, not timed); a loop over every line per value
    ran half a million (and took 5 s for a 64 KiB head of 5,900 folds)."""
    import sys

    from playground.decode import httpdecoder

    folds = 1000
    head = (b"HTTP/1.1 302 Found\r\nLocation: /x?token=1\r\n" + b" &token=x\r\n" * folds
            + b"Content-Length: 0\r\n\r\n")
    conv = HttpConversation()
    conv.feed(C2S, GET, 0.0)
    code, executed = httpdecoder._url_secrets.__code__, 0

    def count(frame, event, arg):
        nonlocal executed
        executed += event == "line"
        return count

    def calls(frame, event, arg):
        return count if frame.f_code is code else None

    sys.settrace(calls)
    try:
        out = conv.feed(S2C, head, 1.0)
    finally:
        sys.settrace(None)
    assert 0 < executed < 30 * folds
    assert _secrets(head, out) == [b"1"] + [b"x"] * folds
