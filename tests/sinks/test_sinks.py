"""Console and JSON-lines sinks: formats, batching once per reactor turn, service lifecycle."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock

from playground.codec import values as resp
from playground.decode import records as R
from playground.decode.records import json_bytes, json_value, to_json
from playground.sinks.batching import FLUSH_DELAY, MAX_BACKLOG, BufferedSink
from playground.sinks.console import ConsoleFormatter, ConsoleSink, format_args, format_value
from playground.sinks.jsonlines import JsonSink
from playground.sinks.jsonlines import _encode as _json_encode
from playground.sinks.plain import PlainReplies, is_plain, plain_batch, remember


class CountingIO(io.BytesIO):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, b):
        self.writes += 1
        return super().write(b)


def redis(cmd, reply, latency=0.00021):
    return R.RedisExchange(3, 1.0, "127.0.0.1:51234", tuple(cmd), reply, latency)


@pytest.mark.pure
def test_console_redis_line():
    f = ConsoleFormatter(False, 200)
    assert f.lines(redis([b"SET", b"foo", b"bar"], resp.Simple(b"OK"))) == [
        '#3 127.0.0.1:51234 SET foo "bar" -> +OK (0.21 ms)'
    ]
    [line] = f.lines(redis([b"GET", b"k"], b"x" * 5000000))
    assert line.endswith('-> "' + "x" * 200 + '..." (5000000 bytes) (0.21 ms)')
    [line] = f.lines(R.RedisPush(3, 1.0, resp.Push((b"message", b"news", b"hello"))))
    assert line == '#3 <- message news "hello"'


@pytest.mark.pure
def test_console_http_line():
    r = R.HttpExchange(
        4,
        1.0,
        "127.0.0.1:5555",
        b"GET",
        b"/get",
        b"HTTP/1.1",
        200,
        b"OK",
        0.0012,
        (),
        (),
        0,
        312,
        b"application/json",
        b"",
        b"",
    )
    assert ConsoleFormatter().lines(r) == [
        "#4 127.0.0.1:5555 GET /get -> 200 OK application/json 312 B (1.20 ms)"
    ]


@pytest.mark.pure
def test_format_values():
    assert format_value(None, 10) == "(nil)"
    assert format_value(5, 10) == "(integer) 5"
    assert format_value(resp.Error(b"ERR no\x1b"), 10) == "-ERR no\\x1b"
    assert format_value([b"a", 1, None], 10) == '["a", (integer) 1, (nil)]'
    assert format_value(resp.Map(((b"k", b"v"),)), 10) == '{"k": "v"}'
    assert "... (100 items)" in format_value([b"x"] * 100, 10)
    assert format_args([b"SET", b"a b", b"\r\n"], 10) == 'SET "a b" "\\r\\n"'


@pytest.mark.memory
def test_console_colours_only_when_asked():
    r = redis([b"PING"], resp.Simple(b"PONG"))
    assert "\x1b[" in ConsoleFormatter(True).lines(r)[0]
    assert "\x1b" not in ConsoleFormatter(False).lines(r)[0]
    out = CountingIO()
    sink = ConsoleSink(out=out, color="auto", reactor=MemoryReactorClock())
    sink.startService()
    sink.emit(r)
    sink.stopService()
    assert b"\x1b" not in out.getvalue()  # not a terminal


@pytest.mark.memory
def test_console_writes_once_per_batch():
    clock = MemoryReactorClock()
    out = CountingIO()
    sink = ConsoleSink(out=out, color="never", reactor=clock)
    sink.startService()
    for i in range(100):
        sink.emit(redis([b"GET", b"k%d" % i], None))
    assert out.writes == 0 and len(clock.getDelayedCalls()) == 1
    clock.advance(FLUSH_DELAY / 2)
    assert out.writes == 0
    clock.advance(FLUSH_DELAY / 2)
    assert out.writes == 1
    assert out.getvalue().count(b"\n") == 100
    sink.emit(redis([b"GET", b"last"], None))
    sink.stopService()  # flushes what is queued
    assert out.getvalue().endswith(b"GET last -> (nil) (0.21 ms)\n")
    sink.emit(redis([b"GET", b"after"], None))  # ignored once stopped
    assert b"after" not in out.getvalue()


@pytest.mark.memory
def test_json_sink_lifecycle(tmp_path):
    path = tmp_path / "out.jsonl"
    clock = MemoryReactorClock()
    sink = JsonSink(str(path), max_value=4, reactor=clock)
    sink.startService()
    sink.emit(redis([b"SET", b"k", b"\xff\xfe"], resp.Simple(b"OK")))
    sink.emit(redis([b"GET", b"k"], b"0123456789"))
    clock.advance(FLUSH_DELAY)
    sink.emit(R.Close(3, 2.0, "c", 1, 2, 1.0, "client", "fin"))
    sink.stopService()
    lines = path.read_text().splitlines()
    objs = [json.loads(x) for x in lines]
    assert objs[0]["command"] == ["SET", "k", {"base64": "//4="}]
    assert objs[0]["reply"] == {"simple": "OK"}
    assert objs[1]["reply"] == {"text": "0123", "length": 10}
    assert objs[2]["type"] == "close"
    # appending: a second run adds lines
    sink2 = JsonSink(str(path), reactor=clock)
    sink2.startService()
    sink2.emit(R.Notice(1, 3.0, "hi"))
    sink2.stopService()
    assert len(path.read_text().splitlines()) == 4


@pytest.mark.pure
def test_json_values():
    assert json_bytes(b"abc") == "abc"
    assert json_bytes("é".encode() * 3, 3) == {"text": "é", "length": 6}
    assert json_value(float("inf")) == {"double": "inf"}
    assert json_value(resp.BigNumber(10**30)) == {"bignum": str(10**30)}
    assert json_value(resp.Set((1, 2))) == {"set": [1, 2]}
    assert json_value(resp.Verbatim(b"txt", b"hi")) == {"verbatim": "hi", "format": "txt"}
    assert json_value([b"x"] * 1002)[-1] == {"more": 2}
    assert json_value(True) is True and json_value(None) is None


@pytest.mark.pure
def test_every_record_kind_serialises():
    recs = [
        R.Open(1, 0.0, "c", "l", "s", "t"),
        R.Close(1, 0.0, "c", 1, 2, 0.1, "client", "fin"),
        R.HalfClose(1, 0.0, "c2s"),
        R.Detected(1, 0.0, "resp", False),
        redis([b"PING"], resp.Simple(b"PONG")),
        R.RedisPush(1, 0.0, resp.Push((b"a",))),
        R.RedisUnanswered(1, 0.0, "c", (b"BLPOP", b"q", b"0")),
        R.HttpExchange(
            1, 0.0, "c", b"GET", b"/", b"HTTP/1.1", None, b"", None, (), (), 0, 0, None, b"", b""
        ),
        R.TextLine(1, 0.0, "s2c", b"220 hi\r\n", 0, False),
        R.HexChunk(1, 0.0, "c2s", b"\x00" * 300, 16),
        R.Undecodable(1, 0.0, "c2s", "http", "bad", 5),
        R.Notice(1, 0.0, "n"),
    ]
    f = ConsoleFormatter()
    for r in recs:
        obj = to_json(r, 200)
        json.dumps(obj, allow_nan=False)
        assert obj["pair"] == r.pair and "type" in obj
        assert f.lines(r)
    assert to_json(recs[9], 200)["data"]["length"] == 300


# -- the hand-written fast paths write exactly what the general formatters write ----------------

_arg = st.one_of(
    st.sampled_from([b"SET", b"get", b"key:1", b"", b"a b", b'q"uote', b"back\\slash", b"\x1b[31m",
                     b"caf\xc3\xa9", b"\xff\xfe", b"x" * 250, b"{tag}:k", b"tab\there"]),
    st.binary(max_size=12),
)
_reply = st.one_of(
    st.none(), st.integers(-(2**63), 2**63 - 1), _arg, st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([resp.Simple(b"OK"), resp.Simple(b"QUEUED"), resp.Simple(b'we"ird\\'),
                     resp.Error(b"ERR wrong"), resp.Map(((b"a", 1),)), resp.Push((b"m",))]),
    st.lists(st.one_of(_arg, st.none()), max_size=4),
)
_exchange = st.builds(
    R.RedisExchange,
    st.integers(1, 3),
    st.sampled_from([1.0, 1.5, 1.7e9 + 0.123456]),
    st.sampled_from(["127.0.0.1:51234", "[::1]:5", 'odd"client']),
    st.lists(_arg, max_size=5).map(tuple),
    _reply,
    st.one_of(st.none(), st.sampled_from([0.00021, 0.0099999, 0.01, 12.5, 2e-05])),
    st.booleans(),
)
_records = st.lists(st.one_of(_exchange, st.just(R.Notice(2, 1.0, "note"))), max_size=12)


@pytest.mark.pure
@given(_records, st.sampled_from([0, 4, 200]))
@settings(max_examples=300, deadline=None)
def test_json_fast_path_equals_to_json(records, limit):
    """The hand-written lines hold the same JSON values, keys in the same order, as the
    general encoder's (numbers may be spelled differently: a latency as ``0.000210000``)."""
    sink = JsonSink("unused", max_value=limit)
    fast = sink.format_batch(records).decode("utf-8", "surrogatepass").split("\n")
    slow = [_json_encode(to_json(r, limit)) for r in records]
    assert fast[-1] == "" and len(fast) == len(slow) + 1

    def parsed(line):
        return json.loads(line, object_pairs_hook=list)

    assert [parsed(line) for line in fast[:-1]] == [parsed(line) for line in slow]


@pytest.mark.pure
def test_json_lines_are_utf_8_whatever_the_strings():
    """A string with a lone surrogate (a --target path from a non-UTF-8 argv, a note or a reason
    naming one) is written as JSON's escape: the line stays UTF-8 (jq and other strict readers
    refuse the bytes surrogatepass made), and reads back as the string it was."""
    odd = "unix:/srv/\udcff.sock"
    records = [R.Open(1, 1.0, odd, odd, odd, odd), R.Notice(1, 1.0, odd),
               R.Close(1, 2.0, odd, 1, 2, 0.5, "client", "fin", odd),
               R.RedisExchange(1, 1.0, odd, (b"GET", b"k"), b"v", 0.001, False)]
    for r in records:  # one a batch: the exchange's head made for its client
        [line] = JsonSink("unused").format_batch([r]).decode("utf-8").splitlines()  # strict
        assert odd in json.loads(line).values()
    cafe = R.RedisExchange(1, 1.0, "127.0.0.1:5", (b"GET", b"caf\xc3\xa9"), b"v", 0.001, False)
    assert "café" in JsonSink("unused").format_batch([cafe]).decode("utf-8")  # not escaped


@pytest.mark.pure
@given(_records, st.sampled_from([0, 4, 200]))
@settings(max_examples=300, deadline=None)
def test_console_fast_path_equals_formatter(records, limit):
    sink = ConsoleSink(out=io.BytesIO(), color="never", max_value=limit)
    sink.formatter = ConsoleFormatter(False, limit)
    fast = sink.format_batch(records)
    slow = "".join(line + "\n" for r in records for line in sink.formatter.lines(r))
    assert fast == slow.encode("utf-8", "surrogateescape")


@pytest.mark.memory
def test_sinks_bound_their_backlog():
    clock = MemoryReactorClock()
    out = CountingIO()
    sink = ConsoleSink(out=out, color="never", reactor=clock)
    sink.startService()
    for i in range(MAX_BACKLOG * 3):
        sink.emit(redis([b"GET", b"k%d" % i], None))
    assert out.writes == 3 and not sink._queue  # written at the bound, no timer needed
    sink.emit_many([redis([b"GET", b"a"], None), redis([b"GET", b"b"], None)])
    clock.advance(FLUSH_DELAY)
    assert out.writes == 4 and out.getvalue().endswith(b'GET b -> (nil) (0.21 ms)\n')
    sink.stopService()


# -- batching: what a sink states is its output and its format; the queue is shared -----------


class Lines(BufferedSink):
    """The least a sink states: where it writes and how a batch looks."""

    label = "lines"

    def __init__(self, reactor, fail_on=None):
        super().__init__(reactor)
        self.target = CountingIO()
        self.batches: list[list] = []
        self.fail_on = fail_on

    def open_output(self):
        return self.target

    def format_batch(self, batch):
        self.batches.append(list(batch))
        if self.fail_on in batch:
            raise ValueError("cannot format")
        return b"".join(b"%d\n" % r for r in batch)


@pytest.mark.memory
def test_buffered_sink_writes_a_batch_per_flush_delay_and_at_the_bound():
    clock = MemoryReactorClock()
    sink = Lines(clock)
    sink.emit(1)  # not started: nothing is queued
    sink.startService()
    sink.emit(1)
    sink.emit_many([2, 3])
    assert sink.target.writes == 0 and len(clock.getDelayedCalls()) == 1  # one timer per batch
    clock.advance(FLUSH_DELAY)
    assert sink.target.getvalue() == b"1\n2\n3\n" and sink.written == 3
    sink.emit(0)  # a timer is set; at the bound the batch is written at once
    sink.emit_many(list(range(1, MAX_BACKLOG)))
    assert sink.target.writes == 2 and sink.batches[-1] == list(range(MAX_BACKLOG))
    sink.emit(7)
    sink.stopService()  # flushes what is queued, cancels the timer
    assert sink.target.getvalue().endswith(b"\n7\n") and not clock.getDelayedCalls()
    sink.emit(8)  # ignored once stopped
    assert sink.written == MAX_BACKLOG + 4


@pytest.mark.memory
def test_buffered_sink_slices_a_big_flush_and_counts_runs_as_their_exchanges():
    clock = MemoryReactorClock()
    sink = Lines(clock)
    sink.format_batch = lambda batch: sink.batches.append(list(batch)) or b"x\n"
    sink.startService()
    run = R.RedisExchanges(1, 0.0, "c", [(b"GET", b"k")] * 200, [b"v"] * 200, [0.001] * 200)
    sink.emit(1)
    sink.emit_many([run])
    sink.emit_many([run])
    assert not sink.batches  # 401 exchanges queued
    sink.emit_many([run, 2])  # 602: written at once, in slices of about MAX_BACKLOG exchanges
    assert sink.batches == [[1, run, run, run], [2]] and sink.written == 602
    sink.stopService()


@pytest.mark.memory
def test_buffered_sink_drops_a_batch_it_cannot_format_and_stops_on_a_write_error():
    clock = MemoryReactorClock()
    sink = Lines(clock, fail_on=2)
    sink.startService()
    sink.emit_many([1, 2])
    clock.advance(FLUSH_DELAY)
    sink.emit(3)
    clock.advance(FLUSH_DELAY)
    assert sink.target.getvalue() == b"3\n" and not sink.failed  # the failing batch only

    def broken(data):
        raise OSError(28, "No space left on device")

    sink.target.write = broken
    sink.emit(4)
    clock.advance(FLUSH_DELAY)
    assert sink.failed
    sink.emit(5)  # nothing more is queued
    assert not sink._queue
    sink.stopService()


@pytest.mark.pure
def test_plain_batch_looks_at_the_batch_once():
    ok = resp.Simple(b"OK")
    plain = [redis([b"SET", b"k", b"v"], ok), redis([b"GET", b"k"], b"v")]
    assert plain_batch(plain, 200) == (True, 2, 3, True)
    assert plain_batch(plain + [R.Notice(1, 1.0, "not an exchange")], 200) == (True, 2, 3, True)
    assert plain_batch([R.Notice(1, 1.0, "x")], 200) == (False, 0, 0, False)
    assert plain_batch(plain + [redis([b"GET", b'"k'], None)], 200)[0] is False
    assert plain_batch(plain + [redis([b"GET", 5], None)], 200)[0] is False  # not bytes
    assert plain_batch(plain + [redis([b"GET", b"k" * 5], None)], 4)[0] is False  # over lim
    assert plain_batch(plain + [redis([b"GET", b"k" * 5], None)], 0)[0] is True  # no bound
    assert plain_batch(plain + [redis([b"GET", b"k"], b"\n")], 200)[3] is False  # the bulk
    run = R.RedisExchanges(3, 1.0, "c", [(b"GET", b"a", b"b", b"c")], [b"\xff"], [0.001])
    assert plain_batch(plain + [run], 200) == (True, 2, 4, False)


@pytest.mark.pure
def test_plain_replies_in_a_sinks_own_notation():
    replies = PlainReplies(b"+%s", b"(integer) %d", b"(nil)")
    assert replies(resp.Simple(b"OK"), 200) == b"+OK"
    assert replies(resp.Simple(b"OK"), 200) is replies(resp.Simple(b"OK"), 200)  # made once
    assert replies(b"abc", 200) == b'"abc"'
    assert replies(b"abc", 2) is None and replies(b"abc", 2, checked=True) == b'"abc"'
    assert replies(b"a\\b", 200) is None and replies(resp.Simple(b"\x00"), 200) is None
    assert replies(7, 200) == b"(integer) 7" and replies(None, 200) == b"(nil)"
    assert replies([b"a"], 200) is None  # no list notation given
    assert replies(resp.Error(b"ERR x"), 200) is None  # the sink's general formatter
    listing = PlainReplies(b"%s", b"%d", b"null", items=lambda v, lim: b"[%d]" % len(v))
    assert listing([b"a", b"b"], 200) == b"[2]"


@pytest.mark.pure
def test_plain_is_what_escape_and_json_leave_as_it_is():
    for byte in range(256):
        b = bytes([byte])
        shown_as_is = escape_keeps(b) and json.dumps(b.decode("latin-1"))[1:-1] == chr(byte)
        assert is_plain(b) == shown_as_is, b
    assert is_plain(b"") and is_plain(b"SET key:1 x") and not is_plain(b"SET key:1 \xff")


def escape_keeps(b: bytes) -> bool:
    from playground.decode.views import escape

    return escape(b) == b.decode("latin-1")


@pytest.mark.pure
def test_remember_holds_a_bounded_number_of_entries():
    cache: dict = {}
    for i in range(1000):
        assert remember(cache, i, str(i)) == str(i)
    assert len(cache) == 256 and cache[255] == "255" and 256 not in cache


# -- runs: one R.RedisExchanges shows exactly as the exchanges it stands for ------------------

_run = st.builds(
    R.RedisExchanges,
    st.integers(1, 3),
    st.sampled_from([1.0, 1.7e9 + 0.123456]),
    st.sampled_from(["127.0.0.1:51234", 'odd"client']),
    st.just([]), st.just([]), st.just([]),
)
_run_items = st.lists(
    st.tuples(
        st.one_of(st.lists(st.sampled_from([b"GET", b"SET", b"key:1", b"x" * 250, b"a b"]),
                           min_size=1, max_size=4).map(tuple),
                  st.lists(_arg, max_size=4).map(tuple)),
        st.one_of(st.sampled_from([resp.Simple(b"OK"), b"xxx", b"", 7, None]), _reply),
        st.one_of(st.just(0.00021), st.sampled_from([0.0099999, 12.5, 2e-05, None])),
    ),
    min_size=1, max_size=20,
)


def _filled(run, items):
    run.commands = [c for c, _, _ in items]
    run.replies = [r for _, r, _ in items]
    run.latencies = [x for _, _, x in items]
    return run


@pytest.mark.pure
@given(_run, _run_items, st.lists(_exchange, max_size=3), st.sampled_from([0, 4, 200]),
       st.booleans())
@settings(max_examples=300, deadline=None)
def test_runs_show_as_their_exchanges(run, items, around, limit, color):
    run = _filled(run, items)
    batch = around + [run] + around
    expanded = R.expand(batch)
    sink = JsonSink("unused", max_value=limit)
    assert sink.format_batch(batch) == sink.format_batch(expanded)
    console = ConsoleSink(out=io.BytesIO(), color="never", max_value=limit)
    console.formatter = ConsoleFormatter(color, limit)
    assert console.format_batch(batch) == console.format_batch(expanded)


@pytest.mark.pure
def test_common_runs_take_the_fast_path(monkeypatch):
    """A run of plain SETs or GETs is formatted without making one record per exchange."""
    run = R.RedisExchanges(3, 1.7e9, "127.0.0.1:5", [(b"SET", b"k", b"v")] * 16,
                           [resp.Simple(b"OK")] * 16, [0.0002] * 8 + [0.0003] * 8)
    gets = R.RedisExchanges(3, 1.7e9, "127.0.0.1:5", [(b"GET", b"k")] * 16, [b"v"] * 16,
                            [0.0002] * 16)
    want_json = JsonSink("unused").format_batch(run.exchanges() + gets.exchanges())
    console = ConsoleSink(out=io.BytesIO(), color="never")
    console.formatter = ConsoleFormatter(False, 200)
    want_console = console.format_batch(run.exchanges() + gets.exchanges())
    monkeypatch.setattr(R.RedisExchanges, "exchanges", None)  # the fast path must not need it
    assert JsonSink("unused").format_batch([run, gets]) == want_json
    assert console.format_batch([run, gets]) == want_console


_uniform_run = st.tuples(
    st.one_of(*(st.lists(st.lists(st.sampled_from(args), min_size=1, max_size=5).map(tuple),
                         min_size=1, max_size=20)
                for args in ([b"GET", b"k", b"v"], [b"GET", b"key:1", b"a b", b"x" * 250, b"\xff"],
                             [b"SET", b"k%s", b"%d%%"]))),
    st.one_of(
        # one reply for all (pipelined +OK), or equal ones of one type, or of several types
        st.sampled_from([resp.Simple(b"OK"), b"xxx", 1, None, True, 1.0, resp.Simple(b"\xff"),
                         b"y" * 250, [b"a"], resp.Simple(b"1%s%%")]).map(lambda v: lambda n: [v] * n),
        st.sampled_from([1, True]).map(lambda v: lambda n: [1] * (n - 1) + [v]),
        # bulk strings each (pipelined GET), plain or not
        st.lists(st.sampled_from([b"a", b"bb", b"", b"q\"", b"z" * 250, b"%s"]), min_size=21,
                 max_size=21).map(lambda vs: lambda n: [bytes(bytearray(v)) for v in vs[:n]]),
    ),
    st.one_of(st.sampled_from([0.00021, 12.5, None]).map(lambda x: lambda n: [x] * n),
              st.just(lambda n: [0.0002] * (n - 1) + [0.0003])),
)


@pytest.mark.pure
@given(_uniform_run, st.sampled_from([0, 4, 200]), st.sampled_from(["127.0.0.1:9", "/t%s%%.sock"]),
       st.booleans(), st.integers(0, 3), st.booleans())
@settings(max_examples=300, deadline=None)
def test_common_runs_made_in_one_go_show_as_their_exchanges(uniform, limit, client, as_lists,
                                                            long_one, typed):
    """The runs the sinks make in one go (one latency; one reply, or a bulk string each)
    show exactly as their exchanges, whatever their arguments (as tuples, or lists as the
    parser gives them; of one length or several; one with 70 of them), replies and client,
    and whether the decoder said the replies' types (``reply_types``) or not."""
    commands, replies, latencies = uniform
    if long_one == 3:
        commands = commands + [(b"MSET",) + (b"k",) * 69]
    if as_lists:
        commands = list(map(list, commands))
    n = len(commands)
    shown = replies(n)
    run = R.RedisExchanges(2, 1.7e9 + 0.5, client, commands, shown, latencies(n),
                           frozenset(map(type, shown)) if typed else None)
    expanded = R.expand([run])
    sink = JsonSink("unused", max_value=limit)
    assert sink.format_batch([run]) == sink.format_batch(expanded)
    console = ConsoleSink(out=io.BytesIO(), color="never", max_value=limit)
    console.formatter = ConsoleFormatter(False, limit)
    assert console.format_batch([run]) == console.format_batch(expanded)


@pytest.mark.pure
def test_common_runs_are_made_in_one_go(monkeypatch):
    """Pipelined SETs (one ``+OK`` for all) and GETs (a bulk string each) with one latency
    are written without a Python step per line: no reply is looked up one by one."""
    sets = R.RedisExchanges(3, 1.7e9, "127.0.0.1:5", [(b"SET", b"k%d" % i, b"v") for i in
                                                      range(16)], [resp.Simple(b"OK")] * 16,
                            [0.0002] * 16)
    gets = R.RedisExchanges(3, 1.7e9, "127.0.0.1:5", [(b"GET", b"k%d" % i) for i in range(16)],
                            [b"v%d" % i for i in range(16)], [0.0002] * 16)
    json_sink = JsonSink("unused")
    console = ConsoleSink(out=io.BytesIO(), color="never")
    console.formatter = ConsoleFormatter(False, 200)
    want = json_sink.format_batch(R.expand([sets, gets])), console.format_batch(
        R.expand([sets, gets]))
    calls = []
    for sink in (json_sink, console):
        reply_text = sink._replies
        monkeypatch.setattr(sink, "_replies", lambda *a, f=reply_text: calls.append(a) or f(*a))
    got = json_sink.format_batch([sets, gets]), console.format_batch([sets, gets])
    assert got == want
    assert len(calls) == 2  # +OK, once per sink
    assert got[1].splitlines()[16] == b'#3 127.0.0.1:5 GET k0 -> "v0" (0.20 ms)'


@pytest.mark.pure
def test_json_heads_stay_right_past_the_remembered_pairs():
    """An exchange head's bytes around ts are remembered per pair and client, a bounded number:
    past the bound (the remembered ones dropped) every line is still what to_json says."""
    from playground.sinks.jsonlines import _AROUND

    sink = JsonSink("unused")
    records = [R.RedisExchange(p, 1.7e9 + p / 7, f"127.0.0.1:{p}", (b"GET", b"k"), b"v", 0.0002)
               for p in range(1, 2 * _AROUND + 10)]
    for batch in (records, records[::-1]):
        lines = sink.format_batch(batch).split(b"\n")[:-1]
        assert [json.loads(x) for x in lines] == [json.loads(_json_encode(to_json(r, 200)))
                                                  for r in batch]
    assert len(sink._around) <= _AROUND


@pytest.mark.pure
@given(st.lists(st.one_of(st.binary(max_size=70), st.sampled_from([b"key:1", b"x" * 64, b"x" * 65,
                                                                    b"{a}.b-c/d@e*f_9"])),
                min_size=1, max_size=8))
@settings(max_examples=300)
def test_keys_looked_at_together_are_bare_as_each_alone(keys):
    from playground.sinks.console import _SAFE_TOKEN, _bare

    assert _bare(keys) == all(_SAFE_TOKEN.fullmatch(k) is not None for k in keys)
