"""Credentials in the text and hex views: the pure line scanner, then the chain's views with a
pcap, whatever the split of the bytes and whatever the detector decided."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playground.decode import records as R
from playground.decode.chain import Chain
from playground.decode.linesecrets import LineSecrets, StreamMask, mask, redact
from playground.decode.redaction import REDACTED
from tests.support.chain import SUMMARY, FakePcap, ListSink, pair, rendered

pytestmark = pytest.mark.pure

C2S, S2C = "c2s", "s2c"


def secrets_of(lines) -> list[bytes]:
    """The secret bytes ``LineSecrets`` finds in ``lines`` (each with its line end)."""
    s = LineSecrets()
    return [line[a:b] for line in lines for a, b in s.line(line)]


@pytest.mark.parametrize(
    "lines, found",
    [
        ([b"AUTH s3cret\r\n"], [b"s3cret"]),
        ([b"  auth default s3cret\n"], [b"s3cret"]),
        ([b"\x0bAUTH s3cret\r\n"], [b"s3cret"]),
        ([b'AUTH "s3 cret"\r\n'], [b'"s3 cret"']),
        ([b'AUTH "s3cret\r\n'], [b'"s3cret']),  # unbalanced: Redis refuses it, still hidden
        ([b'"\\x41UTH" s3cret\r\n'], [b"s3cret"]),  # Redis decodes the escape: AUTH
        # after blanks, with a ``?`` or a ``#`` (what a URL header's folded line may hold): a
        # command still, for Redis; and after a URL header, a fold of it, or a command
        ([b"  AUTH pa#ss\r\n"], [b"pa#ss"]),
        ([b"\tauth default pa?ss\r\n"], [b"pa?ss"]),
        ([b"Location: /cb?a=1\r\n", b"  auth default s3cret\r\n"], [b"s3cret"]),
        ([b"HELLO 3 AUTH default s3cret SETNAME x\r\n"], [b"s3cret"]),
        ([b"CONFIG SET maxmemory 1 requirepass s3cret\r\n"], [b"s3cret"]),
        ([b"config set masterauth s3cret\r\n"], [b"s3cret"]),
        ([b"ACL SETUSER bob on >s3cret ~*\r\n"], [b"s3cret"]),
        ([b"MIGRATE h 1 k 0 5000 AUTH s3cret\r\n"], [b"s3cret"]),
        ([b"SENTINEL CONFIG SET sentinel-pass s3cret\r\n"], [b"s3cret"]),
        ([b"Authorization: Basic czNjcmV0\r\n"], [b"Basic czNjcmV0"]),
        ([b"proxy-authorization:Bearer t0k\n"], [b"Bearer t0k"]),
        ([b"Cookie: a=1\r\n", b"\tb=s3cret \r\n", b"  c=2\r\n", b"Host: x\r\n", b" y\r\n"],
         [b"a=1", b"b=s3cret", b"c=2"]),
        ([b"Set-Cookie:\r\n", b" sid=s3cret\r\n"], [b"sid=s3cret"]),
        ([b"X-Api-Key: s3cret\r\n", b"private-token:t0k\r\n"], [b"s3cret", b"t0k"]),
        ([b"session:42\r\n", b"key:1\r\n", b"token: x\r\n"], []),  # Redis keys, words
        ([b"GET foo\r\n", b"SET AUTH x\r\n", b"Cookies: no\r\n", b"hello\r\n", b"\r\n"], []),
        ([b"CONFIG GET requirepass\r\n", b"AUTH\r\n"], []),
    ],
)
def test_secret_lines(lines, found):
    assert secrets_of(lines) == found


def test_a_cut_line_stays_secret_to_its_end():
    s = LineSecrets()
    assert s.line(b"AUTH ", partial=True) == []  # the password comes in the next piece
    assert s.line(b"x" * 10, partial=True) == [(0, 10)]
    assert s.line(b"yy\r\n") == [(0, 2)]
    assert s.line(b"PING\r\n") == []
    assert s.line(b"PING " + b"z" * 10, partial=True) == []
    assert s.line(b"AUTH zz\r\n") == []  # the rest of PING's line


@pytest.mark.parametrize(
    "tail, pending",
    [
        (b"", False), (b"A", True), (b"au", True), (b"AUTH", True), (b"AUTH s3c", True),
        (b"  HEL", True), (b"Cook", True), (b"Cookie:", True), (b"cookie: a", True),
        (b"Proxy-Auth", True), (b"   ", True), (b'"AU', True),
        (b"AUTHX", False), (b"GET k", False), (b"*2", False), (b"$6", False), (b"+OK", False),
        (b"\x00\x01\x02", False), (b"Cookies: x", False), (b"hi world", False), (b"hello world", True),
        # a request line whose target has a query: its value may be a credential's
        (b"GET /x?to", True), (b"GET\t/x?", True), (b"GET /x", False), (b"what?", False),
    ],
)
def test_pending_tail(tail, pending):
    assert LineSecrets().pending(tail) is pending


def test_pending_after_a_header_or_a_cut_line():
    s = LineSecrets()
    s.line(b"Cookie: a=1\r\n")
    assert s.pending(b" b=2") and s.pending(b"\t") and not s.pending(b"Host: x")
    s = LineSecrets()
    s.line(b"AUTH " + b"x" * 10, partial=True)
    assert s.pending(b"anything")
    s = LineSecrets()
    s.line(b"ECHO " + b"x" * 10, partial=True)
    assert not s.pending(b"AUTH x")


def test_redact_and_mask():
    assert redact(b"AUTH u pw\r\n", [(7, 9), (5, 6)]) == b"AUTH (redacted) (redacted)\r\n"
    assert mask(b"AUTH pw\r\n", [(105, 107)], 100) == b"AUTH **\r\n"
    assert mask(b"abc", [(0, 1)], 10) == b"abc"


@pytest.mark.parametrize("line, found", [
    (b"GET /cb?x=1&access_token=s3cret HTTP/1.1\r\n", [b"s3cret"]),
    (b"GET\t/cb?API-KEY=s3cret&y=2\tHTTP/1.1\n", [b"s3cret"]),
    (b"  GET  http://h/x?a=1;sig=s3cret  HTTP/1.0\r\n", [b"s3cret"]),
    (b"GET /cb#access_token=s3cret&token_type=bearer HTTP/1.1\r\n", [b"s3cret"]),  # a fragment
    (b"GET /cb?access_token[]=s3cret HTTP/1.1\r\n", [b"s3cret"]),
    (b"GET /search?q=token&page=2 HTTP/1.1\r\n", []),  # ordinary queries as they were
    (b"what? token=s3cret\r\n", []),  # no request line
    # no version (HTTP/0.9), or more words: the HTTP decoder rejects the line and its hex view
    # shows it, so its query is hidden all the same
    (b"GET /x?token=s3cret\r\n", [b"s3cret"]),
    (b"GET /x#access_token=s3cret&y=1\n", [b"s3cret"]),
    (b"GET /x?token=s3cret HTTP/1.1 junk\r\n", [b"s3cret"]),
])
def test_request_line_query_secrets(line, found):
    assert secrets_of([line]) == found


@pytest.mark.parametrize("line, found", [
    (b"Referer: http://h/cb?x=1&access_token=s3cret\r\n", [b"s3cret"]),
    (b"LOCATION:/cb?API-KEY=s3cret&y=2\n", [b"s3cret"]),
    (b"Content-Location: /c?sig=s1g;token=s3cret\r\n", [b"s1g;token=s3cret"]),
    (b"Refresh: 0; url=/r?token=s3cret\r\n", [b"s3cret"]),
    (b"Location: https://app/cb#access_token=s3cret&state=x\r\n", [b"s3cret"]),  # implicit grant
    (b"Location: /#/cb?id_token[]=s3cret\r\n", [b"s3cret"]),  # a hash route's query
    (b"Location: /search?q=token&page=2\r\n", []),  # ordinary queries as they were
    (b"X-Next: /a?token=s3cret\r\n", []),  # not a URL header
])
def test_url_header_query_secrets(line, found):
    assert secrets_of([line]) == found


def test_a_url_header_line_is_held_while_incomplete_and_cut_hides_its_rest():
    s = LineSecrets()
    for tail in (b"Lo", b"Location", b"Referer: http://h/", b"refresh:0;url=/x?tok"):
        assert s.pending(tail), tail
    assert not s.pending(b"Host: x")
    assert s.line(b"Referer: /x?a=1&to", partial=True) == [(12, 18)]
    assert s.line(b"ken=s3cret\r\n") == [(0, 10)]
    assert s.line(b"Host: x\r\n") == []


def test_a_request_line_cut_in_its_query_hides_its_rest():
    s = LineSecrets()
    assert s.line(b"GET /x?a=1&to", partial=True) == [(7, 13)]
    assert s.line(b"ken=s3cret HTTP/1.1\r\n") == [(0, 19)]
    assert s.line(b"Host: x\r\n") == []


def test_a_request_line_cut_in_the_read_after_its_start_is_masked_in_the_hex_view():
    m = StreamMask(0, max_line=64)
    assert m.feed(b"GET /x") == (b"GET /x", 0, [])  # no query yet: nothing held
    shown, at, found = m.feed(b"?token=" + b"Zq345678" * 10)  # cut at 64 bytes, no line end
    shown += m.feed(b" HTTP/1.1\r\n")[0] + m.flush()[0]
    assert b"Zq3" not in shown and shown.startswith(b"?token=****")


def test_a_request_line_whose_first_word_was_shown_alone_is_masked_in_the_hex_view():
    """``G`` went out alone (no name starts so); the next read makes the line a request line
    with a query, held back longer than that read: none of its secret may go out before the
    line ends (it did: the held part was counted from the line's start, ``s3cre`` shown)."""
    m = StreamMask(0)
    out = [m.feed(b"G"), m.feed(b"ET /x?token=s3cret"), m.feed(b"-more HTTP/1.1\r\n"),
           m.flush()]
    assert out[0] == (b"G", 0, [])
    assert b"".join(shown for shown, _, _ in out) == b"GET /x?token=*********** HTTP/1.1\r\n"


@pytest.mark.parametrize("line", [
    b"GET /" + b"p" * 5000 + b"?token=s3cretXYZ HTTP/1.1\r\n",
    b"Location: /" + b"p" * 5000 + b"?a=1&token=s3cretXYZ\r\n",
    b"Referer: http://h/?x=" + b"p" * 5000 + b"&token=s3cretXYZ\r\n",
])
@pytest.mark.parametrize("step", [None, 1000, 7])
def test_a_query_after_the_line_bound_is_masked_in_the_hex_and_text_views(line, step):
    """A request target or a URL header's value longer than the line bound (4 KiB) before its
    ``?``: the query is in the cut line's rest, whose beginning said nothing yet (it was
    shown in clear: ``GET /ppp...?token=s3cretXYZ``)."""
    m = StreamMask(0)
    step = step or len(line)
    out = [m.feed(line[i:i + step]) for i in range(0, len(line), step)] + [m.flush()]
    shown = b"".join(chunk for chunk, _, _ in out)
    i = line.find(b"s3cretXYZ")
    assert len(shown) == len(line) and shown[i:i + 9] == b"*" * 9
    secrets = LineSecrets()
    pieces = [line[:4096], line[4096:]]
    text = [redact(p, secrets.line(p, partial=i == 0)) for i, p in enumerate(pieces)]
    assert b"s3cret" not in b"".join(text) and REDACTED in text[1]


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 302 Found\r\nLocation: /x\r\n ?token=s3cretXYZ\r\nX: 1\r\n\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: /x?token=ab\r\n\ts3cretXYZ&y=1\r\n\r\n",
    b"GET / HTTP/1.1\r\nReferer: http://h/?a=1\r\n &sig=s3cretXYZ&y=2\r\n\r\n",
])
@pytest.mark.parametrize("step", [1, 5, 17, 1000])
def test_a_folded_url_header_is_masked_in_the_hex_view(head, step):
    """A URL header's value going on in an obsolete folded line: its query's credential
    values there are masked (they went out in clear), whichever read the header came in."""
    m = StreamMask(0)
    out = [m.feed(head[i:i + step]) for i in range(0, len(head), step)] + [m.flush()]
    shown = b"".join(chunk for chunk, _, _ in out)
    i = head.find(b"s3cretXYZ")
    assert len(shown) == len(head) and shown[i:i + 9] == b"*" * 9
    assert shown.replace(b"*", b"") == head.replace(b"s3cretXYZ", b"").replace(b"=ab", b"=")


def test_stream_mask_holds_only_a_possible_secret_line():
    m = StreamMask(100)
    assert m.feed(b"\x00\x01PING\r\nAU") == (b"\x00\x01PING\r\n", 100, [])
    assert m.held == 108
    assert m.feed(b"TH pw\r\nGET k") == (b"AUTH **\r\nGET k", 108, [(113, 115)])
    assert m.held is None
    assert m.feed(b"\r\nCookie: x") == (b"\r\n", 122, [])
    assert m.flush() == (b"Cookie: *", 124, [(132, 133)])


# -- the chain's text and hex views, with a pcap --------------------------------------------

_PW = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=6, max_size=12).map(
    lambda s: b"Zq" + s.encode())

_REDIS_LINES = [
    lambda pw: b"AUTH " + pw,
    lambda pw: b"  auth default " + pw,
    lambda pw: b"\tAUTH " + pw + b"#1",  # after blanks, with a '#': no URL's folded line
    lambda pw: b"HELLO 3 AUTH default " + pw,
    lambda pw: b"CONFIG SET requirepass " + pw,
    lambda pw: b"ACL SETUSER bob on >" + pw + b" ~*",
    lambda pw: b"MIGRATE h 1 k 0 5000 AUTH " + pw,
    lambda pw: b'AUTH "' + pw + b' x"',
    lambda pw: b'"\\x41uth" ' + pw,
    lambda pw: b"AUTH " + pw * 500,  # longer than a line view's bound: cut in pieces
]
_HTTP_LINES = [
    lambda pw: b"Authorization: Basic " + pw,
    lambda pw: b"Proxy-Authorization: Bearer " + pw,
    lambda pw: b"Cookie: a=1\r\n\tsid=" + pw,
    lambda pw: b"Set-Cookie: sid=" + pw + b"; HttpOnly",
    lambda pw: b"Cookie: " + pw * 500,
]
# request lines whose query carries a credential (``redaction.query_secrets``): the text and hex
# views hid Authorization but showed ?access_token=... in clear (--decode text|hex, or the views
# an HTTP decoder falls back to)
_REQUEST_LINES = [
    lambda pw: b"GET /cb?x=1&access_token=" + pw + b" HTTP/1.1",
    lambda pw: b"GET\t/cb?API-KEY=" + pw + b"&y=2\tHTTP/1.1",
    lambda pw: b" POST http://h/a?%61ccess_token=" + pw + b"  HTTP/1.0",
    lambda pw: b"GET /x?token=" + pw * 500 + b" HTTP/1.1",  # cut in the value
    lambda pw: b"GET /x?" + b"a=1&" * 1100 + b"sig=" + pw + b" HTTP/1.1",  # cut before it
    # URL headers' values (``redaction.URL_HEADERS``), a request's or a redirect's
    lambda pw: b"Referer: http://h/cb?x=1&access_token=" + pw,
    lambda pw: b"location:/a?sig=" + pw + b"&b=2",
    lambda pw: b"Refresh: 0; url=/r?token=" + pw * 500,  # cut in the value
    # a fragment's parameters (an OAuth implicit grant's redirect), a list's name
    lambda pw: b"GET /cb#access_token=" + pw + b"&x=1 HTTP/1.1",
    lambda pw: b"Location: https://app/cb#access_token=" + pw + b"&token_type=bearer",
    lambda pw: b"Location: /cb#id_token=" + pw * 500,  # cut in the value
    lambda pw: b"GET /x?token[]=" + pw + b" HTTP/1.1",
    # an HTTP/0.9 request line (no version), and one with a word too many
    lambda pw: b"GET /x?token=" + pw,
    lambda pw: b"GET /cb#access_token=" + pw + b"&x=1",
    lambda pw: b"GET /x?a=1&sig=" + pw + b" HTTP/1.1 junk",
    # a target or URL longer than the line bound before its '?': the query is in a cut rest
    lambda pw: b"GET /" + b"p" * 4100 + b"?token=" + pw + b" HTTP/1.1",
    lambda pw: b"Location: http://h/" + b"p/" * 2100 + b"?a=1&sig=" + pw,
    lambda pw: b"GET /" + b"p" * 4100 + b"#access_token=" + pw + b" HTTP/1.1",
    # a URL header's value folded (obsolete line folding) before or inside its query
    lambda pw: b"Location: /x\r\n ?a=1&token=" + pw,
    lambda pw: b"Location: /x\r\n\t#access_token=" + pw,
    lambda pw: b"Referer: http://h/?x=1&token=ab\r\n\t" + pw + b"&y=2",
]


@st.composite
def streams(draw, kinds=(_REDIS_LINES + _HTTP_LINES + _REQUEST_LINES,)):
    """Lines, secret or not, each with a line end; returns (bytes, passwords). ``kinds``: the
    lists of secret lines one stream draws from (one list per stream)."""
    secret_lines = draw(st.sampled_from(kinds))
    http = secret_lines is _HTTP_LINES
    parts, pws = [], []
    if http:
        parts.append(b"\r\n" * draw(st.integers(0, 2)) + b"GET / HTTP/1.1\r\n")
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            pw = draw(_PW)
            pws.append(pw)
            line = draw(st.sampled_from(secret_lines))(pw)
        else:
            line = draw(st.one_of(
                st.binary(max_size=30),
                st.sampled_from([b"PING", b"GET k", b"+OK", b"$6", b"*2", b"Host: x"]),
            )).replace(b"\n", b"_").replace(b"Zq", b"zq")
            if http and line[:1].isspace():
                line = b"X" + line  # a folded line of a header before it would be masked
        parts.append(line + draw(st.sampled_from([b"\r\n", b"\n"])))
    if http or draw(st.booleans()):
        parts.append(b"\r\n")
    return b"".join(parts), pws


def _cuts(data, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)], strict=True) if b > a]


def _run(decode, chunks, directions=(C2S, S2C)):
    sink, pcap = ListSink(), FakePcap()
    c = Chain([sink], pcap=pcap, decode=decode)
    c.pair_opened(pair(), 0.0)
    for i, chunk in enumerate(chunks):
        for d in directions:
            c.data(1, d, chunk, float(i))
    c.half_closed(1, C2S, 50.0)
    c.pair_closed(1, SUMMARY, 100.0)
    return c, sink, pcap


def _masked(pcap, direction):
    return pcap.masked(direction)


def _views(sink):
    text = sorted(((r.direction, r.offset, r.data, r.partial) for r in sink.of(R.TextLine)),
                  key=lambda t: t[:2])
    hexed = {d: b"".join(r.data for r in sink.of(R.HexChunk) if r.direction == d)
             for d in (C2S, S2C)}
    return text, hexed


@settings(max_examples=150)
@given(st.data(), st.lists(st.integers(0, 10**6), max_size=8),
       st.sampled_from(["text", "hex", "auto"]))
def test_no_secret_in_any_record_or_the_pcap_whatever_the_split(draw, cuts, decode):
    """``text``/``hex``: any mix of lines, both ways. ``auto``: a client speaking Redis inline
    commands or sending an HTTP request head (blank lines first or not), detection decides."""
    if decode == "auto":
        data, pws = draw.draw(streams((_REDIS_LINES, _HTTP_LINES)))
        directions = (C2S,)
    else:
        data, pws = draw.draw(streams())
        directions = (C2S, S2C)
    c, sink, pcap = _run(decode, _cuts(data, cuts), directions)
    text, js = rendered(sink)
    hexed = b"".join(r.data for r in sink.of(R.HexChunk))
    for direction in directions:
        assert pcap.stream(direction) == data  # every byte, in order
        masked = _masked(pcap, direction)
        assert len(masked) == len(data)
        for pw in pws:
            assert pw not in masked
    for pw in pws:
        assert pw.decode() not in text and pw.decode() not in js and pw not in hexed
    assert c.leaked == 0 and c.failures == 0
    if decode != "auto":  # the same view, whatever the split
        _, whole, whole_pcap = _run(decode, [data])
        assert _views(sink) == _views(whole)
        assert _masked(pcap, C2S) == _masked(whole_pcap, C2S)
        if decode == "hex":
            offsets = [r.offset for r in sink.of(R.HexChunk) if r.direction == C2S]
            assert offsets == sorted(offsets)


def test_hex_fallback_after_a_resp_error_is_redacted_too():
    """The RESP decoder gives up on a direction: what follows is shown as hex, masked."""
    sink, pcap = ListSink(), FakePcap()
    c = Chain([sink], pcap=pcap, decode="resp")
    c.pair_opened(pair(), 0.0)
    c.data(1, C2S, b"*1\r\n$4\r\nPING\r\n", 1.0)
    c.data(1, C2S, b"*x\r\nAUTH s3c", 2.0)
    c.data(1, C2S, b"ret\r\n", 3.0)
    c.pair_closed(1, SUMMARY, 9.0)
    assert sink.of(R.Undecodable)
    hexed = b"".join(r.data for r in sink.of(R.HexChunk))
    assert hexed == b"*x\r\nAUTH ******\r\n"
    assert b"s3cret" not in _masked(pcap, C2S) and c.leaked == 0
    # the error is found after the line (a bare LF): the line is not shown, but it is searched
    stream = b"*1\r\nAUTH s3cret\n"
    for chunks in ([stream], [stream[:5], stream[5:]]):
        c, sink, pcap = _run("resp", chunks, (C2S,))
        assert b"".join(r.data for r in sink.of(R.HexChunk)) == b"\n"
        assert b"s3cret" not in _masked(pcap, C2S) and c.leaked == 0


@pytest.mark.parametrize("decode, line", [
    ("http", b"GET /x?token=s3cret\r\n"),
    ("http", b"POST /cb#access_token=s3cret\r\n"),
    ("http", b"GET /x?token=s3cret HTTP/1.1 x\r\n"),
    ("auto", b"GET /x?token=s3cret HTTP/1.1 x\r\n"),  # detected as HTTP
    ("auto", b"GET /x?token=s3cret\r\n"),  # HTTP/0.9's line: HTTP too, not a Redis inline GET
    ("auto", b"GET /cb#access_token=s3cret\n"),
])
def test_a_request_line_the_http_decoder_rejects_is_redacted_in_its_hex_view(decode, line):
    """An HTTP/0.9 request line (no version), or one with a word too many: the HTTP decoder
    gives up and the hex view shows the line, its query's secret masked (whatever the split).
    Detection takes ``GET /x?token=...`` and its line end for HTTP/0.9's, not for a Redis inline
    ``GET`` of that key (whose view would show it)."""
    data = line + b"Host: x\r\n\r\n"
    for cut in range(len(data) + 1):
        chunks = [data[:cut], data[cut:]] if 0 < cut < len(data) else [data]
        c, sink, pcap = _run(decode, chunks, (C2S,))
        hexed = b"".join(r.data for r in sink.of(R.HexChunk))
        assert hexed == data.replace(b"s3cret", b"******")
        assert b"s3cret" not in _masked(pcap, C2S) and c.leaked == 0


def test_http_raw_after_a_switch_is_redacted_too():
    req = b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"
    sink, pcap = ListSink(), FakePcap()
    c = Chain([sink], pcap=pcap)
    c.pair_opened(pair(), 0.0)
    c.data(1, C2S, req, 1.0)
    c.data(1, S2C, b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", 2.0)
    c.data(1, C2S, b"hi\r\nAuth", 3.0)
    c.data(1, C2S, b"orization: s3cret\r\n", 4.0)
    c.pair_closed(1, SUMMARY, 9.0)
    hexed = b"".join(r.data for r in sink.of(R.HexChunk))
    assert hexed == b"hi\r\nAuthorization: ******\r\n"
    assert b"s3cret" not in _masked(pcap, C2S) and c.leaked == 0


def test_no_redact_leaves_the_views_alone():
    _, sink, pcap = _run("text", [b"AUTH s3c", b"ret\r\n"])
    assert b"s3cret" not in b"".join(r.data for r in sink.of(R.TextLine))
    sink, pcap = ListSink(), FakePcap()
    c = Chain([sink], pcap=pcap, decode="hex", redact=False)
    c.pair_opened(pair(), 0.0)
    c.data(1, C2S, b"AUTH s3c", 1.0)
    c.data(1, C2S, b"ret\r\n", 2.0)
    c.pair_closed(1, SUMMARY, 9.0)
    assert [r.data for r in sink.of(R.HexChunk)] == [b"AUTH s3c", b"ret\r\n"]
    assert pcap.masks == [] and pcap.data_calls == [(C2S, b"AUTH s3c"), (C2S, b"ret\r\n")]


@settings(max_examples=200)
@given(st.data(), st.lists(st.integers(0, 10**6), max_size=8))
def test_the_quick_way_over_a_chunk_changes_nothing(draw, cuts):
    """``StreamMask`` skips the lines of a chunk ``starts_secret_line`` rules out: the same
    output as looking at every line, whatever the bytes and the split."""
    import playground.decode.linesecrets as ls

    data, _ = draw.draw(streams())
    data += draw.draw(st.binary(max_size=50))  # and an unfinished line
    chunks = _cuts(data, cuts)

    def run():
        m = StreamMask(7, max_line=64)
        out = [m.feed(c) for c in chunks] + [m.flush()]
        return [(shown, at, secrets) for shown, at, secrets in out if shown or secrets]

    quick = run()
    original = ls.starts_secret_line
    ls.starts_secret_line = lambda data, line_start, cut=False: True
    try:
        slow = run()
    finally:
        ls.starts_secret_line = original
    assert b"".join(s for s, _, _ in quick) == b"".join(s for s, _, _ in slow)
    assert [r for _, _, found in quick for r in found] == [r for _, _, found in slow for r in found]
    assert len(b"".join(s for s, _, _ in quick)) == len(data)


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_line_view_skip_leaves_the_state_feed_would(data, cuts):
    from playground.decode.views import LineView

    for chunks in (_cuts(data, cuts), [data]):
        a, b = LineView(16), LineView(16)
        for c in chunks:
            lines = a.feed(c)
            cut = b.skip(c)
            assert cut == (lines[-1].partial if lines else None)
            assert a.tail == b.tail


def _bulks(*args) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


_RESP_SECRETS = (
    _bulks(b"PING")
    + _bulks(b"AUTH", b"pw-one")
    + _bulks(b"auth", b"bob", b"pw-two")
    + _bulks(b"HELLO", b"3", b"AUTH", b"alice", b"pw-three", b"SETNAME", b"cli")
    + _bulks(b"CONFIG", b"SET", b"requirepass", b"pw-four")
    + _bulks(b"ACL", b"SETUSER", b"u", b"on", b">pw-five", b"~*")
    + _bulks(b"MIGRATE", b"h", b"1", b"", b"0", b"5000", b"AUTH2", b"carol", b"pw\nsix")
    + _bulks(b"SENTINEL", b"CONFIG", b"SET", b"sentinel-pass", b"pw-nine")
    + _bulks(b"SET", b"k", b"v")
)
_RESP_ANSWER = (  # CONFIG GET requirepass (RESP2), then (RESP3), SENTINEL CONFIG GET's
    b"+OK\r\n" + _bulks(b"requirepass", b"pw-seven") + b"$3\r\nabc\r\n"
    + b"%1\r\n$10\r\nmasterauth\r\n$8\r\npw-eight\r\n"
    + _bulks(b"sentinel-pass", b"pw-ten")
)
_RESP_PWS = [b"pw-one", b"pw-two", b"pw-three", b"pw-four", b"pw-five", b"pw\nsix", b"pw-seven",
             b"pw-eight", b"pw-nine", b"pw-ten"]


@settings(max_examples=60)
@given(st.lists(st.integers(0, 10**6), max_size=6), st.sampled_from(["text", "hex"]))
def test_redis_commands_as_arrays_in_the_text_and_hex_views(cuts, decode):
    """``--decode text|hex`` in front of redis-cli or redis-py: the commands are arrays of bulk
    strings, the password alone on its line after its length; CONFIG GET answers likewise."""
    data = _RESP_SECRETS + _RESP_ANSWER
    c, sink, pcap = _run(decode, _cuts(data, cuts))
    text, js = rendered(sink)
    hexed = b"".join(r.data for r in sink.of(R.HexChunk))
    for direction in (C2S, S2C):
        masked = _masked(pcap, direction)
        assert len(masked) == len(data)
        for pw in _RESP_PWS:
            assert pw not in masked, (direction, pw)
    for pw in _RESP_PWS:
        assert pw not in hexed and repr(pw)[2:-1] not in text and repr(pw)[2:-1] not in js
    for shown in (b"alice", b"carol", b"requirepass", b"SETNAME"):  # (AUTH: all hidden)
        assert shown.decode() in text or shown in hexed  # names and users stay
    assert c.leaked == 0


_UPGRADE = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


@pytest.mark.parametrize("c2s, s2c", [
    (b"PING\r\nAUTH bob s3cret", b""),  # cut by the close: Redis never ran it
    (b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nAUTH\r\n$6\r\ns3c", b""),
    (b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n", b""),  # head unfinished
    (_UPGRADE + b"GET / HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n", b""),  # no answer
    (_UPGRADE + b"GET / HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n",
     b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),  # answered after the FIN
])
def test_what_the_decoder_never_settled_is_masked_at_the_end(c2s, s2c):
    """The client finishes (FIN) with bytes the decoder still holds back from the pcap (an
    unfinished command or head, requests after an unanswered Upgrade): they go to the pcap with
    their credentials masked, not in clear."""
    sink, pcap = ListSink(), FakePcap()
    c = Chain([sink], pcap=pcap)
    c.pair_opened(pair(), 0.0)
    c.data(1, C2S, c2s, 1.0)
    c.half_closed(1, C2S, 2.0)
    if s2c:
        c.data(1, S2C, s2c, 3.0)
    c.pair_closed(1, SUMMARY, 9.0)
    assert pcap.stream(C2S) == c2s
    assert b"s3c" not in _masked(pcap, C2S)
    assert c.leaked == 0
    assert _masked(pcap, C2S)[:14] == c2s[:14]  # masked from the credential on only


@pytest.mark.parametrize("decode", ["text", "hex"])
def test_an_acl_error_echoing_the_rule_is_hidden_in_the_views(decode):
    """Redis answers ``ACL SETUSER u <pw`` (a password u lacks) quoting the rule: the text and
    hex views hide the password in the answer as the RESP decoder does."""
    answer = (b"+OK\r\n-ERR Error in ACL SETUSER modifier '<s3cret pw': The password you are "
              b"trying to remove from the user does not exist\r\n-ERR Error in ACL SETUSER "
              b"modifier 'bogus': Syntax error\r\n")
    for cuts in ([], [20], [60, 61]):
        c, sink, pcap = _run(decode, _cuts(answer, cuts), (S2C,))
        text, js = rendered(sink)
        hexed = b"".join(r.data for r in sink.of(R.HexChunk))
        assert b"s3cret" not in _masked(pcap, S2C) and c.leaked == 0
        assert "s3cret" not in text and "s3cret" not in js and b"s3cret" not in hexed
        assert "bogus" in text or b"bogus" in hexed  # another modifier is shown
