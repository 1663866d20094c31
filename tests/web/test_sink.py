"""The web view's sink on the decoder chain: exchange rows as the console writes them, the stream
redacted exactly as the pcap (same bytes, same masks, through ByteTee), and the --web options."""

from __future__ import annotations

import gc
import tracemalloc
from array import array

import pytest
from twisted.python import usage

from playground.decode import records as R
from playground.decode.bytetee import ByteTee
from playground.decode.chain import Chain
from playground.proxy import decoding
from playground.proxy.service import Options
from playground.web import sink as web_sink
from playground.web.capture import Capture
from playground.web.sink import WebSink, command_size, reply_size, rows
from tests.support.chain import GET, OK, SUMMARY, FakePcap, pair

pytestmark = pytest.mark.pure

C2S, S2C = "c2s", "s2c"


def _resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def drive(calls, pcap=None, **kw):
    web = WebSink(Capture())
    consumer = web if pcap is None else ByteTee([pcap, web])
    chain = Chain([web], pcap=consumer, **kw)
    chain.pair_opened(pair(), 0.0)
    for i, (d, data) in enumerate(calls):
        chain.data(1, d, data, float(i + 1))
    chain.pair_closed(1, SUMMARY, 100.0)
    return chain, web.capture


def table(capture: Capture, pair_id: int = 1) -> list[dict]:
    return [row for e in capture.get(pair_id).exchanges for row in rows(e)]


def requests_replies(capture: Capture, pair_id: int = 1) -> list[tuple[str, str]]:
    return [(row["request"], row["reply"]) for row in table(capture, pair_id)]


def stream(capture: Capture, direction: str) -> bytes:
    return b"".join(bytes(c.data) for c in capture.stream(1)
                    if c.direction == direction and c.mark is None)


def masked(pcap: FakePcap, direction: str, filler: bytes = b"*") -> bytes:
    return pcap.masked(direction, filler)


def test_redis_exchanges_read_as_the_console_writes_them():
    _, cap = drive([(C2S, _resp(b"set", b"foo", b"bar")), (S2C, b"+OK\r\n"),
                    (C2S, _resp(b"GET", b"<script>alert(1)</script>")),
                    (S2C, b"$8\r\n\x1b[31mred\r\n"), (C2S, _resp(b"NOPE")),
                    (S2C, b"-ERR unknown command\r\n")])
    assert requests_replies(cap) == [('set foo "bar"', "+OK"),
                         ('GET "<script>alert(1)</script>"', '"\\x1b[31mred"'),
                         ("NOPE", "-ERR unknown command")]
    c = cap.get(1)
    assert (c.protocol, c.exchange_count, c.error_count) == ("resp", 3, 1)
    first, _, last = table(cap)
    assert (first["request_size"], first["reply_size"]) == (len(_resp(b"set", b"foo", b"bar")), 5)
    assert first["latency"] == 1.0 and first["index"] == 1 and not first["error"]
    assert last["error"] and last["index"] == 3


def test_unpipelined_exchanges_share_one_entry_each_row_with_its_time():
    big = b"v" * 5000  # over the row limit: an entry of its own, between two of rows
    _, cap = drive([(C2S, _resp(b"SET", b"a", b"1")), (S2C, b"+OK\r\n"),
                    (C2S, _resp(b"INCR", b"n")), (S2C, b":7\r\n"),
                    (C2S, _resp(b"SET", b"b", big)), (S2C, b"+OK\r\n"),
                    (C2S, _resp(b"GET", b"b")), (S2C, b"$5000\r\n" + big + b"\r\n"),
                    (C2S, _resp(b"HGETALL", b"h")), (S2C, b"*2\r\n$1\r\nf\r\n$1\r\nx\r\n"),
                    (C2S, _resp(b"GET", b"none")), (S2C, b"$-1\r\n")])
    entries = cap.get(1).exchanges
    assert [(e.first, e.count) for e in entries] == [(1, 2), (3, 1), (4, 1), (5, 2)]
    rows_ = table(cap)
    assert [(r["index"], r["ts"], r["latency"]) for r in rows_] == [
        (1, 2.0, 1.0), (2, 4.0, 1.0), (3, 6.0, 1.0), (4, 8.0, 1.0), (5, 10.0, 1.0),
        (6, 12.0, 1.0)]
    assert [(r["request"][:12], r["reply"][:12]) for r in rows_] == [
        ('SET a "1"', "+OK"), ("INCR n", "(integer) 7"), ('SET b "vvvvv', "+OK"),
        ("GET b", '"vvvvvvvvvvv'), ("HGETALL h", '["f", "x"]'), ("GET none", "(nil)")]
    assert [(r["request_size"], r["reply_size"]) for r in rows_[:2]] == [
        (len(_resp(b"SET", b"a", b"1")), 5), (len(_resp(b"INCR", b"n")), 4)]


def test_a_pipelined_run_is_one_marshalled_bytes_unless_a_value_is_long():
    big = b"v" * 70000  # longer than the decoder keeps whole: cut, which marshal would not say
    small = _resp(b"SET", b"a", b"1") + _resp(b"INCR", b"n")
    long_ = _resp(b"SET", b"b", big) + _resp(b"GET", b"a")
    _, cap = drive([(C2S, small), (S2C, b"+OK\r\n:7\r\n"),
                    (C2S, long_), (S2C, b"+OK\r\n$1\r\n1\r\n")])
    entries = cap.get(1).exchanges
    assert [(e.first, e.count, type(e.data)) for e in entries] == [(1, 2, bytes), (3, 2, tuple)]
    rows_ = table(cap)
    assert [(r["request"][:12], r["reply"]) for r in rows_] == [
        ('SET a "1"', "+OK"), ("INCR n", "(integer) 7"), ('SET b "vvvvv', "+OK"), ("GET a", '"1"')]
    assert rows_[2]["request_size"] == len(_resp(b"SET", b"b", big))  # the cut value's length


def test_pipelined_runs_become_one_row_each():
    cmds = b"".join(_resp(b"SET", b"k%d" % i, b"v") for i in range(20))
    chain, cap = drive([(C2S, cmds), (S2C, b"+OK\r\n" * 20)])
    assert chain.runs  # the web sink takes RedisExchanges: the fast path stays on
    assert requests_replies(cap) == [(f"SET k{i} \"v\"", "+OK") for i in range(20)]


def test_what_is_stored_is_left_alone_by_the_cyclic_gc():
    # one exchange per read, a pipelined run, simple strings, errors (a RESP3 bulk error too),
    # integers, nils and an aggregate: each kept in a form the GC stops tracking
    run = b"".join(_resp(b"INCR", b"n%d" % i) for i in range(5))
    chain, cap = drive([(C2S, _resp(b"SET", b"k", b"v")), (S2C, b"+OK\r\n"),
                        (C2S, _resp(b"NOPE")), (S2C, b"-ERR unknown command\r\n"),
                        (C2S, _resp(b"EVAL", b"x", b"0")), (S2C, b"!9\r\nERR oops!\r\n"),
                        (C2S, _resp(b"GET", b"none")), (S2C, b"$-1\r\n"),
                        (C2S, _resp(b"KEYS", b"*")), (S2C, b"*1\r\n$1\r\nk\r\n"),
                        (C2S, run), (S2C, b":1\r\n+OK\r\n-ERR no\r\n:4\r\n:5\r\n")])
    assert requests_replies(cap) == [
        ('SET k "v"', "+OK"), ("NOPE", "-ERR unknown command"), ('EVAL x "0"', "-ERR oops!"),
        ("GET none", "(nil)"), ("KEYS *", '["k"]'), ("INCR n0", "(integer) 1"),
        ("INCR n1", "+OK"), ("INCR n2", "-ERR no"), ("INCR n3", "(integer) 4"),
        ("INCR n4", "(integer) 5")]
    assert [row["error"] for row in table(cap)] == [False, True, True] + [False] * 4 + [
        True, False, False]
    assert cap.get(1).error_count == 3
    for _ in range(4):  # a pass untracks a tuple whose items are untracked: 4 levels deep
        gc.collect()
    c = cap.get(1)
    # the five unpipelined exchanges are one entry of encoded rows (sealed at the close), the
    # run another
    assert [e[1] for e in c.kept_exchanges] == [5, 5] and c.chunk_rows == 13  # 12 reads, close
    assert c.open_rows is None
    assert not [e for e in c.kept_exchanges if gc.is_tracked(e)]
    # the stream holds no Python object per read: bytearrays the GC skips, and arrays of
    # numbers (one visit each in a collection, whatever their length)
    assert not [b for b in (c.c2s, c.s2c) if gc.is_tracked(b)]
    tables = (c.chunk_ts, c.chunk_info)
    assert all(type(t) is array and gc.get_referents(t) in ([], [array]) for t in tables)


@pytest.mark.parametrize("pipeline", [1, 16])
def test_the_counted_cost_covers_what_the_process_holds(pipeline):
    # --web-memory bounds real memory: what the store counts is at least what tracemalloc
    # sees; and while the sink queues (it hands over in batches), the store's count and the
    # queue's together
    web = WebSink(Capture(max_bytes=1 << 40))
    chain = Chain([web], pcap=web)
    # the latency pictures' histograms, one per command name, are bounded apart (64 names at
    # most), not counted in the store: made before, by a first exchange of each name
    web.latency.redis(0.5, [(b"SET", b"k", b"v"), (b"GET", b"k")], [b"", b""], [0.001, 0.001])
    chain.pair_opened(pair(), 0.0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        queued = []
        for i in range(1000 // pipeline):
            # each read a bytes object of its own, as the proxy's reads are
            sets = b"".join(_resp(b"SET", b"key:%06d" % (i * pipeline + k), b"xxx")
                            for k in range(pipeline))
            gets = sets.replace(b"*3\r\n$3\r\nSET", b"*2\r\n$3\r\nGET").replace(
                b"\r\n$3\r\nxxx\r\n", b"\r\n")
            chain.data(1, C2S, sets, 1.0 + i)
            chain.data(1, S2C, b"+OK\r\n" * pipeline, 1.0 + i)
            chain.data(1, C2S, gets, 1.0 + i)
            chain.data(1, S2C, b"$3\r\nxxx\r\n" * pipeline, 1.0 + i)
            queued.append(web.queued)
            if i % 50 == 49:  # (past the first reads' fixed costs: the decoder's, the lists')
                gc.collect()
                held = tracemalloc.get_traced_memory()[0] - before
                assert held <= web.capture.bytes + web.queued  # (attributes: no hand-over)
        web.flush()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert max(queued) > 100_000  # the queue did hold a batch
    assert web.capture.get(1).exchange_count == 2 * (1000 // pipeline) * pipeline
    assert held <= web.capture.bytes


class _Records:
    """A record sink keeping what the chain emits (runs too)."""

    takes_runs = True

    def __init__(self):
        self.got = []
        self.emit = self.got.append
        self.emit_many = self.got.extend


@pytest.mark.parametrize("pipeline", [1, 16])
def test_the_queue_counts_what_it_holds_after_a_record_fills_it(pipeline, monkeypatch):
    # a record filling the queue stores the records alone: the count left is the reads' own
    monkeypatch.setattr(web_sink, "QUEUE_LIMIT", 64 * 1024)
    made = _Records()
    chain = Chain([made])
    chain.pair_opened(pair(), 0.0)
    web = WebSink(Capture(max_bytes=1 << 40))
    web.pair_opened(pair(), 0.0)
    records_alone = 0
    for i in range(400 // pipeline):
        sets = b"".join(_resp(b"SET", b"key:%06d" % (i * pipeline + k), b"xxx")
                        for k in range(pipeline))
        for direction, data in ((C2S, sets), (S2C, b"+OK\r\n" * pipeline)):
            made.got.clear()
            chain.data(1, direction, data, 1.0 + i)
            web.data(1, direction, data, 1.0 + i)
            for record in made.got:
                reads = len(web.reads)
                web.emit(record)
                counted = sum(web_sink.READ_COST + 2 * len(read[2]) for read in web.reads) + sum(
                    web_sink.RECORD_COST * len(getattr(r, "commands", (r,)))
                    for r in web.records if type(r) in (R.RedisExchange, R.RedisExchanges))
                assert web.queued == counted
                records_alone += not web.records and len(web.reads) == reads > 0
    assert records_alone  # a record did fill it, and the reads stayed queued


def test_auth_is_redacted_in_rows_and_in_the_stream_exactly_as_in_the_pcap():
    auth = _resp(b"AUTH", b"hunter2-secret")
    cut = auth.index(b"hunter2") + 3
    pcap = FakePcap()
    chain, cap = drive([(C2S, auth[:cut]), (C2S, auth[cut:]), (S2C, b"+OK\r\n")], pcap=pcap)
    assert chain.leaked == 0
    assert b"hunter2" not in stream(cap, C2S)
    assert stream(cap, C2S) == masked(pcap, C2S) == auth.replace(b"hunter2-secret", b"*" * 14)
    assert stream(cap, S2C) == masked(pcap, S2C) == b"+OK\r\n"
    assert "hunter2" not in repr(requests_replies(cap))


def test_http_secrets_masked_like_the_pcap_and_rows():
    cut = GET.index(b"s3cr3t-token") + 3
    pcap = FakePcap()
    _, cap = drive([(C2S, GET[:cut]), (C2S, GET[cut:]), (S2C, OK[:40]), (S2C, OK[40:])],
                   pcap=pcap)
    for d in (C2S, S2C):
        assert stream(cap, d) == masked(pcap, d)
        assert b"s3cr3t" not in stream(cap, d)
    assert requests_replies(cap) == [("GET /api/x", "200 OK")]
    assert table(cap)[0]["reply_size"] == 2 and table(cap)[0]["kind"] == "http"


def test_an_http_reason_phrase_and_a_notice_read_as_the_console_writes_them():
    # they went into the rows as latin-1 text, not escaped as everything else from the
    # traffic: ESC and NUL in the page, a U+202E as three letters and a C1 control (raw in a
    # .jsonl download, which escapes only C0), and the reason uncut, 5000 bytes of it past
    # --max-value (200)
    reason = b"\xe2\x80\xaeKO\x1b[2J\x00\xff" + b"r" * 5000
    _, cap = drive([(C2S, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"),
                    (S2C, b"HTTP/1.1 200 " + reason + b"\r\nContent-Length: 0\r\n\r\n")])
    assert requests_replies(cap) == [("GET /x", "200 \\u202eKO\\x1b[2J\\x00\\xff" + "r" * 189)]
    _, cap = drive([(C2S, b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"),
                    (S2C, b"HTTP/1.1 101 Switching\r\nUpgrade: \x1b[2J\xff\r\n\r\n")])
    assert requests_replies(cap)[1] == (
        "switched to \\x1b[2J\u00ff (101): the rest is shown raw", "")  # as the console


def test_no_redact_keeps_the_stream_whole():
    auth = _resp(b"AUTH", b"pw12345")
    _, cap = drive([(C2S, auth), (S2C, b"+OK\r\n")], redact=False)
    assert stream(cap, C2S) == auth


def test_bytetee_passes_every_call_to_every_consumer():
    a, b = FakePcap(), FakePcap()
    decided = []
    b.decoded = lambda pid, proto: decided.append((pid, proto))
    tee = ByteTee([a, b])
    tee.pair_opened(pair(), 0.0)
    tee.data(1, C2S, b"abc", 0.0)
    assert tee.mask(1, C2S, 1, 5) == 2  # the most any consumer had in clear
    tee.decoded(1, "resp")
    tee.half_closed(1, C2S, 0.0)
    tee.pair_closed(1, SUMMARY, 0.0)
    for consumer in (a, b):
        assert consumer.data_calls == [(C2S, b"abc")] and consumer.masks == [(C2S, 1, 5)]
        assert consumer.events == ["open", ("half", C2S), "close"]
    assert decided == [(1, "resp")]


def test_sizes():
    assert command_size((b"PING",)) == len(_resp(b"PING"))
    assert command_size((b"SET", b"k" * 120, b"v")) == len(_resp(b"SET", b"k" * 120, b"v"))
    assert reply_size(b"bar") == len(b"$3\r\nbar\r\n")
    assert reply_size(42) == len(b":42\r\n")
    assert reply_size(None) is None and reply_size([b"a"]) is None


# -- options and build -------------------------------------------------------------------------


def _opts(*argv) -> Options:
    o = Options()
    o.parseOptions(["--target", "6379", *argv])
    return o


def test_web_is_off_by_default_and_a_bare_port_is_loopback():
    assert _opts()["web"] is None
    o = _opts("--web", "8478")
    assert o["web"].startswith("tcp:8478:interface=127.0.0.1")
    assert o["web-token"] is None  # loopback: no token asked


def test_a_non_loopback_web_address_gets_a_token():
    o = _opts("--web", "0.0.0.0:8478")
    assert o["web-token"] and len(o["web-token"]) >= 16
    assert _opts("--web", "0.0.0.0:8478", "--web-token", "given-token")["web-token"] == \
        "given-token"


@pytest.mark.parametrize("argv, flag", [
    (["--web-token", "abcdefgh"], "--web-token"),
    (["--web", "nonsense"], "--web"),
    (["--web", "8478", "--web-token", "short"], "--web-token"),
    (["--web", "8478", "--web-memory", "x"], "--web-memory"),
    (["--web", "8478", "--web-connections", "0"], "--web-connections"),
])
def test_bad_web_options_name_the_flag(argv, flag):
    with pytest.raises(usage.UsageError, match=flag):
        _opts(*argv)


def test_build_hands_the_web_sink_records_and_bytes_beside_the_pcap(tmp_path):
    from playground.web.service import WebService

    services, chain = decoding.build(_opts("--web", "0", "--quiet", "--pcap",
                                           str(tmp_path / "x.pcap"), "--web-memory", "2",
                                           "--web-connections", "7"))
    (view,) = [s for s in services if isinstance(s, WebService)]
    assert view.sink in chain.sinks
    assert isinstance(chain.pcap, ByteTee) and view.sink in chain.pcap.consumers
    assert (view.capture.max_bytes, view.capture.max_connections) == (2 * 1024 * 1024, 7)


def test_build_without_decoding():
    _, chain = decoding.build(_opts("--web", "0", "--decode", "none"))
    assert isinstance(chain, Chain) and chain.sinks == []  # decodes only to redact the bytes
    assert isinstance(chain.pcap, WebSink)
    _, observer = decoding.build(_opts("--web", "0", "--decode", "none", "--no-redact"))
    assert isinstance(observer, WebSink)
