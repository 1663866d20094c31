"""Decoding memory: long RESP strings are streamed (their first bytes and full length), the
decoder's buffers stay bounded whatever the value's size, a closed pair's state is freed
without the cyclic GC, and MONITOR lines as long as the values they show stay decoded."""

from __future__ import annotations

import contextlib
import gc
import io
import json
import socket
import time
import tracemalloc
import weakref

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from playground.codec import parser as resp_module
from playground.codec.encoder import encode, encode_command
from playground.codec.parser import RespParser
from playground.codec.values import (
    Attributed,
    Error,
    Map,
    ProtocolError,
    Push,
    Set,
    Simple,
    Truncated,
    Verbatim,
)
from playground.decode import records as R
from playground.decode.chain import Chain
from playground.decode.records import to_json
from playground.decode.respdecoder import C2S, S2C, Exchange, RespConversation, ServerPush
from playground.proxy import decoding
from playground.proxy.observer import Endpoint, PairInfo
from playground.sinks.console import ConsoleFormatter, ConsoleSink
from playground.sinks.jsonlines import JsonSink
from tests.support.net import recv_exactly
from tests.support.processes import start_proxy
from tests.support.resp_events import with_spans
from tests.support.waiting import wait_until

MIB = 1024 * 1024
CHUNK = 64 * 1024  # what a proxy read gives at most


@contextlib.contextmanager
def stream_min(n: int):
    """Parsers made inside stream strings longer than ``max(max_value, n)`` (small sizes, so
    hypothesis can reach the streamed paths)."""
    old = resp_module.STREAM_MIN
    resp_module.STREAM_MIN = n
    try:
        yield
    finally:
        resp_module.STREAM_MIN = old


def feed_split(parser, data: bytes, cuts, bound=None) -> list:
    out = []
    last = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        if cut > last:
            out += parser.feed_spans(data[last:cut])
            last = cut
            if bound is not None:
                assert parser.buffered() <= bound + (cut - last), parser.buffered()
    return out


def viewed(v, keep: int, over: int, max_line: int):
    """``v`` as a streaming parser gives it: strings longer than the bounds cut to ``keep``
    bytes with their full length."""
    def cut(b, longer_than):
        return Truncated(b[:keep], len(b)) if len(b) > longer_than and len(b) > keep else b

    def walk(x):
        t = type(x)
        if t is bytes:
            return cut(x, over)
        if t is Simple:
            return Simple(cut(x.value, max_line))
        if t is Error:
            return Error(cut(x.value, over if x.bulk else max_line), x.bulk)
        if t is Verbatim:
            if len(x.text) + 4 > over:
                return Verbatim(x.format, Truncated(x.text[:keep], len(x.text))
                                if len(x.text) > keep else x.text)
            return x
        if t is list:
            return [walk(i) for i in x]
        if t is Map:
            return Map(tuple((walk(k), walk(i)) for k, i in x.items))
        if t in (Set, Push):
            return t(tuple(walk(i) for i in x.items))
        if t is Attributed:
            return Attributed(walk(x.attributes), walk(x.value))
        return x

    return walk(v)


_text = st.binary(max_size=70)
_line = st.binary(max_size=70).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_leaf = st.one_of(
    _text, st.integers(-5, 5), st.none(), _line.map(Simple), _line.map(Error),
    _text.map(lambda b: Error(b, bulk=True)),
    _text.map(lambda b: Verbatim(b"txt", b)),
)
_values = st.recursive(_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.lists(kids, max_size=3).map(lambda x: Push(tuple(x))),
    st.lists(st.tuples(_text, kids), max_size=2).map(lambda x: Map(tuple(x))),
), max_leaves=8)
_commands = st.lists(st.lists(_text, min_size=1, max_size=5).map(lambda a: encode_command(*a)),
                     min_size=1, max_size=6).map(b"".join)


@pytest.mark.pure
@given(st.lists(_values, min_size=1, max_size=5), st.integers(0, 20),
       st.lists(st.integers(0, 2000), max_size=8))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_streamed_strings_equal_the_whole_value_cut(values, max_value, cuts):
    """Any split gives the same frames as the whole, and each long string is its first
    ``max_value`` bytes and its full length; the parser never holds more than the bounds."""
    data = b"".join(encode(v, 3) for v in values)
    cuts = [c for c in cuts if c < len(data)]
    whole = RespParser(max_inline=10**6).feed(data)  # the reference: everything whole
    with stream_min(16):
        keep = (max_value or 16) + 1
        want = [viewed(v, keep, max(max_value, 16), 16) for v in whole]
        got = RespParser(max_inline=16, max_value=max_value).feed_spans(data)
        split = feed_split(RespParser(max_inline=16, max_value=max_value), data, cuts,
                           bound=max(keep + 4, 16 + 2, max_value, 16) + 2)
        bytewise = feed_split(RespParser(max_inline=16, max_value=max_value), data,
                              range(len(data)))
    assert [v for v, _, _ in got] == want
    assert split == got and bytewise == got
    assert got[-1][2] == len(data)


@pytest.mark.pure
@given(_commands, st.integers(1, 20), st.lists(st.integers(0, 3000), max_size=6))
@settings(max_examples=200, deadline=None)
def test_streamed_commands_hiredis_paths_included(data, max_value, cuts):
    """Commands long enough for the hiredis fast paths: a long argument is never taken whole
    by them, whatever the split."""
    ref = RespParser().feed(data)
    with stream_min(24):
        want = [viewed(v, max_value + 1, 24, 64 * 1024) for v in ref]
        assert RespParser(inline=True, max_value=max_value).feed(data) == want
        assert [v for v, _, _ in feed_split(RespParser(inline=True, max_value=max_value), data,
                                            [c for c in cuts if c < len(data)])] == want


@pytest.mark.pure
@given(st.binary(max_size=300), st.booleans(), st.lists(st.integers(0, 300), max_size=5))
@settings(max_examples=500, deadline=None)
def test_random_bytes_never_raise_when_streaming(data, inline, cuts):
    cuts = [c for c in cuts if c < len(data)]
    with stream_min(4):
        for kw in ({"max_value": 0}, {"max_value": 3, "max_bulk": 40, "max_inline": 8}):
            whole = RespParser(inline=inline, **kw).feed_spans(data)
            split = feed_split(RespParser(inline=inline, **kw), data, cuts)
            assert split == whole
            assert all(not isinstance(v, ProtocolError) for v, _, _ in whole[:-1])
            for v, _, _ in whole:
                if isinstance(v, ProtocolError):
                    assert 0 <= v.offset <= len(data) and "internal" not in v.message


@pytest.mark.pure
def test_long_lines_are_streamed_only_in_reply_parsers():
    line = b"+1700000000.123456 [0 127.0.0.1:1] " + b'"v"' * 40_000 + b"\r\n"
    assert RespParser(max_value=8).feed(line + b"+OK\r\n") == [
        Simple(Truncated(line[1:10], len(line) - 3)), Simple(b"OK")]
    assert "longer" in RespParser().feed(line)[0].message  # without max_value: as before
    assert "longer" in RespParser(inline=True, max_value=8).feed(line)[0].message
    # a long line still ends at the first line end, and its errors are those of a short one
    bad = RespParser(max_value=8).feed(b"+" + b"a" * 70_000 + b"\r\r\n")
    assert bad == [ProtocolError("CR inside a simple string", 0)]
    assert RespParser(max_value=8, max_bulk=100_000).feed(b"-" + b"e" * 100_001)[0] == \
        ProtocolError("line longer than 100000 bytes", 0)


@pytest.mark.pure
def test_truncated_is_bytes_with_the_full_length():
    t = Truncated(b"abc", 10)
    assert isinstance(t, bytes) and len(t) == 10 and t.kept == 3 and t[:2] == b"ab"
    assert bytes(t) == b"abc" and t != b"abc" and t == Truncated(b"abc", 10)
    assert t != Truncated(b"abc", 11) and hash(t) == hash(b"abc")
    assert repr(t) == "Truncated(b'abc', 10)"


# -- the conversation: bounded while a 50 MiB value streams ----------------------------------


@pytest.mark.pure
def test_conversation_holds_no_more_than_the_view_and_one_chunk():
    """50 MiB of a SET argument, then of a GET reply, in 64 KiB reads: what the decoder holds
    never exceeds max-value + one read, and Python allocates no more than a few reads' worth
    (each read is a new object, as from a socket)."""
    size = 50 * MIB
    conv = RespConversation(max_value=200)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        events = conv.feed(C2S, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % size, 1.0)
        most = 0
        for _ in range(size // CHUNK):
            events += conv.feed(C2S, b"v" * CHUNK, 1.0)
            most = max(most, conv.buffered())
        events += conv.feed(C2S, b"\r\n" + encode_command("GET", "k"), 1.0)
        events += conv.feed(S2C, b"+OK\r\n$%d\r\n" % size, 2.0)
        for _ in range(size // CHUNK):
            events += conv.feed(S2C, b"w" * CHUNK, 2.0)
            most = max(most, conv.buffered())
        events += conv.feed(S2C, b"\r\n", 3.0)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert most <= 201 + CHUNK
    assert peak < 4 * CHUNK, peak
    assert [(e.command, e.reply) for e in events if type(e) is Exchange] == [
        ((b"SET", b"k", Truncated(b"v" * 201, size)), Simple(b"OK")),
        ((b"GET", b"k"), Truncated(b"w" * 201, size)),
    ]
    assert conv.buffered() == 0


@pytest.mark.pure
def test_settled_advances_while_a_long_argument_streams():
    """The pcap hold-back waits for commands that may carry a password, not for a SET's value."""
    conv = RespConversation(max_value=200)
    head = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (4 * MIB)
    conv.feed(C2S, head, 1.0)
    for i in range(1, 5):
        conv.feed(C2S, b"v" * CHUNK, 1.0)
        assert conv.settled(C2S) == len(head) + i * CHUNK
    conv = RespConversation(max_value=200)
    conv.feed(C2S, b"*2\r\n$4\r\nAUTH\r\n$%d\r\n" % (4 * MIB), 1.0)
    conv.feed(C2S, b"p" * CHUNK, 1.0)
    assert conv.settled(C2S) == 0  # a password may be coming: held (MAX_HELD bounds it)


# -- the chain: bounded, redacted, rendered as whole, freed at close -------------------------


class ListSink:
    def __init__(self):
        self.records = []

    def emit(self, record):
        self.records.append(record)


class Pcap:
    """What the chain passes on to a pcap sink: byte counts and masks."""

    def __init__(self):
        self.written = {C2S: 0, S2C: 0}
        self.masks = []

    def pair_opened(self, pair, now):
        pass

    def data(self, pair_id, direction, data, now):
        self.written[direction] += len(data)

    def mask(self, pair_id, direction, start, end):
        self.masks.append((direction, start, end))
        return max(0, min(end, self.written[direction]) - start)

    def half_closed(self, pair_id, direction, now):
        pass

    def pair_closed(self, pair_id, summary, now):
        pass


def _pair(pid=1):
    return PairInfo(pid, Endpoint("127.0.0.1", 51234), Endpoint("127.0.0.1", 6479),
                    "tcp:host=127.0.0.1:port=6379", Endpoint("127.0.0.1", 6379))


SUMMARY = {"bytes_c2s": 1, "bytes_s2c": 2, "duration": 0.5, "closed_by": "client", "how": "fin"}


@pytest.mark.pure
def test_chain_memory_does_not_follow_an_unfinished_value():
    """An unfinished 50 MiB bulk through the chain (default --max-value and --max-frame):
    allocations stay within a few reads, and at close everything goes."""
    sink = ListSink()
    chain = Chain([sink], decode="resp")
    chain.pair_opened(_pair(), 0.0)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        chain.data(1, C2S, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (50 * MIB), 1.0)
        for _ in range(50 * MIB // CHUNK - 1):
            chain.data(1, C2S, b"v" * CHUNK, 1.0)
        peak = tracemalloc.get_traced_memory()[1] - base
        chain.pair_closed(1, SUMMARY, 2.0)
        left = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert peak < 4 * CHUNK, peak
    assert left < CHUNK, left
    assert [type(r) for r in sink.records] == [R.Open, R.Detected, R.Close]


@pytest.mark.pure
def test_closed_pair_is_freed_without_the_cyclic_gc():
    chain = Chain([ListSink()], decode="auto")
    gc.collect()
    gc.disable()
    try:
        chain.pair_opened(_pair(), 0.0)
        chain.data(1, C2S, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n" + b"v" * 5000, 1.0)
        decoder = chain.pairs[1].decoder
        conv = weakref.ref(decoder.conv)
        decoder = weakref.ref(decoder)
        chain.pair_closed(1, SUMMARY, 2.0)
        assert decoder() is None and conv() is None
    finally:
        gc.enable()


@pytest.mark.pure
def test_huge_password_is_redacted_whole():
    sink = ListSink()
    pcap = Pcap()
    chain = Chain([sink], pcap=pcap, decode="resp")
    chain.pair_opened(_pair(), 0.0)
    secret = b"s" * (300 * 1024)
    frame = encode_command("AUTH", secret)
    for i in range(0, len(frame), CHUNK):
        chain.data(1, C2S, frame[i:i + CHUNK], 1.0)
    chain.data(1, S2C, b"-WRONGPASS invalid\r\n", 2.0)
    chain.pair_closed(1, SUMMARY, 3.0)
    [ex] = [r for r in sink.records if type(r) is R.RedisExchange]
    assert ex.command == (b"AUTH", b"(redacted)") and ex.redacted
    start = len(frame) - 2 - len(secret)
    assert pcap.masks == [(C2S, start, start + len(secret))]
    assert chain.leaked == 0


@pytest.mark.memory
@pytest.mark.parametrize("frame_args", [
    (b"AUTH", b"P" * (3 * MIB)),
    (b"HELLO", b"3", b"AUTH", b"default", b"P" * (3 * MIB)),
    (b"CONFIG", b"SET", b"requirepass", b"P" * (3 * MIB)),
])
def test_password_longer_than_the_hold_back_never_reaches_the_pcap(tmp_path, frame_args):
    """A secret argument longer than what the chain holds back from the pcap (MAX_HELD) goes
    out masked as it streams, not in clear when the bound is reached."""
    from playground.sinks.pcapsink import PcapSink

    path = tmp_path / "out.pcap"
    pcap = PcapSink(str(path), reactor=MemoryReactorClock())
    pcap.startService()
    chain = Chain([ListSink()], pcap=pcap, decode="resp")
    chain.pair_opened(_pair(), 0.0)
    frame = encode_command(*frame_args)
    for i in range(0, len(frame), CHUNK):
        chain.data(1, C2S, frame[i:i + CHUNK], 1.0)
    chain.data(1, S2C, b"-WRONGPASS invalid\r\n", 2.0)
    chain.data(1, C2S, encode_command("PING"), 3.0)
    chain.pair_closed(1, SUMMARY, 4.0)
    pcap.stopService()
    written = path.read_bytes()
    assert b"P" * 64 not in written
    assert written.count(b"*" * 64) >= 3 * MIB // 64 - 64  # the filler, same length
    assert encode_command("PING") in written  # what follows is not masked
    assert chain.leaked == 0


@pytest.mark.pure
def test_pcap_hold_back_passes_a_long_value_as_it_streams():
    pcap = Pcap()
    chain = Chain([ListSink()], pcap=pcap, decode="resp")
    chain.pair_opened(_pair(), 0.0)
    chain.data(1, C2S, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (4 * MIB), 1.0)
    sent = pcap.written[C2S]
    for _ in range(16):
        chain.data(1, C2S, b"v" * CHUNK, 1.0)
        sent += CHUNK
        assert pcap.written[C2S] == sent  # nothing held back
    chain.pair_closed(1, SUMMARY, 2.0)


_arg = st.one_of(st.sampled_from([b"SET", b"key:1", b"a b", b'q"', b"caf\xc3\xa9", b"\xff"]),
                 st.binary(max_size=8))
# longer than a console token (64 bytes), as every value the decoder cuts (over 64 KiB)
_long = st.tuples(st.sampled_from([b"x", b"key", b'"\\', b"\xc3\xa9", b"\xff", b"a b"]),
                  st.integers(65, 200)).map(lambda t: (t[0] * 200)[:t[1]])
_long_value = st.one_of(
    _long, _long.map(Simple), _long.map(lambda b: Error(b, bulk=True)),
    _long.map(lambda b: Verbatim(b"txt", b)), st.lists(_long, max_size=3),
    st.lists(_long, max_size=3).map(lambda x: Push(tuple(x))),
)


@pytest.mark.pure
@given(st.lists(st.one_of(_arg, _long), min_size=1, max_size=5), _long_value,
       st.integers(1, 12), st.booleans())
@settings(max_examples=300, deadline=None)
def test_truncated_values_show_as_the_whole_ones(args, reply, limit, push):
    """Console and JSON show a value the decoder cut to ``--max-value`` bytes exactly as the
    whole value: its first bytes and its full length."""
    def cut(v):
        return viewed(v, limit + 1, 64, 64)  # as the decoder keeps them

    if push:
        whole = [R.RedisPush(3, 1.0, reply)]
        shown = [R.RedisPush(3, 1.0, cut(reply))]
    else:
        whole = [R.RedisExchange(3, 1.0, "127.0.0.1:5", tuple(args), reply, 0.001, False)]
        shown = [R.RedisExchange(3, 1.0, "127.0.0.1:5", tuple(cut(list(args))), cut(reply),
                                 0.001, False)]
    assert [to_json(r, limit) for r in shown] == [to_json(r, limit) for r in whole]
    formatter = ConsoleFormatter(False, limit)
    assert formatter.lines(shown[0]) == formatter.lines(whole[0])
    console = ConsoleSink(out=io.BytesIO(), color="never", max_value=limit)
    console.formatter = formatter
    assert console.format_batch(shown * 2) == console.format_batch(whole * 2)
    js = JsonSink("unused", max_value=limit)
    assert js.format_batch(shown * 2) == js.format_batch(whole * 2)


@pytest.mark.memory
def test_max_value_0_shows_values_whole_up_to_what_the_decoder_keeps(tmp_path):
    class Opts(usage.Options):
        optParameters = decoding.OPT_PARAMETERS
        optFlags = decoding.OPT_FLAGS

        def postOptions(self):
            decoding.check_options(self)

    path = tmp_path / "out.jsonl"
    opts = Opts()
    opts.parseOptions(["--json", str(path), "--quiet", "--max-value", "0", "--decode", "resp"])
    services, chain = decoding.build(opts, MemoryReactorClock())
    for s in services:
        s.startService()
    chain.pair_opened(_pair(), 0.0)
    small, big = b"s" * 60_000, b"b" * 100_000
    for frame in (encode_command("SET", "a", small), encode_command("SET", "b", big)):
        for i in range(0, len(frame), CHUNK):
            chain.data(1, C2S, frame[i:i + CHUNK], 1.0)
        chain.data(1, S2C, b"+OK\r\n", 2.0)
    chain.pair_closed(1, SUMMARY, 3.0)
    for s in services:
        s.stopService()
    shown = [json.loads(x)["command"] for x in path.read_text().splitlines() if '"redis"' in x]
    assert shown == [["SET", "a", small.decode()],
                     ["SET", "b", {"text": "b" * 65536, "length": len(big)}]]


# -- real redis-server behind the real proxy -------------------------------------------------


def _cmd_reply(sock, data: bytes, reply: bytes) -> None:
    sock.sendall(data)
    assert recv_exactly(sock, len(reply)) == reply


@pytest.mark.twistd
def test_monitor_with_long_values_stays_decoded(redis_server, twistd, tmp_path):
    """A MONITOR client through the proxy sees a 200 KiB SET (a 200 KiB MONITOR line): the
    line is shown cut, with its length, and the small SET after it is still decoded; the
    SET and GET of the 1 MiB value too."""
    out = tmp_path / "out.jsonl"
    proc, port = start_proxy(twistd, f"tcp:host=127.0.0.1:port={redis_server.port}",
                             "--quiet", "--json", out, "--decode", "resp")
    k = b"tcpplay:memory:%d" % time.monotonic_ns()
    big, huge = b"b" * (200 * 1024), b"h" * MIB
    mon = socket.create_connection(("127.0.0.1", port), timeout=10)
    other = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        _cmd_reply(mon, encode_command("MONITOR"), b"+OK\r\n")
        _cmd_reply(other, encode_command("SET", k, big), b"+OK\r\n")
        _cmd_reply(other, encode_command("SET", k + b":small", "after"), b"+OK\r\n")
        _cmd_reply(other, encode_command("SET", k, huge), b"+OK\r\n")
        _cmd_reply(other, encode_command("GET", k), b"$%d\r\n%s\r\n" % (len(huge), huge))

        def records():
            return [json.loads(line) for line in out.read_text().splitlines()]

        def monitor_lines():
            return [r["value"]["simple"] for r in records() if r["type"] == "redis_push"]

        wait_until(lambda: out.exists() and len(monitor_lines()) >= 4, what="4 MONITOR lines")
        lines = monitor_lines()
        assert isinstance(lines[0], dict) and lines[0]["length"] > len(big)
        assert f'"SET" "{k.decode()}" "bbbb' in lines[0]["text"]
        assert lines[1].endswith(f'"SET" "{k.decode()}:small" "after"')
        exchanges = [r for r in records() if r["type"] == "redis"]
        got = [(r["command"][:2], r["reply"]) for r in exchanges if r["command"][0] != "MONITOR"]
        assert got[-2:] == [
            (["SET", k.decode()], {"simple": "OK"}),
            (["GET", k.decode()], {"text": "h" * 200, "length": MIB}),
        ]
        assert exchanges[-2]["command"][2] == {"text": "h" * 200, "length": MIB}
        assert not [r for r in records() if r["type"] in ("undecodable", "bytes")]
    finally:
        mon.close()
        other.close()
    assert proc.terminate() == 0


@pytest.mark.pure
@given(st.lists(st.tuples(st.binary(max_size=60), st.binary(max_size=60)), min_size=1,
                max_size=4),
       st.lists(st.integers(0, 1000), max_size=6), st.lists(st.integers(0, 1000), max_size=6))
@settings(max_examples=200, deadline=None)
def test_conversation_events_are_the_same_at_any_split(pairs, c_cuts, s_cuts):
    """SETs and GETs of long values, then MONITOR showing one: the same exchanges and pushes
    whatever the reads, each long value its first bytes and length."""
    c2s = b"".join(encode_command("SET", k, v) + encode_command("GET", k) for k, v in pairs)
    c2s += encode_command("MONITOR")
    s2c = b"".join(b"+OK\r\n" + encode(v) for _, v in pairs) + b"+OK\r\n"
    s2c += b"".join(b"+1700000000.000001 [0 127.0.0.1:1] \"SET\" \"%s\"\r\n" % v.hex().encode()
                    for _, v in pairs)

    def run(c_at, s_at):
        with stream_min(16):
            conv = RespConversation(max_value=4, max_inline=24)
            out = []
            for data, cuts, d in ((c2s, c_at, C2S), (s2c, s_at, S2C)):
                last = 0
                for cut in sorted({c for c in cuts if 0 < c < len(data)}) + [len(data)]:
                    out += conv.feed(d, data[last:cut], 1.0)
                    last = cut
        return out

    whole = with_spans(run([], []))
    assert with_spans(run(c_cuts, s_cuts)) == whole
    gets = [e.reply for e in whole if type(e) is Exchange and e.command[0] == b"GET"]
    assert gets == [Truncated(v[:5], len(v)) if len(v) > 16 else v for _, v in pairs]
    assert len([e for e in whole if type(e) is ServerPush and e.kind == "monitor"]) == len(pairs)
