"""The decoder chain driven by fake observer calls: detection, fallback, filters, redaction, pcap."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from playground.codec.encoder import encode_command
from playground.decode import records as R
from playground.decode.chain import Chain, HttpFilter
from playground.decode.httpdecoder import HttpStream
from playground.decode.plainviews import HexStream, TextStream
from playground.decode.respdecoder import RespStream, redact_command, secret_parts
from playground.proxy import decoding
from playground.proxy.decoding import check_options
from playground.sinks.console import ConsoleFormatter
from playground.web.capture import Capture
from playground.web.sink import WebSink
from tests.support.chain import (
    GET,
    OK,
    SUMMARY,
    FakePcap,
    ListSink,
    masked_pcap_streams,
    pair,
    rendered,
    view_stream,
)

C2S, S2C = "c2s", "s2c"


def drive(calls, **kw):
    sink = ListSink()
    c = Chain([sink], **kw)
    c.pair_opened(pair(), 0.0)
    for i, (d, data) in enumerate(calls):
        c.data(1, d, data, float(i))
    c.pair_closed(1, SUMMARY, 100.0)
    return c, sink



@pytest.mark.pure
def test_http_exchange_line_and_redaction():
    c, sink = drive([(C2S, GET), (S2C, OK)])
    [ex] = sink.of(R.HttpExchange)
    assert ex.method == b"GET" and ex.status == 200
    text, js = rendered(sink)
    assert "#1 127.0.0.1:51234 GET /api/x -> 200 OK application/json 2 B" in text
    assert "s3cr3t" not in text and "s3cr3t" not in js
    assert [r.protocol for r in sink.of(R.Detected)] == ["http"]
    assert not c.pairs  # state freed at close


@pytest.mark.pure
def test_body_echoing_credentials_is_masked_in_previews():
    """httpbin-style /headers echoes the request's Authorization and Cookie in its body: the
    preview must not leak what the header view redacts."""
    body = (b'{"headers": {"Authorization": "Bearer s3cr3t-token", "Cookie": "sid=s3cr3t-cookie"}}')
    echo = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)
    post = (b"POST /login HTTP/1.1\r\nHost: h\r\nAuthorization: Basic dXNlcjpwYXNz\r\n"
            b"Content-Length: 26\r\n\r\n{\"token\": \"dXNlcjpwYXNz\"}..")
    _, sink = drive([(C2S, GET), (S2C, echo), (C2S, post), (S2C, OK)])
    text, js = rendered(sink)
    assert "s3cr3t" not in text and "s3cr3t" not in js
    assert "dXNlcjpwYXNz" not in text and "dXNlcjpwYXNz" not in js
    assert "(redacted)" in js
    _, sink = drive([(C2S, GET), (S2C, echo)], redact=False)
    _, js = rendered(sink)
    assert "s3cr3t-token" in js


@pytest.mark.pure
@pytest.mark.parametrize("cut", [None, 30, 45])
def test_an_api_key_header_is_redacted_in_records_previews_and_the_pcap(cut):
    req = b"GET /v1 HTTP/1.1\r\nHost: h\r\nX-Api-Key: k3y-s3cret\r\n\r\n"
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n{\"key\":\"k3y-s3cret\"}"
    calls = [(C2S, req), (S2C, ok)] if cut is None else [
        (C2S, req[:cut]), (C2S, req[cut:]), (S2C, ok)]
    pcap = FakePcap()
    _, sink = drive(calls, pcap=pcap)
    text, js = rendered(sink)
    [ex] = sink.of(R.HttpExchange)
    assert (b"X-Api-Key", b"(redacted)") in ex.request_headers
    assert "k3y-s3cret" not in text + js and "k3y-s3cret" not in repr(ex)
    assert pcap.masked(C2S) == req.replace(b"k3y-s3cret", b"*" * 10)


@pytest.mark.pure
def test_no_redact_shows_headers():
    _, sink = drive([(C2S, GET), (S2C, OK)], redact=False)
    _, js = rendered(sink)
    assert "s3cr3t-token" in js and "s3cr3t-set" in js


@pytest.mark.pure
def test_http_filter():
    calls = [
        (C2S, GET),
        (S2C, OK),
        (C2S, b"POST /other HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        (S2C, OK),
    ]
    _, sink = drive(calls, http_filter=HttpFilter("GET /api/*"))
    assert [r.target for r in sink.of(R.HttpExchange)] == [b"/api/x"]
    _, sink = drive(calls, http_filter=HttpFilter("POST"))
    assert [r.target for r in sink.of(R.HttpExchange)] == [b"/other"]
    _, sink = drive(calls, http_filter=HttpFilter("/nothing*"))
    assert sink.of(R.HttpExchange) == []


@pytest.mark.pure
def test_garbage_falls_back_to_hex_and_text_lines():
    _, sink = drive([(C2S, b"\x16\x03\x01\x00\x05hello"), (S2C, b"\x15\x03\x01\x00\x02\x02\x28")])
    assert [r.protocol for r in sink.of(R.Detected)] == ["hex"]
    chunks = sink.of(R.HexChunk)
    assert [(r.direction, r.offset, r.data) for r in chunks] == [
        (C2S, 0, b"\x16\x03\x01\x00\x05hello"),
        (S2C, 0, b"\x15\x03\x01\x00\x02\x02\x28"),
    ]
    _, sink = drive([(S2C, b"220 hi\r\n"), (C2S, b"HELO x\r\n"), (C2S, b"\x1b[2J\n")])
    assert [r.data for r in sink.of(R.TextLine)] == [b"220 hi\r\n", b"HELO x\r\n", b"\x1b[2J\n"]
    text, _ = rendered(sink)
    assert "\x1b" not in text and "\\x1b[2J\\n" in text


@pytest.mark.pure
def test_http_then_garbage_direction_goes_hex():
    _, sink = drive([(C2S, b"GET / HTTP/1.1\r\n\r\n"), (S2C, b"\x00\x01garbage\r\n\r\nxyz")])
    [u] = sink.of(R.Undecodable)
    assert u.direction == S2C and u.protocol == "http"
    assert b"".join(r.data for r in sink.of(R.HexChunk)) == b"\x00\x01garbage\r\n\r\nxyz"


@pytest.mark.pure
def test_decoder_exception_becomes_undecodable_then_hex(monkeypatch):
    def boom(self, direction, data, now, offset):
        raise RuntimeError("bug")

    monkeypatch.setattr(TextStream, "feed", boom)
    c, sink = drive([(C2S, b"hello\n"), (C2S, b"more\n"), (S2C, b"x\n")], decode="text")
    assert c.failures == 2
    assert [r.direction for r in sink.of(R.Undecodable)] == [C2S, S2C]
    assert [r.data for r in sink.of(R.HexChunk)] == [b"hello\n", b"more\n", b"x\n"]


@pytest.mark.pure
def test_forced_decoders():
    _, sink = drive([(C2S, b"GET / HTTP/1.1\r\n\r\n")], decode="hex")
    assert sink.of(R.Detected)[0].forced and sink.of(R.HexChunk)
    _, sink = drive([(C2S, b"\x00\x01\n")], decode="text")
    assert sink.of(R.TextLine)[0].data == b"\x00\x01\n"


@pytest.mark.pure
@pytest.mark.parametrize("decode, stream", [("resp", RespStream), ("http", HttpStream),
                                            ("text", TextStream), ("hex", HexStream)])
def test_each_protocol_is_decoded_by_the_stream_beside_its_decoder(decode, stream):
    """The chain feeds a pair through the adapter that lives with the protocol's decoder; the
    adapter takes the pair's state and says which protocol it decodes."""
    c = Chain([ListSink()], decode=decode)
    c.pair_opened(pair(), 0.0)
    st = c.pairs[1]
    assert type(st.decoder) is stream and stream.protocol == decode and st.decoder.st is st
    for step in ("feed", "eof", "close", "settled"):
        assert callable(getattr(st.decoder, step))


@pytest.mark.pure
def test_half_close_decides_and_flushes():
    sink = ListSink()
    c = Chain([sink])
    c.pair_opened(pair(), 0.0)
    c.data(1, C2S, b"partial", 1.0)
    c.half_closed(1, C2S, 2.0)
    assert sink.of(R.Detected)[0].protocol == "text"
    assert sink.of(R.TextLine)[0].data == b"partial" and sink.of(R.TextLine)[0].partial
    assert isinstance(sink.records[-1], R.HalfClose)


@pytest.mark.pure
def test_unknown_pair_ids_are_ignored():
    c = Chain([ListSink()])
    c.data(99, C2S, b"x", 0.0)
    c.half_closed(99, C2S, 0.0)
    c.pair_closed(99, SUMMARY, 0.0)


# -- pcap hold-back and masking ------------------------------------------------------------


@pytest.mark.pure
def test_pcap_masks_a_secret_split_across_chunks():
    pcap = FakePcap()
    req = GET
    cut = req.index(b"s3cr3t-token") + 3
    c, sink = drive([(C2S, req[:cut]), (C2S, req[cut:]), (S2C, OK[:40]), (S2C, OK[40:])], pcap=pcap)
    assert pcap.stream(C2S) == req and pcap.stream(S2C) == OK
    assert c.leaked == 0
    masked = [req[s:e] for d, s, e in pcap.masks if d == C2S]
    assert masked == [b"Bearer s3cr3t-token", b"sid=s3cr3t-cookie"]
    assert [OK[s:e] for d, s, e in pcap.masks if d == S2C] == [b"sid=s3cr3t-set"]
    assert pcap.events == ["open", "close"]


@pytest.mark.pure
def test_pcap_without_redaction_passes_chunks_through():
    pcap = FakePcap()
    drive([(C2S, GET[:10]), (C2S, GET[10:])], pcap=pcap, redact=False)
    assert [d for _, d in pcap.data_calls] == [GET[:10], GET[10:]]
    assert pcap.masks == []


@pytest.mark.pure
def test_pcap_hex_and_text_pass_at_once():
    pcap = FakePcap()
    drive([(C2S, b"\x00\x01"), (C2S, b"hello\n")], pcap=pcap)
    assert [d for _, d in pcap.data_calls] == [b"\x00\x01", b"hello\n"]


# -- redaction rules --------------------------------------------------------------------------


@pytest.mark.pure
@pytest.mark.parametrize(
    "args, hidden",
    [
        ([b"AUTH", b"pw"], [1]),
        ([b"auth", b"user", b"pw"], [2]),
        ([b"HELLO", b"3", b"AUTH", b"user", b"pw", b"SETNAME", b"x"], [4]),
        ([b"MIGRATE", b"h", b"1", b"", b"0", b"5000", b"AUTH", b"pw", b"KEYS", b"a"], [7]),
        ([b"MIGRATE", b"h", b"1", b"k", b"0", b"5000", b"AUTH2", b"u", b"pw"], [8]),
        ([b"CONFIG", b"SET", b"requirepass", b"pw"], [3]),
        ([b"config", b"set", b"maxmemory", b"1", b"masterauth", b"pw"], [5]),
        ([b"ACL", b"SETUSER", b"bob", b"on", b">pw", b"~*", b"#abc"], [4, 6]),
        ([b"SENTINEL", b"SET", b"m", b"quorum", b"2", b"auth-pass", b"pw"], [6]),
        # Sentinel's own password (Redis 6.2+), one or more parameter-value pairs
        ([b"SENTINEL", b"CONFIG", b"SET", b"sentinel-pass", b"pw"], [4]),
        ([b"sentinel", b"config", b"set", b"sentinel-user", b"u", b"Sentinel-Pass", b"pw"], [6]),
        ([b"SENTINEL", b"CONFIG", b"SET", b"sentinel-user", b"pw"], []),
        ([b"GET", b"AUTH"], []),
        ([b"CONFIG", b"GET", b"requirepass"], []),
    ],
)
def test_redact_args(args, hidden):
    out = redact_command(args)
    idx = [i for i, _ in secret_parts(args)]
    assert idx == hidden
    for i in hidden:
        assert b"pw" not in out[i] and b"abc" not in out[i]
    assert len(out) == len(args)


# -- options ----------------------------------------------------------------------------------


class Opts(usage.Options):
    optParameters = decoding.OPT_PARAMETERS
    optFlags = decoding.OPT_FLAGS

    def postOptions(self):
        check_options(self)


@pytest.mark.pure
def test_options_defaults_and_help():
    o = Opts()
    o.parseOptions([])
    assert o["decode"] == "auto" and o["max-value"] == 200 and o["max-frame"] == 512 * 2**20
    assert "same-length" in str(o)


@pytest.mark.pure
@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--decode", "xml"], "--decode"),
        (["--color", "pink"], "--color"),
        (["--max-value", "-1"], "--max-value"),
        (["--max-frame", "abc"], "--max-frame"),
        (["--decode", "none", "--json", "x"], "--json"),
        (["--http-filter", "GET /a /b"], "--http-filter"),
        (["--pcap", "-"], "--pcap"),
    ],
)
def test_bad_options_name_the_flag(argv, flag):
    with pytest.raises(usage.UsageError, match=flag):
        Opts().parseOptions(argv)


@pytest.mark.memory
def test_build(tmp_path):
    o = Opts()
    o.parseOptions(["--decode", "none"])
    assert decoding.build(o, MemoryReactorClock()) == ([], None)
    o = Opts()
    o.parseOptions(["--json", str(tmp_path / "j"), "--quiet", "--only", "get,Set"])
    services, observer = decoding.build(o, MemoryReactorClock())
    assert [type(s).__name__ for s in services] == ["JsonSink"]
    assert observer.only == frozenset({b"GET", b"SET"})
    o = Opts()
    o.parseOptions(["--pcap", str(tmp_path / "p"), "--decode", "none"])
    services, observer = decoding.build(o, MemoryReactorClock())
    assert [type(s).__name__ for s in services] == ["PcapSink"]
    assert isinstance(observer, Chain) and observer.sinks == []  # decodes only to mask
    o = Opts()
    o.parseOptions(["--quiet"])
    assert decoding.build(o, MemoryReactorClock()) == ([], None)  # nothing to show
    o = Opts()
    o.parseOptions(["--json", "-"])
    services, _ = decoding.build(o, MemoryReactorClock())
    assert [type(s).__name__ for s in services] == ["JsonSink"]  # '-' replaces the console


# -- RESP through the chain (the real respdecoder) ------------------------------------------

def cmd(*args):
    from playground.codec.encoder import encode_command

    return encode_command(*args)


@pytest.mark.pure
def test_config_get_reply_hides_secret_parameters():
    calls = [(C2S, cmd(b"CONFIG", b"GET", b"*pass*")),
             (S2C, b"*4\r\n$11\r\nrequirepass\r\n$7\r\nhunter2\r\n"
                   b"$10\r\nmasterauth\r\n$0\r\n\r\n"),
             (C2S, cmd(b"HELLO", b"3")), (S2C, b"%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
             (C2S, cmd(b"CONFIG", b"GET", b"masterauth")),
             (S2C, b"%1\r\n$10\r\nmasterauth\r\n$6\r\ns3cret\r\n"),
             (C2S, cmd(b"CONFIG", b"GET", b"maxmemory")),
             (S2C, b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n")]
    _, sink = drive(calls)
    text, js = rendered(sink)
    assert "hunter2" not in text + js and "s3cret" not in text + js
    assert "(redacted)" in text and "maxmemory" in text
    _, sink = drive(calls, redact=False)
    text, _ = rendered(sink)
    assert "hunter2" in text and "s3cret" in text


_REFUSED = [  # commands Redis refuses, each with a password in it
    b"*3\r\n$4\r\nAUTH\r\n$10\r\nhunter2XYZ\r\n:1\r\n",  # an integer after it
    b"*2\r\n$4\r\nAUTH\r\n+hunter2XYZ\r\n",  # the password as a simple string
    b"*2\r\n$4\r\nauth\r\n=14\r\ntxt:hunter2XYZ\r\n",  # ... as a verbatim string
    b"*3\r\n$4\r\nAUTH\r\n_\r\n$10\r\nhunter2XYZ\r\n",  # a null before it
    b"*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n+hunter2XYZ\r\n",
    b"*2\r\n$4\r\nAUTH\r\n$10 \r\nhunter2XYZ\r\n",  # a length Redis refuses: given up
    b"*2\r\n$4\r\nAUTH\r\n$1x\r\nhunter2XYZ\r\n",
]
# ... inside an array, or with a name that is not a bulk string: the decoder masks the frame
# whole; the line views take an array inside a command for the next command and look for a
# secret command's name alone on its line (their elements show there)
_NESTED = [b"*2\r\n$4\r\nAUTH\r\n*1\r\n$10\r\nhunter2XYZ\r\n",
           b"*1\r\n*2\r\n$4\r\nAUTH\r\n$10\r\nhunter2XYZ\r\n",
           b"*2\r\n+AUTH\r\n$10\r\nhunter2XYZ\r\n"]


@pytest.mark.pure
@pytest.mark.parametrize("frame, decode", [
    *((f, d) for f in _REFUSED for d in ("auto", "resp", "text", "hex")),
    *((f, d) for f in _NESTED for d in ("auto", "resp"))])
def test_a_password_in_a_command_redis_refuses_is_hidden(frame, decode):
    """A client's command array that is not all bulk strings, or has a bulk length Redis does
    not take, is refused by Redis (Protocol error: expected '$'...), but its password went over
    the wire: it is hidden in the records and masked in the pcap, whether the decoder reads the
    frame (where its secret is is not known: the frame is masked whole) or gives up on it (the
    hex view's line scanner hides the line after the bad length), and in the text and hex
    views; the command after it shows."""
    after = encode_command(b"SET", b"visible", b"v")
    for cut in (None, *range(1, len(frame))):
        calls = [(C2S, frame)] if cut is None else [(C2S, frame[:cut]), (C2S, frame[cut:])]
        pcap = FakePcap()
        c, sink = drive(calls + [(C2S, after),
                                 (S2C, b"-ERR Protocol error: expected '$', got '+'\r\n")],
                        pcap=pcap, decode=decode)
        text, js = rendered(sink)
        assert "hunter2" not in text + js
        assert b"hunter2" not in pcap.masked(C2S) and b"visible" in pcap.masked(C2S)
        assert c.leaked == 0


_SPLIT_C2S = (b"\r\nAUTH pw-one\r\n" + encode_command(b"AUTH", b"bob", b"pw-two")
              + b"PING\r\n  auth carol 'pw three'\r\n"
              + encode_command(b"HELLO", b"3", b"AUTH", b"dan", b"pw-four")
              + b"CONFIG SET masterauth pw-five\r\n" + encode_command(b"CONFIG", b"GET", b"*")
              + b"ACL SETUSER u on >pw-six ~*\r\n" + encode_command(b"SET", b"k", b"v"))
_SPLIT_S2C = (b"+OK\r\n+OK\r\n+PONG\r\n+OK\r\n%1\r\n$5\r\nproto\r\n:3\r\n+OK\r\n"
              b"%2\r\n$10\r\nmasterauth\r\n$7\r\npw-five\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
              b"-ERR Error in ACL SETUSER modifier '>pw-six': no\r\n+OK\r\n")


def _pieces(data: bytes, cuts) -> list:
    points = sorted({c % len(data) for c in cuts} - {0}) + [len(data)]
    return [data[a:b] for a, b in zip([0, *points[:-1]], points, strict=True)]


@pytest.mark.pure
@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 10**6), max_size=10), st.lists(st.integers(0, 10**6), max_size=6))
def test_any_split_gives_the_same_redacted_records_and_pcap(c2s_cuts, s2c_cuts):
    """The same bytes in other reads give the same console lines, JSON and pcap bytes, byte
    for byte (the reads' times alike): inline and array commands with passwords, a RESP3
    CONFIG GET answer, an ACL error echoing a rule."""

    def outputs(c2s_cuts, s2c_cuts):
        pcap = FakePcap()
        calls = [(C2S, piece) for piece in _pieces(_SPLIT_C2S, c2s_cuts)]
        calls += [(S2C, piece) for piece in _pieces(_SPLIT_S2C, s2c_cuts)]
        c = Chain([sink := ListSink()], pcap=pcap)
        c.pair_opened(pair(), 0.0)
        for d, data in calls:
            c.data(1, d, data, 1.0)
        c.pair_closed(1, SUMMARY, 2.0)
        return (*rendered(sink), pcap.masked(C2S), pcap.masked(S2C), c.leaked)

    got = outputs(c2s_cuts, s2c_cuts)
    assert got == outputs([], [])
    text, js, c2s, s2c, _ = got
    for pw in ("pw-one", "pw-two", "pw three", "pw-four", "pw-five", "pw-six"):
        assert pw not in text + js and pw.encode() not in c2s + s2c
    assert b"AUTH ******" in c2s and b"modifier '>******'" in s2c


@pytest.mark.pure
@pytest.mark.parametrize("answer", [
    b"|1\r\n+ttl\r\n:3\r\n%1\r\n$11\r\nrequirepass\r\n$7\r\nhunter2\r\n",  # under attributes
    b"~2\r\n$11\r\nrequirepass\r\n$7\r\nhunter2\r\n",  # a set
    b"%1\r\n+requirepass\r\n+hunter2\r\n",  # simple strings
    b"*2\r\n=15\r\ntxt:requirepass\r\n$7\r\nhunter2\r\n",  # a verbatim name
])
def test_a_config_get_answer_in_any_resp3_shape_hides_the_password(answer):
    """A server speaking RESP3 may shape CONFIG GET's answer otherwise than Redis (attributes
    before it, a set, simple or verbatim strings): the password is hidden all the same, the
    frame masked whole in the pcap where its bytes are not Redis' own."""
    calls = [(C2S, cmd(b"HELLO", b"3") + cmd(b"CONFIG", b"GET", b"requirepass")),
             (S2C, b"%1\r\n$5\r\nproto\r\n:3\r\n" + answer)]
    pcap = FakePcap()
    c, sink = drive(calls, pcap=pcap)
    text, js = rendered(sink)
    assert "hunter2" not in text + js and "(redacted)" in text
    assert b"hunter2" not in pcap.masked(S2C) and c.leaked == 0


_SPLIT_REQS = (b"GET /cb?access_token=tok-one&x=1 HTTP/1.1\r\nHost: h\r\n"
               b"Authorization: Bearer tok-two\r\nCookie: a=1;\r\n b=tok-three\r\n"
               b"X-Api-Key: tok-four\r\nReferer: http://h/p?token=tok-five\r\n\r\n"
               b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n0\r\nAuthorization: Basic\r\n\ttok-six\r\n\r\n")
_SPLIT_RESPS = (b"HTTP/1.1 200 OK\r\nContent-Location: /cb#id_token=tok-seven\r\n"
                b"Set-Cookie: sid=tok-eight\r\nContent-Length: 20\r\n\r\n"
                b"{\"echo\": \"tok-four\"}HTTP/1.1 204 No Content\r\n\r\n")


@pytest.mark.pure
@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 10**6), max_size=10), st.lists(st.integers(0, 10**6), max_size=6))
def test_any_split_of_http_gives_the_same_redacted_records_and_pcap(req_cuts, resp_cuts):
    """HTTP's twin of the RESP split test: credential headers (folded too, in a chunked
    trailer too, X-Api-Key), query and fragment secrets in the target and in URL headers."""

    def outputs(req_cuts, resp_cuts):
        pcap = FakePcap()
        c = Chain([sink := ListSink()], pcap=pcap)
        c.pair_opened(pair(), 0.0)
        for piece in _pieces(_SPLIT_REQS, req_cuts):
            c.data(1, C2S, piece, 1.0)
        for piece in _pieces(_SPLIT_RESPS, resp_cuts):
            c.data(1, S2C, piece, 1.0)
        c.pair_closed(1, SUMMARY, 2.0)
        return (*rendered(sink), pcap.masked(C2S), pcap.masked(S2C), c.leaked)

    got = outputs(req_cuts, resp_cuts)
    assert got == outputs([], [])
    text, js, c2s, s2c, _ = got
    for n in ("one", "two", "three", "four", "five", "six", "seven", "eight"):
        assert f"tok-{n}" not in text + js
        assert f"tok-{n}".encode() not in c2s  # (the body's echo is the server's, kept)
    assert s2c.count(b"tok-") == 1 and "(redacted)" in text


@pytest.mark.pure
def test_sentinel_config_get_reply_hides_sentinel_pass():
    """SENTINEL CONFIG GET answers with Sentinel's own password (sentinel-pass) as CONFIG GET
    answers with requirepass: hidden in the records, masked in the pcap."""
    calls = [(C2S, cmd(b"SENTINEL", b"CONFIG", b"GET", b"*")),
             (S2C, b"*4\r\n$13\r\nsentinel-user\r\n$5\r\nalice\r\n"
                   b"$13\r\nsentinel-pass\r\n$7\r\nhunter2\r\n")]
    pcap = FakePcap()
    _, sink = drive(calls, pcap=pcap)
    text, js = rendered(sink)
    assert "hunter2" not in text + js and "(redacted)" in text and "alice" in text
    assert b"hunter2" not in pcap.masked(S2C) and b"alice" in pcap.masked(S2C)


@pytest.mark.pure
def test_resp_filters_redacts_and_falls_back():
    calls = [(C2S, cmd(b"AUTH", b"hunter2")), (S2C, b"+OK\r\n"), (C2S, cmd(b"PING")),
             (S2C, b"+PONG\r\n"), (C2S, cmd(b"CONFIG", b"SET", b"requirepass", b"newpass")),
             (S2C, b"+OK\r\n"), (C2S, cmd(b"SUBSCRIBE", b"news")),
             (S2C, b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"),
             (S2C, b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"),
             (C2S, cmd(b"UNSUBSCRIBE"))]
    _, sink = drive(calls)
    assert [r.protocol for r in sink.of(R.Detected)] == ["resp"]
    ex = sink.of(R.RedisExchange)
    assert [r.command[0] for r in ex] == [b"AUTH", b"PING", b"CONFIG", b"SUBSCRIBE"]
    assert ex[0].redacted and b"hunter2" not in b"".join(ex[0].command)
    text, js = rendered(sink)
    assert "hunter2" not in text + js and "newpass" not in text + js
    assert '#1 <- message news "hi"' in text
    assert "#1 127.0.0.1:51234 PING -> +PONG" in text
    assert sink.of(R.RedisUnanswered)[0].command == (b"UNSUBSCRIBE",)
    _, sink = drive(calls, skip=frozenset({b"PING"}))
    assert [r.command[0] for r in sink.of(R.RedisExchange)] == [b"AUTH", b"CONFIG", b"SUBSCRIBE"]
    _, sink = drive(calls, only=frozenset({b"PING"}))
    assert [r.command[0] for r in sink.of(R.RedisExchange)] == [b"PING"]
    assert sink.of(R.RedisPush) == [] and sink.of(R.RedisUnanswered) == []
    _, sink = drive([(C2S, cmd(b"PING")), (S2C, b"+PONG\r\n"), (S2C, b"?garbage\r\n"),
                     (S2C, b"more")])
    [u] = sink.of(R.Undecodable)
    assert (u.protocol, u.direction) == ("resp", S2C)
    assert [r.data for r in sink.of(R.HexChunk)] == [b"?garbage\r\n", b"more"]


@pytest.mark.pure
def test_resp_password_masked_in_pcap_even_when_split():
    pcap = FakePcap()
    frame = cmd(b"AUTH", b"user", b"hunter2-pw")
    cut = frame.index(b"hunter2") + 4
    c, _ = drive([(C2S, frame[:cut]), (C2S, frame[cut:]), (S2C, b"+OK\r\n")], pcap=pcap)
    assert pcap.stream(C2S) == frame and c.leaked == 0
    assert [frame[s:e] for d, s, e in pcap.masks] == [b"hunter2-pw"]


@pytest.mark.pure
def test_config_get_password_masked_in_pcap_even_when_split():
    """The answer console and JSON show redacted is masked in the pcap: held back while a
    CONFIG GET waits, its secret values' bytes filled, RESP2 array or RESP3 map, any split."""
    answer2 = b"*4\r\n$11\r\nrequirepass\r\n$7\r\nhunter2\r\n$10\r\nmasterauth\r\n$0\r\n\r\n"
    answer3 = b"%1\r\n$10\r\nmasterauth\r\n$6\r\ns3cret\r\n"
    c2s = cmd(b"CONFIG", b"GET", b"*pass*") + cmd(b"HELLO", b"3") + b"CONFIG GET masterauth\r\n"
    s2c = answer2 + b"%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n" + answer3 + b"+PONG\r\n"
    for step in (len(s2c), 7, 1):
        pcap = FakePcap()
        calls = [(C2S, c2s + cmd(b"PING"))] + [
            (S2C, s2c[i:i + step]) for i in range(0, len(s2c), step)]
        c, sink = drive(calls, pcap=pcap)
        assert pcap.stream(S2C) == s2c and c.leaked == 0
        assert [s2c[s:e] for d, s, e in pcap.masks if d == S2C] == [b"hunter2", b"s3cret"]
        text, js = rendered(sink)
        assert "hunter2" not in text + js and "s3cret" not in text + js
    pcap = FakePcap()
    drive([(C2S, cmd(b"CONFIG", b"GET", b"maxmemory")), (S2C, b"*2\r\n$9\r\nmaxmemory\r\n"),
           (S2C, b"$1\r\n0\r\n")], pcap=pcap)
    assert pcap.masks == []


class RunSink(ListSink):
    takes_runs = True


@pytest.mark.pure
def test_pipelined_reads_come_as_runs_to_sinks_that_take_them():
    """A read answering several ordinary commands is one R.RedisExchanges for sinks that take
    runs; expanded, it is what any other sink gets."""
    from playground.codec.encoder import encode_command

    c2s = b"".join(encode_command("SET", f"k{i}", "v") for i in range(16))
    c2s += encode_command("AUTH", "s3cret") + encode_command("GET", "k1")
    s2c = b"+OK\r\n" * 16 + b"-WRONGPASS no\r\n" + b"$1\r\nv\r\n"
    calls = [(C2S, c2s), (S2C, s2c), (C2S, encode_command("GET", "a") * 3),
             (S2C, b"$1\r\nx\r\n" * 3)]
    sinks = {}
    for kind in (ListSink, RunSink):
        sink = kind()
        c = Chain([sink], decode="resp")
        c.pair_opened(pair(), 0.0)
        for i, (d, data) in enumerate(calls):
            c.data(1, d, data, float(i))
        c.pair_closed(1, SUMMARY, 100.0)
        sinks[kind] = sink
    runs = sinks[RunSink].of(R.RedisExchanges)
    assert [len(r.commands) for r in runs] == [3]  # the AUTH read: exchange by exchange
    assert R.expand(sinks[RunSink].records) == sinks[ListSink].records
    assert not sinks[ListSink].of(R.RedisExchanges)
    assert all(b"s3cret" not in r.command for r in sinks[ListSink].of(R.RedisExchange))
    # the pipelined read, record by record, for a sink that takes no runs
    last = [(r.command, r.reply, r.latency, r.redacted, r.ts)
            for r in sinks[ListSink].of(R.RedisExchange)][-3:]
    assert last == [((b"GET", b"a"), b"x", 1.0, False, 3.0)] * 3


_FRAMES = [encode_command("SET", "k", "v"), encode_command("GET", "k"), encode_command("INCR", "n"),
           encode_command("AUTH", "s3cret"), encode_command("CONFIG", "GET", "requirepass"),
           encode_command("MULTI"), encode_command("EXEC"), encode_command("PING")]
_ANSWERS = {b"SET": b"+OK\r\n", b"GET": b"$1\r\nv\r\n", b"INCR": b":1\r\n",
            b"AUTH": b"-WRONGPASS s3cret\r\n", b"CONFIG": b"*2\r\n$11\r\nrequirepass\r\n$2\r\npw\r\n",
            b"MULTI": b"+OK\r\n", b"EXEC": b"*0\r\n", b"PING": b"+PONG\r\n"}


@pytest.mark.pure
@given(st.lists(st.sampled_from(range(len(_FRAMES))), min_size=1, max_size=40),
       st.lists(st.integers(0, 2000), max_size=3), st.lists(st.integers(0, 600), max_size=3))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_replies_matched_in_bulk_give_the_records_of_exchange_by_exchange(picks, cuts, reply_cuts):
    """A sink taking runs gets, from the replies matched in bulk, the records (redaction
    included) a sink taking none gets exchange by exchange, for any split of the same bytes."""
    c2s = b"".join(_FRAMES[i] for i in picks)
    s2c = b"".join(_ANSWERS[_FRAMES[i].split(b"\r\n")[2]] for i in picks)
    calls = []
    for direction, data, at in ((C2S, c2s, cuts), (S2C, s2c, reply_cuts)):
        prev = 0
        for cut in sorted({c for c in at if 0 < c < len(data)}) + [len(data)]:
            calls.append((direction, data[prev:cut]))
            prev = cut
    sinks = {}
    for kind in (ListSink, RunSink):
        sink = sinks[kind] = kind()
        c = Chain([sink], decode="resp")
        c.pair_opened(pair(), 0.0)
        for i, (d, data) in enumerate(calls):
            c.data(1, d, data, float(i))
        c.pair_closed(1, SUMMARY, 100.0)
    assert R.expand(sinks[RunSink].records) == sinks[ListSink].records
    text, js = rendered(sinks[ListSink])
    assert "s3cret" not in text + js and '"pw"' not in js


# HTTP traffic with --decode resp forced: every header line is an inline command. The credential
# headers' values (after the colon, glued to it or not, any case) are hidden in the console and
# JSON lines and masked in the pcap; redis-server answers such a line with an error echoing its
# arguments, hidden too.
_HTTP_AS_RESP = (b"GET /x HTTP/1.1\r\nHost: h\r\nAuthorization: Basic dXNlcjpwYXNz\r\n"
                 b"Cookie:sid=c00kie-s3cret; b=2\r\nproxy-authorization: Bearer tok3n-s3cret\r\n"
                 b"SET-COOKIE: \"q s3t-s3cret\"\r\n\r\n")
_HTTP_SECRETS = (b"dXNlcjpwYXNz", b"c00kie-s3cret", b"tok3n-s3cret", b"s3t-s3cret")
_ECHOED = (b"-ERR unknown command 'Cookie:sid=c00kie-s3cret;', with args beginning with: "
           b"'b=2' \r\n")


@pytest.mark.pure
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(1, len(_HTTP_AS_RESP) - 1), max_size=4, unique=True))
def test_http_read_as_resp_hides_credential_headers(cuts):
    bounds = [0, *sorted(cuts), len(_HTTP_AS_RESP)]
    calls = [(C2S, _HTTP_AS_RESP[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    calls += [(S2C, b"-ERR unknown command 'GET'\r\n-ERR unknown command 'Host:'\r\n"
               b"-ERR unknown command 'Authorization:', with args beginning with: 'Basic' "
               b"'dXNlcjpwYXNz' \r\n" + _ECHOED)]
    _, sink = drive(calls, decode="resp")
    text, js = rendered(sink)
    for secret in _HTTP_SECRETS:
        assert secret.decode() not in text + js
    assert "Cookie:(redacted)" in text and "Host: h" in text
    streams, leaked = masked_pcap_streams(calls, "resp")
    assert leaked == 0
    for secret in _HTTP_SECRETS:
        assert secret not in streams[C2S] + streams[S2C]
    assert b"Host: h\r\n" in streams[C2S]  # the other lines as they were
    [exchange] = [r for r in sink.of(R.RedisExchange) if r.command[0] == b"Cookie:(redacted)"]
    assert exchange.redacted and b"s3cret" not in repr(exchange.reply).encode()


@pytest.mark.pure
def test_http_read_as_resp_shows_credential_headers_with_no_redact():
    _, sink = drive([(C2S, _HTTP_AS_RESP)], decode="resp", redact=False)
    text, _ = rendered(sink)
    assert all(secret.decode() in text for secret in _HTTP_SECRETS)


# a request whose target carries credentials in its query, answered by an httpbin-style /get
# echo of its arguments; the second one (a list's name, a fragment) is left without an answer
_Q_GET = b"GET /get?access_token=s3cr3t-tok&page=2&API_KEY=s3cr3t%2Dkey HTTP/1.1\r\nHost: h\r\n\r\n"
_Q_BODY = b'{"args": {"access_token": "s3cr3t-tok", "API_KEY": "s3cr3t-key", "page": "2"}}'
_Q_ECHO = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
           % len(_Q_BODY) + _Q_BODY)
_Q_LEFT = b"GET /cb?x=1&password[]=s3cr3t-pw&y#access_token=s3cr3t-fr HTTP/1.1\r\nHost: h\r\n\r\n"


@pytest.mark.pure
@pytest.mark.parametrize("cut", [None, 9, 30, 60])
def test_credential_query_values_are_redacted_in_records_previews_and_the_pcap(cut):
    c2s = _Q_GET + _Q_LEFT
    calls = ([(C2S, c2s)] if cut is None else [(C2S, c2s[:cut]), (C2S, c2s[cut:])])
    calls.append((S2C, _Q_ECHO))
    _, sink = drive(calls)
    done, left = sink.of(R.HttpExchange)
    assert done.target == b"/get?access_token=(redacted)&page=2&API_KEY=(redacted)"
    assert left.target == b"/cb?x=1&password[]=(redacted)&y#access_token=(redacted)"
    assert left.status is None
    text, js = rendered(sink)
    assert "s3cr3t" not in text + js
    assert done.response_preview == _Q_BODY.replace(b"s3cr3t-tok", b"(redacted)").replace(
        b"s3cr3t-key", b"(redacted)")  # the echo, its value percent-decoded too
    assert "GET /get?access_token=(redacted)&page=2&API_KEY=(redacted) -> 200" in text
    streams, leaked = masked_pcap_streams(calls, "http")
    assert leaked == 0 and b"s3cr3t" not in streams[C2S]
    assert streams[C2S] == c2s.replace(b"s3cr3t-tok", b"*" * 10).replace(
        b"s3cr3t%2Dkey", b"*" * 12).replace(b"s3cr3t-pw", b"*" * 9).replace(
        b"s3cr3t-fr", b"*" * 9)  # same length, same place
    assert streams[S2C] == _Q_ECHO  # a body is masked in the previews only, as for headers
    _, sink = drive(calls, redact=False)
    assert sink.of(R.HttpExchange)[0].target == _Q_GET.split()[1]


@pytest.mark.pure
@pytest.mark.parametrize("blank", [b"\x0b", b"\x0c", b"\t"])
def test_a_request_line_split_by_other_white_space_hides_its_query_secrets_in_the_hex_view(
        blank):
    """The decoder reads no request in ``GET<VT>/cb?... HTTP/1.1`` (a server splits at spaces
    only) and shows the bytes; a lenient server may split there, so its query's secrets are
    hidden all the same: in the hex view, the text records and the pcap."""
    data = (b"GET" + blank + b"/cb?access_token=s3cret-tok&x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    calls = [(C2S, data), (S2C, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")]
    _, sink = drive(calls, decode="http")
    assert not [ex for ex in sink.of(R.HttpExchange) if ex.method is not None]
    text, js = rendered(sink)
    assert "s3cret" not in text + js, text
    streams, leaked = masked_pcap_streams(calls, "http")
    assert leaked == 0 and streams[C2S] == data.replace(b"s3cret-tok", b"*" * 10)


@pytest.mark.pure
def test_a_target_without_a_credential_query_keeps_its_bytes():
    target = b"/search?q=token&page=2"
    _, sink = drive([(C2S, b"GET %s HTTP/1.1\r\n\r\n" % target), (S2C, OK)])
    [ex] = sink.of(R.HttpExchange)
    assert ex.target == target


# credential query values in URL headers: a request's Referer, a redirect's Location and
# Refresh (and an OAuth implicit grant's fragment in its Content-Location), and an
# httpbin-style /headers echo of the Referer
_U_GET = (b"GET /next HTTP/1.1\r\nHost: h\r\nReferer: http://h/cb?access_token=s3cr3t-tok&x=1\r\n"
          b"X-Note: /a?token=plain-tok\r\n\r\n")
_U_BODY = b'{"headers": {"Referer": "http://h/cb?access_token=s3cr3t-tok&x=1"}}'
_U_ECHO = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
           % len(_U_BODY) + _U_BODY)
_U_GET2 = b"GET /login HTTP/1.1\r\nHost: h\r\n\r\n"
_U_302 = (b"HTTP/1.1 302 Found\r\nLocation: /cb?code=7&access_token=s3cr3t-loc\r\n"
          b"Refresh: 0; url=/r?sig=s3g\r\nContent-Location: /cb#access_token=s3cr3t-frg&state=7\r\n"
          b"Content-Length: 0\r\n\r\n")


@pytest.mark.pure
@pytest.mark.parametrize("cut", [None, 1, 40, 70])
def test_url_header_query_values_are_redacted_in_records_previews_the_pcap_and_the_view(cut):
    """``Referer`` (C2S), ``Location`` and ``Refresh`` (S2C) values' credential query parameters
    are hidden as a request target's: ``(redacted)`` in the records' headers (console, JSON),
    the echo masked in previews, same-length ``*`` in the pcap and the web view's stream, with
    nothing released before its mask (the response head held until its spans are known)."""
    c2s, s2c = _U_GET + _U_GET2, _U_ECHO + _U_302
    calls = []
    for d, data in ((C2S, c2s), (S2C, s2c)):
        calls += [(d, data)] if cut is None else [(d, data[:cut]), (d, data[cut:])]
    _, sink = drive(calls)
    echo, redirect = sink.of(R.HttpExchange)
    assert (b"Referer", b"http://h/cb?access_token=(redacted)&x=1") in echo.request_headers
    assert (b"X-Note", b"/a?token=plain-tok") in echo.request_headers  # not a URL header
    assert (b"Location", b"/cb?code=7&access_token=(redacted)") in redirect.response_headers
    assert (b"Refresh", b"0; url=/r?sig=(redacted)") in redirect.response_headers
    assert (b"Content-Location", b"/cb#access_token=(redacted)&state=7") in (
        redirect.response_headers)
    assert b"s3cr3t" not in echo.response_preview and b"(redacted)" in echo.response_preview
    text, js = rendered(sink)
    verbose = "\n".join(line for r in sink.records
                        for line in ConsoleFormatter(False, 200, 2).lines(r))
    assert "Referer: http://h/cb?access_token=(redacted)&x=1" in verbose
    assert "Location: /cb?code=7&access_token=(redacted)" in verbose
    for shown in (text, js, verbose):
        assert "s3cr3t" not in shown and "s3g" not in shown
    assert '"access_token=(redacted)' not in js and "access_token=(redacted)&x=1" in js
    masked = {C2S: c2s.replace(b"s3cr3t-tok", b"*" * 10),
              S2C: s2c.replace(b"s3cr3t-loc", b"*" * 10).replace(b"s3g", b"***").replace(
                  b"s3cr3t-frg", b"*" * 10)}
    streams, leaked = masked_pcap_streams(calls, "http")
    assert leaked == 0 and streams == masked  # same length, same place; bodies as sent
    view = WebSink(Capture())
    chain = Chain([view], pcap=view, decode="http")
    chain.pair_opened(pair(), 0.0)
    for i, (d, data) in enumerate(calls):
        chain.data(1, d, data, float(i + 1))
        for direction in (C2S, S2C):  # what the API serves between the reads
            shown = view_stream(view.capture, direction)
            assert shown == masked[direction][:len(shown)]
    chain.pair_closed(1, SUMMARY, 100.0)
    assert {d: view_stream(view.capture, d) for d in (C2S, S2C)} == masked
    _, sink = drive(calls, redact=False)
    assert sink.of(R.HttpExchange)[1].response_headers[0] == (
        b"Location", b"/cb?code=7&access_token=s3cr3t-loc")


_CLOSE_DELIMITED = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nstreamed until the close"


@pytest.mark.pure
@pytest.mark.parametrize("closed_by,how,fin_first,complete", [
    ("server", "reset", False, False),  # the server's RST (SO_LINGER 0)
    ("proxy", "reset", False, False),  # the proxy's force-close (the web view's close, rst)
    ("web", "fin", False, False),  # a force-close by FIN: the server never ended the body
    ("client", "reset", False, False),  # the client went first: the body was cut off
    ("server", "fin", True, True),  # the server's FIN, passed on as a half-close
    ("server", "fin", False, True),  # a clean close with no half-close (TLS close_notify)
])
def test_a_close_delimited_response_is_cut_unless_the_server_closed_cleanly(
        closed_by, how, fin_first, complete):
    sink = ListSink()
    c = Chain([sink])
    c.pair_opened(pair(), 0.0)
    c.data(1, C2S, b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n", 1.0)
    c.data(1, S2C, _CLOSE_DELIMITED, 2.0)
    if fin_first:
        c.half_closed(1, S2C, 3.0)
    c.pair_closed(1, {**SUMMARY, "closed_by": closed_by, "how": how}, 4.0)
    [ex] = sink.of(R.HttpExchange)
    assert ex.status == 200 and ex.response_body_size == len(b"streamed until the close")
    assert ex.complete is complete
    _, js = rendered(sink)
    assert f'"complete": {str(complete).lower()}' in js


@pytest.mark.pure
@pytest.mark.parametrize("fin", [True, False])
def test_an_unfinished_head_is_masked_in_the_pcap_from_its_query_secrets_as_from_a_credential(
        fin):
    """The connection ends in the middle of a request head: its query secrets are masked in
    the pcap as its credential headers are (``Chain._unsettled_end``), not written in clear."""
    data = b"GET /cb?access_token=s3cret-tok&x=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic s3c"
    if fin:
        pcap = FakePcap()
        chain = Chain([ListSink()], pcap=pcap, decode="http")
        chain.pair_opened(pair(), 0.0)
        chain.data(1, C2S, data, 1.0)
        chain.half_closed(1, C2S, 2.0)
        chain.pair_closed(1, SUMMARY, 3.0)
        stream, leaked = pcap.masked(C2S), chain.leaked
    else:
        streams, leaked = masked_pcap_streams([(C2S, data)], "http")
        stream = streams[C2S]
    assert leaked == 0 and b"s3cret-tok" not in stream and b"s3c" not in stream
    # the line scanner sees the query secret too: with a FIN, what was never settled goes out
    # masked from it on (``Chain._unsettled_end``), as from a credential header
    assert stream.startswith(b"GET /cb?access_token=" + b"*" * 10)


@pytest.mark.pure
@pytest.mark.parametrize("fin", [True, False])
@pytest.mark.parametrize("direction,data", [
    (C2S, b"GET /a HTTP/1.1\r\nReferer: http://h/cb?access_token=s3cret-tok&x=1\r\nHost: x"),
    (C2S, b"GET /a HTTP/1.1\r\nReferer: http://h/cb?access_token=s3cret-tok"),  # cut in it
    (S2C, b"HTTP/1.1 302 Found\r\nLocation: /cb?access_token=s3cret-tok\r\nContent-Le"),
    (S2C, b"HTTP/1.1 302 Found\r\nLocation: /cb#access_token=s3cret-tok\r\nContent-Le"),
])
def test_an_unfinished_head_is_masked_in_the_pcap_from_its_url_header_secrets(
        fin, direction, data):
    """The connection ends in the middle of a head (the request's, or a redirect's): the
    credential query values of its complete URL header lines, or of one cut in its value, are
    masked in the pcap as a request line's are, not written in clear (the line scanner finds
    them too: what the decoder never settled goes out masked from the first one on)."""
    calls = [(C2S, GET)] if direction == S2C else []
    calls.append((direction, data))

    def run(sink, pcap):
        chain = Chain([sink], pcap=pcap, decode="http")
        chain.pair_opened(pair(), 0.0)
        for i, (d, chunk) in enumerate(calls):
            chain.data(1, d, chunk, float(i + 1))
        if fin:
            chain.half_closed(1, direction, 5.0)
        chain.pair_closed(1, SUMMARY, 6.0)
        return chain

    pcap = FakePcap()
    chain = run(ListSink(), pcap)
    stream = pcap.masked(direction)
    shown = data[:data.index(b"s3cret")] + b"*" * 10
    assert chain.leaked == 0 and b"s3cret" not in stream and stream.startswith(shown)
    view = WebSink(Capture())  # the web view's stream, held back per batch, the same
    run(view, view)
    assert b"s3cret" not in view_stream(view.capture, direction)
    assert view_stream(view.capture, direction).startswith(shown)
