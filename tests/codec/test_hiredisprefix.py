"""hiredis behind parse_prefix: what it takes is exactly what the pure parser gives (values and
offsets, for any input and any split), and the parser uses it where it should."""

from __future__ import annotations

from itertools import accumulate

import hiredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground.codec import hiredisprefix
from playground.codec import parser as parser_module
from playground.codec.encoder import encode, encode_command
from playground.codec.hiredisprefix import HiredisPrefix
from playground.codec.parser import RespParser, SpanRun
from playground.codec.values import Simple
from tests.support.codec import canon, mutate, parse_chunks

pytestmark = pytest.mark.pure


@pytest.mark.parametrize("data", [
    b"*2147483647\r\n",
    b"*1\r\n$4\r\nPING\r\n*2147483647\r\n" + b"*1\r\n$4\r\nPING\r\n" * 100,
    b"*1\r\n*2147483647\r\n",
])
@pytest.mark.parametrize("redis_requests", [False, True])
def test_huge_aggregate_header_allocates_nothing(data, redis_requests):
    # hiredis allocates an aggregate's list when it reads the header: a list of 2**31 slots is
    # 16 GiB of address space that takes seconds to free; such headers stay with the pure parser
    import tracemalloc

    tracemalloc.start()
    try:
        RespParser(inline=True, redis_requests=redis_requests).feed(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024


commands = st.lists(
    st.lists(st.binary(max_size=12), min_size=0, max_size=5).map(lambda a: encode_command(*a)),
    min_size=1,
    max_size=20,
).map(b"".join)


risky = st.sampled_from(
    [
        b"",
        b"+OK\r\n",
        b"~1\r\n$1\r\na\r\n",
        b">1\r\n$1\r\na\r\n",
        b"*1\r\n+a\r\n",
        b"*1\r\n(12\r\n",
        b"*2\r\n=5\r\ntxt:a\r\n$1\r\nb\r\n",
        b"|1\r\n:1\r\n:2\r\n*0\r\n",
        b"*1\r\n*1\r\n$1\r\nx\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n:5\r\n",
        b"%1\r\n$1\r\na\r\n$1\r\nb\r\n",
        b"*1\r\n$2\r\nab",
        b"*2\r\n+abcdefgh\r\n=12\r\ntxt:abcdefgh\r\n",
        b"GET a\r\n",
        b"*1\r\n$3\r\nabcXY",
        b"*1\r\n$2\r\na\r\nY",
        b"*2\r\n$2\r\na\r\r\n$1\r\n\nXY",
        b":5\r\n",
        b"$1\r\nx\r\n",
        b"-ERR\r\n",
    ]
)


@given(commands, risky, commands, st.lists(st.integers(0, 2000), max_size=4))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_hiredis_fast_path_equals_pure_parser(a, middle, b, cuts):
    data = a + middle + b
    cuts = [c for c in cuts if c < len(data)]
    saved = parser_module._HIREDIS_MIN
    parser_module._HIREDIS_MIN = 0  # use hiredis on small inputs too
    try:
        for sized in (False, True):
            for inline in (False, True):
                fast = parse_chunks(data, cuts, sized=sized, inline=inline)
                pure = parse_chunks(data, cuts, sized=sized, inline=inline, use_hiredis=False)
                assert fast == pure
    finally:
        parser_module._HIREDIS_MIN = saved


@pytest.fixture
def readers(monkeypatch) -> list:
    """One entry per hiredis.Reader the parser creates (it still gets a real one)."""
    made: list = []

    class CountingHiredis:
        @staticmethod
        def Reader():
            made.append(1)
            return hiredis.Reader()

    monkeypatch.setattr(hiredisprefix, "hiredis", CountingHiredis)
    return made


@pytest.fixture
def taken(monkeypatch) -> list:
    """One entry per parse_prefix call the parser makes: the frames it took (0: none)."""
    calls: list = []

    def recording(self, data, longest):
        values, used = parse_prefix(self, data, longest)
        calls.append(len(values) if used else 0)
        return values, used

    parse_prefix = HiredisPrefix.parse_prefix
    monkeypatch.setattr(HiredisPrefix, "parse_prefix", recording)
    return calls


def test_hiredis_fast_path_is_used_and_exact(readers, taken):
    frame = encode_command("SET", "key:000000000001", "xxx")
    data = frame * 16
    p = RespParser()
    out = p.feed_spans(data)
    assert out == [
        ([b"SET", b"key:000000000001", b"xxx"], i * len(frame), (i + 1) * len(frame))
        for i in range(16)
    ]
    assert p.offset == len(data) and taken == [16]
    # a stream cut mid-frame: hiredis takes the whole frames, the pure parser finishes the cut
    # one, hiredis takes the rest; one reader does it all
    assert len(p.feed(data[:100])) == 2 and taken == [16, 2]
    assert len(p.feed(data[100:])) == 14 and taken == [16, 2, 13] and readers == [1]


def _spans_lazy(data: bytes, cuts, **kw) -> list:
    """feed_spans(lazy=True), with every run of commands expanded through ``run.span(i)``."""
    p = RespParser(**kw)
    out = []
    prev = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        for value, start, end in p.feed_spans(data[prev:cut], lazy=True):
            if end is None:
                out.extend((v, *start.span(i)) for i, v in enumerate(value))
            else:
                out.append((value, start, end))
        prev = cut
    return out


@given(commands, risky, commands, st.lists(st.integers(0, 2000), max_size=4))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_lazy_spans_equal_spans(a, middle, b, cuts):
    data = a + middle + b
    cuts = [c for c in cuts if c < len(data)]
    for inline in (False, True):
        p = RespParser(inline=inline, use_hiredis=False)
        want = []
        prev = 0
        for cut in sorted(set(cuts)) + [len(data)]:
            want += p.feed_spans(data[prev:cut])
            prev = cut
        assert _spans_lazy(data, cuts, inline=inline) == want


@given(st.one_of(commands, risky), st.booleans())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_whole_feed_hiredis_path_equals_pure_parser(frames, inline):
    # each feed starts with a frame: parse_prefix is tried whatever its size
    ours, pure = RespParser(inline=inline), RespParser(inline=inline, use_hiredis=False)
    for frame in (frames, b"*1\r\n$3\r\nabc\r\n", frames):
        assert ours.feed_spans(frame) == pure.feed_spans(frame)
        assert ours.offset == pure.offset


def test_whole_feed_hiredis_path_is_used(readers, taken):
    p = RespParser(max_bulk=4)
    frame = encode_command("SET", "k", "xx")
    for i in range(3):
        assert p.feed_spans(frame) == [([b"SET", b"k", b"xx"], i * len(frame), (i + 1) * len(frame))]
    assert taken == [1, 1, 1] and readers == [1]  # one reader, reused
    # non-canonical, over a bound, or partial: the pure parser decides
    assert p.feed(b"*1\r\n+OK\r\n") == [[Simple(b"OK")]]
    assert p.feed(b"*1\r\n$5\r\nabcde\r\n")[0].message.startswith("bulk length 5 exceeds")


@given(st.one_of(commands, risky), st.booleans())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_feed_command_equals_pure_parser(data, inline):
    """feed_command takes a read only when it is exactly one command, and then gives what the
    pure parser gives; otherwise it consumes nothing."""
    fast, pure = RespParser(inline=inline), RespParser(inline=inline, use_hiredis=False)
    want = pure.feed_spans(data)
    got = fast.feed_command(data)
    if got is None:
        assert fast.offset == 0
        assert fast.feed_spans(data) == want
    else:
        assert want == [(got, 0, len(data))] and fast.offset == len(data)


@given(st.lists(st.binary(max_size=30), min_size=1, max_size=30),
       st.sampled_from([b"", b"+OK\r\n", b"$-1\r\n", b"=5\r\ntxt:a\r\n", b"$2\r\na\r\nY",
                        b"$1\r\n\r\r\n", b"|1\r\n:1\r\n:2\r\n$1\r\nx\r\n", b"*1\r\n$1\r\na\r\n"]),
       st.integers(0, 30), st.lists(st.integers(0, 2000), max_size=3))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_bulk_reply_runs_equal_pure_parser(bodies, odd, at, cuts):
    """Pipelined bulk replies (GETs) go to hiredis in one go: the same values as the pure
    parser's, whatever is mixed in and wherever the stream is cut."""
    frames = [encode(b) for b in bodies]
    data = b"".join(frames[:at]) + odd + b"".join(frames[at:])
    cuts = [c for c in cuts if c < len(data)]
    fast = parse_chunks(data, cuts)
    pure = parse_chunks(data, cuts, use_hiredis=False)
    assert [canon(v) for v in fast] == [canon(v) for v in pure]


def test_bulk_reply_run_uses_hiredis(readers, taken):
    data = b"$3\r\nxxx\r\n" * 16
    assert RespParser().feed(data) == [b"xxx"] * 16 and taken == [16] and readers == [1]


_FOUND = b"".join((  # found by hypothesis: cut at byte 204, just after the last array header
    b"*1\r\n$0\r\n\r\n" * 2,
    (b"*4\r\n$0\r\n\r\n$2\r\n\x00\x00\r\n" + b"$4\r\n\x00\x00\x00\x00\r\n" * 2
     + b"*2\r\n$3\r\n\x00\x00\x00\r\n$9\r\n" + b"\x00" * 9 + b"\r\n"),
    (b"*4\r\n$0\r\n\r\n$2\r\n\x00\x00\r\n" + b"$4\r\n\x00\x00\x00\x00\r\n" * 2
     + b"*2\r\n$5\r\n\x00\x00\x00\x00\x00\r\n$9\r\n" + b"\x00" * 9 + b"\r\n"),
    b"*1\r\n+a\r\n",
    b"*4\r\n$0\r\n\r\n$2\r\n\x00\x00\r\n" + b"$4\r\n\x00\x00\x00\x00\r\n" * 2,
    b"*1\r\n$0\r\n\r\n",
))


@pytest.mark.parametrize("feeds", [
    # a feed ending just after an aggregate's (or a bulk's) header: hiredis has consumed it and
    # says has_data() False, and its CRLF can make up for a simple string's missing one
    [b"*1\r\n+a\r\n*1\r\n", b"$0\r\n\r\n"],
    [b"$1\r\nb\r\n+a\r\n$3\r\n", b"abc\r\n"],
    [_FOUND[:204], _FOUND[204:]],
    # a verbatim string beside a body that starts with "$"
    [b"*2\r\n=5\r\ntxt:a\r\n$1\r\n$\r\n"],
])
def test_hiredis_paths_take_only_whole_exact_frames(feeds, monkeypatch):
    # a read is taken as one whole command only when it is exactly one
    one = RespParser(inline=True)
    got = one.feed_command(feeds[0])
    want = RespParser(inline=True, use_hiredis=False).feed(feeds[0])
    assert (got is None and one.offset == 0) or [canon(got)] == [canon(v) for v in want]
    # runs of frames: hiredis on small inputs too
    monkeypatch.setattr(parser_module, "_HIREDIS_MIN", 0)
    monkeypatch.setattr(parser_module, "_HIREDIS_MIN_BULKS", 0)
    fast, pure = RespParser(), RespParser(use_hiredis=False)
    for data in feeds:
        assert [canon(v) for v in fast.feed(data)] == [canon(v) for v in pure.feed(data)]
    assert fast.offset == pure.offset


# -- parse_prefix itself against the pure parser ----------------------------------------------

# bodies rich in the bytes the checks are about: line ends, type bytes, length digits
tricky_bodies = st.one_of(
    st.sampled_from([b"", b"SET", b"key:000000000001", b"xxx"]),
    st.binary(max_size=12),
    st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"*", b"$", b"~", b"=", b"+", b"1", b"a"]),
             max_size=6).map(b"".join),
)
tricky_commands = st.lists(
    st.lists(tricky_bodies, max_size=4).map(lambda a: encode_command(*a)), min_size=1, max_size=12,
).map(b"".join)
bulk_runs = st.lists(tricky_bodies.map(encode), min_size=1, max_size=16).map(b"".join)
edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=2)
runs = st.one_of(tricky_commands, bulk_runs)
prefix_inputs = st.one_of(
    runs,  # mostly taken
    st.builds(lambda a, m, b: a + m + b, runs, risky, runs),  # taken up to a frame, or not
    st.builds(mutate, runs, edits),  # a byte changed anywhere: a length, a terminator, a type
    st.builds(lambda a, cut: a[:cut], runs, st.integers(0, 400)),  # cut short
)


def _run_spans(data: bytes, values: list) -> list:
    """Where each value parse_prefix gave starts and the last ends, read from the values alone:
    ``SpanRun`` for a run of commands, encoded sizes for a run of bulk strings."""
    if data[:1] == b"*":
        return SpanRun(values, 0).starts()
    return list(accumulate(map(len, map(encode, values)), initial=0))


_REUSED = HiredisPrefix()


@given(prefix_inputs.filter(bool), st.sampled_from([512 * 1024 * 1024, 8, 0]))
@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
def test_parse_prefix_equals_pure_parser(data, longest):
    """What parse_prefix takes is, frame for frame, what the pure parser reads from the same
    stream: the same values, the same offsets (as SpanRun works them out), and no part of a
    frame left over at ``used``."""
    values, used = HiredisPrefix().parse_prefix(data, longest)
    # a reader reused after every other example (taken, refused, left inside a frame) agrees
    assert _REUSED.parse_prefix(data, longest) == (values, used)
    if not used:
        assert values == ()
        return
    assert 0 < used <= len(data) and values
    pure = RespParser(use_hiredis=False, max_bulk=longest)
    want = pure.feed_spans(data)[: len(values)]
    starts = _run_spans(data, values)
    assert [(canon(v), s, e) for v, s, e in want] == [
        (canon(v), s, e) for v, s, e in zip(values, starts[:-1], starts[1:], strict=True)]
    assert starts[-1] == used
    # nothing of a frame past the last one taken: a fresh pure parser stops exactly there
    rest = RespParser(use_hiredis=False, max_bulk=longest)
    assert [canon(v) for v in rest.feed(data[:used])] == [canon(v) for v in values]
    assert rest.offset == rest.frame_start == used and rest.buffered() == 0


@given(prefix_inputs, st.lists(st.integers(0, 2000), max_size=4), st.booleans(),
       st.sampled_from([None, 0, 8]))
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_parser_with_parse_prefix_equals_pure_parser_at_any_split(data, cuts, inline, max_value):
    """The parser trying parse_prefix wherever it may (any size) gives the pure parser's values
    and offsets wherever the stream is cut: values, spans, and lazy spans expanded."""
    cuts = sorted({c for c in cuts if c < len(data)}) + [len(data)]
    kw = {"inline": inline, "max_value": max_value}

    def run(feed_name, use_hiredis, expand=False):
        p = RespParser(use_hiredis=use_hiredis, **kw)
        feed = getattr(p, feed_name)
        out, prev = [], 0
        for cut in cuts:
            for item in (feed(data[prev:cut], lazy=True) if expand else feed(data[prev:cut])):
                if expand and item[2] is None:
                    values, run_, _ = item
                    out.extend((canon(v), *run_.span(i)) for i, v in enumerate(values))
                elif feed_name == "feed":
                    out.append(canon(item))
                else:
                    out.append((canon(item[0]), *item[1:]))
            prev = cut
        return out, None if p.failed else p.offset  # a failed parser's offset means nothing

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parser_module, "_HIREDIS_MIN", 0)
        mp.setattr(parser_module, "_HIREDIS_MIN_BULKS", 0)
        mp.setattr(parser_module, "STREAM_MIN", 16)  # long strings streamed: a smaller bound
        for feed_name, expand in (("feed", False), ("feed_spans", False), ("feed_spans", True)):
            assert run(feed_name, True, expand) == run(feed_name, False, expand), feed_name


def test_parse_prefix_shapes():
    parse_prefix = HiredisPrefix().parse_prefix
    cmd = encode_command("SET", "k", "v")
    # a run of commands up to the last frame start; all of it when it ends with a line end
    assert parse_prefix(cmd * 2 + cmd[:5], 100) == ([[b"SET", b"k", b"v"]] * 2, 2 * len(cmd))
    assert parse_prefix(cmd * 3, 100) == ([[b"SET", b"k", b"v"]] * 3, 3 * len(cmd))
    # a run of bulk strings: all of it, or nothing
    assert parse_prefix(b"$1\r\na\r\n$0\r\n\r\n", 100) == ([b"a", b""], 13)
    assert parse_prefix(b"$1\r\na\r\n$0\r\n", 100) == ((), 0)
    # not taken: other types, a bad terminator, a body over the bound, a set, a huge header
    for data in (b"+OK\r\n", b"*1\r\n+OK\r\n", b"*1\r\n$1\r\naXY", b"*1\r\n$1\r\naXY*0\r\n",
                 b"~1\r\n$1\r\na\r\n", b"*1\r\n~1\r\n$1\r\na\r\n", b"*1\r\n$3\r\nabc\r\n",
                 b"*2147483647\r\n", b"*1\r\n$x\r\n"):
        assert parse_prefix(data, 2) == ((), 0), data


def test_long_runs_with_a_type_hiredis_shows_differently_are_not_taken():
    """A run long enough for the byte-level look first (128 bytes or more): a set, push,
    attribute or verbatim string anywhere in it, or a huge array header, and the run is left
    to the pure parser; the same type bytes inside a value are no reason to refuse it."""
    parse_prefix = HiredisPrefix().parse_prefix
    cmd = encode_command("SET", "k", "v")
    run = cmd * 20  # 540 bytes
    for inner in (b"*1\r\n~1\r\n$1\r\na\r\n", b"*1\r\n>1\r\n$1\r\na\r\n",
                  b"*1\r\n|1\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", b"*1\r\n=5\r\ntxt:a\r\n",
                  b"*1\r\n*1\r\n$1\r\na\r\n", b"*1234567\r\n"):
        for data in (inner + run, run + inner + cmd, run + inner):
            assert len(data) >= 256 and parse_prefix(data, 100) == ((), 0), data
    value = encode_command("SET", "k", "a~>|=")
    assert parse_prefix(run + value, 100) == (
        [[b"SET", b"k", b"v"]] * 20 + [[b"SET", b"k", b"a~>|="]], len(run + value))
    # a run of bulk replies (pipelined GETs), mostly without a "*"
    bulks = b"$1\r\na\r\n" * 20  # 140 bytes
    for inner in (b"~1\r\n$1\r\na\r\n", b">1\r\n$1\r\na\r\n", b"=5\r\ntxt:a\r\n",
                  b"*1234567\r\n", b"*1\r\n$1\r\na\r\n"):
        for data in (bulks + inner, bulks + inner + bulks):
            assert len(data) >= 128 and parse_prefix(data, 100) == ((), 0), data
    assert parse_prefix(bulks, 100) == ([b"a"] * 20, 140)
    assert parse_prefix(b"$3\r\n*~|\r\n" + bulks, 100) == ([b"*~|"] + [b"a"] * 20, 149)
