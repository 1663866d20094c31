"""Attacks on the web view's redaction with its hold-back per batch (``settles_later``): traffic
an adversary shapes (split anywhere, malformed, cut by a FIN or a close, read by the API between
the reads) must never put a password or a credential header's value into what the view stores
and serves, and the view must mask what the pcap's per-read hold-back masks."""

from __future__ import annotations

import pytest

from playground.codec.encoder import encode_command as cmd
from playground.decode.chain import MAX_HELD, Chain
from playground.web.capture import Capture
from playground.web.sink import QUEUE_LIMIT, READ_COST, RECORD_COST, WebSink, rows
from tests.support.chain import SUMMARY, FakePcap, ListSink, masked_pcap_streams, pair, view_stream

pytestmark = pytest.mark.pure

C2S, S2C = "c2s", "s2c"
PASSWORD = b"hunter2-secret"


def pcap_stream(calls, decode, direction=C2S):
    """What the pcap's per-read hold-back gives of ``direction``, masks applied."""
    return masked_pcap_streams(calls, decode)[0][direction]


def view_chain(decode="resp", **capture):
    view = WebSink(Capture(**capture))
    chain = Chain([view], pcap=view, decode=decode)
    chain.pair_opened(pair(), 0.0)
    return view, chain


# a command the RESP parser cannot follow once the password is read: a framing error
FRAMING = [b"*2\r\n$4\r\nAUTH\r\n$14\r\nhunter2-secretXX\r\n",  # no CRLF after the bulk
           b"*2\r\n$4\r\nAUTH\r\n$3\r\nhunter2-secret\r\n"]  # a bulk length that lies


@pytest.mark.parametrize("frame", FRAMING)
@pytest.mark.parametrize("cut", [None, 12, 20, 30])
def test_a_password_in_a_frame_the_parser_gives_up_on_is_masked_as_in_the_pcap(frame, cut):
    calls = [(C2S, frame)] if cut is None else [(C2S, frame[:cut]), (C2S, frame[cut:])]
    expected = pcap_stream(calls, "resp")
    assert b"hunter2" not in expected
    view, chain = view_chain()
    for i, (d, data) in enumerate(calls):
        chain.data(1, d, data, float(i + 1))
        shown = view_stream(view.capture)  # the API reads between the reads
        assert shown == expected[:len(shown)]
    chain.pair_closed(1, SUMMARY, 100.0)
    assert view_stream(view.capture) == expected


def test_a_full_queue_while_the_parser_gives_up_stores_no_password():
    """Another connection's traffic fills the view's queue to just below its limit; the record
    of the failed frame (the decoder mid-read, its fallback not fed yet) tips it over."""
    view, chain = view_chain()
    chain.pair_opened(pair(2), 0.0)
    frame = FRAMING[0]
    chain.data(1, C2S, frame[:24], 1.0)  # the AUTH's start and half the password
    assert view_stream(view.capture) == b""  # the API reads: kept back
    filler = QUEUE_LIMIT - 100 - READ_COST  # the queue's count of a read: its cost, bytes twice
    chain.data(2, C2S, cmd(b"SET", b"k", b"v" * filler)[:filler // 2], 2.0)
    assert QUEUE_LIMIT - RECORD_COST < view.queued <= QUEUE_LIMIT
    chain.data(1, C2S, frame[24:], 3.0)
    shown = view_stream(view.capture)
    assert b"hunte" not in shown and shown == pcap_stream([(C2S, frame)], "resp")


@pytest.mark.parametrize("end", ["fin", "close"])
def test_an_unfinished_auth_stored_at_the_end_is_masked_before_the_bound_evicts_its_start(end):
    """A small capture: storing the unfinished AUTH's kept bytes at the end evicts the
    connection's oldest chunk (the AUTH's name with it); the password's rest stays masked."""
    view, chain = view_chain(max_bytes=100_000)
    chain.pair_opened(pair(2), 0.0)
    chain.data(1, C2S, cmd(b"PING"), 1.0)
    assert view_stream(view.capture) == cmd(b"PING")  # stored: the oldest the bound takes
    frame = cmd(b"AUTH", b"P" * 90_000)[:-10]  # never finished
    for i in range(0, len(frame), 10_000):
        chain.data(1, C2S, frame[i:i + 10_000], 2.0)
        assert view_stream(view.capture) == cmd(b"PING")  # the API reads: kept back
    chain.data(2, C2S, cmd(b"SET", b"k", b"v" * 50_000), 3.0)
    if end == "fin":
        chain.half_closed(1, C2S, 4.0)
    chain.pair_closed(1, SUMMARY, 5.0)
    c = view.capture.get(1)
    assert c.stream_evicted[C2S] > 0  # the bound took the AUTH's start
    assert b"P" * 16 not in view_stream(view.capture)


@pytest.mark.parametrize("decode", ["hex", "text"])
@pytest.mark.parametrize("cut", [b"AUTH\r", b"AUTH", b"AUTH\r\n$14\r"])
def test_an_auth_array_cut_before_its_line_end_is_masked_in_the_raw_views(decode, cut):
    """--decode hex (and none with redaction) and the text view follow a RESP array with the
    line scanner: a read that ends inside the AUTH line's CRLF must not lose the array."""
    frame = cmd(b"AUTH", PASSWORD)
    at = frame.index(cut) + len(cut)
    calls = [(C2S, frame[:at]), (C2S, frame[at:])]
    masked = frame.replace(PASSWORD, b"*" * len(PASSWORD))
    assert pcap_stream(calls, decode) == masked
    view, chain = view_chain(decode)
    for i, (d, data) in enumerate(calls):
        chain.data(1, d, data, float(i + 1))
        shown = view_stream(view.capture)
        assert shown == masked[:len(shown)]
    chain.pair_closed(1, SUMMARY, 100.0)
    assert view_stream(view.capture) == masked


CONFIG_GET = cmd(b"CONFIG", b"GET", b"requirepass")
CONFIG_REPLY = b"*2\r\n$11\r\nrequirepass\r\n$14\r\n" + PASSWORD + b"\r\n"


@pytest.mark.parametrize("end", ["server fin", "close"])
@pytest.mark.parametrize("cut", [len(CONFIG_REPLY) - 2, len(CONFIG_REPLY) - 9])
def test_a_config_get_answer_cut_by_the_end_is_masked_in_the_view_and_the_pcap(end, cut):
    """The decoder's end (eof, close) forgets the CONFIG GET it waited on: what it had not
    settled before is what the end scans."""
    calls = [(C2S, CONFIG_GET), (S2C, CONFIG_REPLY[:cut])]
    pcap = FakePcap()
    view = WebSink(Capture())
    for chain in (Chain([ListSink()], pcap=pcap, decode="resp"),
                  Chain([view], pcap=view, decode="resp")):
        chain.pair_opened(pair(), 0.0)
        for i, (d, data) in enumerate(calls):
            chain.data(1, d, data, float(i + 1))
        if end == "server fin":
            chain.half_closed(1, S2C, 10.0)
        chain.pair_closed(1, SUMMARY, 100.0)
    masked = CONFIG_REPLY[:cut].replace(PASSWORD[:cut - 27], b"*" * (cut - 27))
    assert pcap.masked(S2C) == masked
    assert view_stream(view.capture, S2C) == masked


def test_a_password_beyond_the_bound_is_masked_once_not_at_every_batch():
    """Past the hold-back's bound every batch of the password goes out masked; the bytes
    masked before are not overwritten again (a 64 MiB AUTH would cost the proxy seconds)."""
    view, chain = view_chain()
    ranges = []
    mask = view.capture.mask

    def counted(pair_id, direction, start, end):
        ranges.append((start, end))
        return mask(pair_id, direction, start, end)

    view.capture.mask = counted
    size = 3 * MAX_HELD
    chain.data(1, C2S, b"*2\r\n$4\r\nAUTH\r\n$%d\r\n" % size, 1.0)
    piece = b"P" * (64 * 1024)
    for _ in range(size // len(piece)):
        chain.data(1, C2S, piece, 2.0)
        view.flush()  # a reader between the reads
    assert b"P" * 64 not in view_stream(view.capture)
    assert sum(end - start for start, end in ranges) <= size + 2 * MAX_HELD


def test_a_connection_evicted_while_its_auth_is_kept_back_leaves_nothing_behind():
    view, chain = view_chain(max_connections=2)
    frame = FRAMING[0]
    chain.data(1, C2S, frame[:24], 1.0)
    assert view_stream(view.capture) == b"" and view.kept  # the API reads: kept back
    for p in (2, 3):  # the view keeps the last two
        chain.pair_opened(pair(p), 2.0)
        chain.data(p, C2S, cmd(b"PING"), 2.0)
    chain.data(1, C2S, frame[24:], 3.0)  # the parser gives up on the evicted connection's AUTH
    chain.pair_closed(1, SUMMARY, 4.0)
    assert view.capture.get(1) is None and view.kept == []
    assert view.unstored(1, C2S) is None
    for p in (2, 3):
        assert b"".join(c.data for c in view.capture.stream(p)) == cmd(b"PING")


def _raising_from_the_second_read(i, chain):
    """From call ``i`` = 1 on, the pair's decoder raises (a decoder bug, as the chain's guard
    meets it): ``chain.data`` falls back to the hex view."""
    def boom(*args):
        raise RuntimeError("a decoder bug")

    if i == 1:
        chain.pairs[1].decoder.feed = boom


AUTH = cmd("PING") + cmd("AUTH", "user", PASSWORD.decode())


@pytest.mark.parametrize("cut", range(len(cmd("PING")) + 1, len(AUTH)))
def test_a_decoder_raising_inside_an_auth_masks_its_password_in_pcap_and_view(cut):
    """The decoder raises on the read that ends an AUTH frame begun in the read before: the
    bytes held back since the frame's start are searched for secrets with the read, in the
    pcap's hold-back and the view's alike (the hex view alone saw only the read's bytes, and
    the password went out in clear)."""
    calls = [(C2S, AUTH[:cut]), (C2S, AUTH[cut:]), (S2C, b"+PONG\r\n+OK\r\n")]
    streamed = masked_pcap_streams(calls, "resp", _raising_from_the_second_read)[0][C2S]
    view, chain = view_chain()
    for i, (d, data) in enumerate(calls):
        _raising_from_the_second_read(i, chain)
        chain.data(1, d, data, float(i + 1))
    chain.pair_closed(1, SUMMARY, 100.0)
    assert len(streamed) == len(AUTH) and chain.failures >= 1
    shown = view_stream(view.capture)
    for stored in (streamed, shown):
        assert PASSWORD[:4] not in stored and PASSWORD[-4:] not in stored, stored
    assert shown == streamed


@pytest.mark.parametrize("cut", [None, 20, 40])
def test_a_credential_query_value_is_masked_in_the_view_rows_and_stream(cut):
    """The web view alone (no pcap sink: it holds back itself): the exchanges table shows the
    target as the console does, the follow-stream bytes as the pcap has them."""
    req = b"GET /get?access_token=s3cr3t-tok&page=2 HTTP/1.1\r\nHost: h\r\n\r\n"
    calls = [(C2S, req)] if cut is None else [(C2S, req[:cut]), (C2S, req[cut:])]
    calls.append((S2C, b"HTTP/1.1 204 No Content\r\n\r\n"))
    expected = pcap_stream(calls, "http")
    assert expected == req.replace(b"s3cr3t-tok", b"*" * 10)
    view, chain = view_chain("http")
    for i, (d, data) in enumerate(calls):
        chain.data(1, d, data, float(i + 1))
        shown = view_stream(view.capture)  # the API reads between the reads
        assert shown == expected[:len(shown)]
    chain.pair_closed(1, SUMMARY, 100.0)
    view.flush()
    assert view_stream(view.capture) == expected
    [row] = [r for e in view.capture.get(1).exchanges for r in rows(e)]
    assert row["request"] == "GET /get?access_token=(redacted)&page=2"


@pytest.mark.parametrize("fin", [True, False])
def test_an_unfinished_head_stored_at_the_end_has_its_query_secret_masked(fin):
    data = b"GET /cb?access_token=s3cret-tok&x=1 HTTP/1.1\r\nHost: x\r\n"
    view, chain = view_chain("http")
    chain.data(1, C2S, data, 1.0)
    assert view_stream(view.capture) == b""  # kept back: the head is not finished
    if fin:
        chain.half_closed(1, C2S, 2.0)
    chain.pair_closed(1, SUMMARY, 3.0)
    view.flush()
    # masked from the query secret on: the line scanner sees it too, and what was never settled
    # goes out masked from the first credential it finds (as from a credential header)
    i = data.index(b"s3cret-tok")
    assert view_stream(view.capture) == data[:i] + b"*" * (len(data) - i)
    assert chain.leaked == 0
