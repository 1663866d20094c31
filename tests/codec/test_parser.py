"""The RESP parser: every type, edge cases, bounds, redis-server's request framing, inline
commands, split invariance, stream offsets and the one-read fast paths; hiredis as the oracle."""

from __future__ import annotations

import math
import time

import hiredis
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from playground.codec.encoder import encode, encode_command
from playground.codec.parser import NOT_ONE, RespParser
from playground.codec.values import (
    Attributed,
    BigNumber,
    Error,
    Inline,
    Map,
    ProtocolError,
    Push,
    Set,
    Simple,
    Verbatim,
)
from tests.support.codec import (
    canon,
    error_of,
    mutate,
    no_crlf,
    one,
    parse_all,
    parse_bytewise,
    parse_chunks,
    values,
)

pytestmark = pytest.mark.pure

# ---------------------------------------------------------------------------------------------
# every type


@pytest.mark.parametrize(
    "wire, value",
    [
        (b"$3\r\nfoo\r\n", b"foo"),
        (b"$0\r\n\r\n", b""),
        (b"$4\r\na\r\nb\r\n", b"a\r\nb"),
        (b"$-1\r\n", None),
        (b"+OK\r\n", Simple(b"OK")),
        (b"+\r\n", Simple(b"")),
        (b"-ERR wrong\r\n", Error(b"ERR wrong")),
        (b"!5\r\nSYN x\r\n", Error(b"SYN x", bulk=True)),
        (b":0\r\n", 0),
        (b":-42\r\n", -42),
        (b":9223372036854775807\r\n", 2**63 - 1),
        (b":-9223372036854775808\r\n", -(2**63)),
        (b"_\r\n", None),
        (b"*-1\r\n", None),
        (b"*0\r\n", []),
        (b"#t\r\n", True),
        (b"#f\r\n", False),
        (b",1.5\r\n", 1.5),
        (b",-2\r\n", -2.0),
        (b",1e10\r\n", 1e10),
        (b",inf\r\n", math.inf),
        (b",-inf\r\n", -math.inf),
        (
            b"(3492890328409238509324850943850943825024385\r\n",
            BigNumber(3492890328409238509324850943850943825024385),
        ),
        (b"(-5\r\n", BigNumber(-5)),
        (b"=15\r\ntxt:Some string\r\n", Verbatim(b"txt", b"Some string")),
        (b"=4\r\nmkd:\r\n", Verbatim(b"mkd", b"")),
        (b"*2\r\n:1\r\n$1\r\na\r\n", [1, b"a"]),
        (b"*2\r\n*1\r\n$-1\r\n*0\r\n", [[None], []]),
        (
            b"%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n*1\r\n:2\r\n",
            Map(((Simple(b"first"), 1), (b"second", [2]))),
        ),
        (b"%0\r\n", Map()),
        (b"~2\r\n:1\r\n:1\r\n", Set((1, 1))),
        (b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n", Push((b"message", b"ch", b"x"))),
        (
            b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2\r\n:9\r\n",
            Attributed(Map(((Simple(b"key-popularity"), Map(((b"a", 0.19),))),)), [2, 9]),
        ),
        (
            b"*2\r\n|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n:5\r\n",
            [Attributed(Map(((Simple(b"ttl"), 3),)), b"v"), 5],
        ),
        (b"|0\r\n:1\r\n", Attributed(Map(), 1)),
        (b"%1\r\n%1\r\n:1\r\n:2\r\n~1\r\n%0\r\n", Map(((Map(((1, 2),)), Set((Map(),))),))),
    ],
)
def test_every_type(wire, value):
    got = one(wire)
    assert canon(got) == canon(value)
    assert canon(parse_bytewise(wire)[0]) == canon(value)
    assert RespParser().feed_sized(wire) == [(got, len(wire))] or math.isnan(got) is True


def test_nan():
    assert math.isnan(one(b",nan\r\n"))
    assert math.isnan(one(b",-nan\r\n"))


def test_pipeline_and_sizes():
    wire = b"+OK\r\n$3\r\nabc\r\n*1\r\n:1\r\n-E\r\n"
    assert RespParser().feed_sized(wire) == [
        (Simple(b"OK"), 5),
        (b"abc", 9),
        ([1], 8),
        (Error(b"E"), 4),
    ]


@pytest.mark.parametrize(
    "wire, what",
    [
        (b"$3\r\nfooX\r\n", "CRLF"),
        (b"$3\r\nfoo\n\r", "CRLF"),
        (b"+OK\n", "CRLF"),
        (b"$x\r\n", "bulk length"),
        (b"$\r\n", "bulk length"),
        (b"$03\r\nfoo\r\n", "bulk length"),
        (b"$+3\r\nfoo\r\n", "bulk length"),
        (b"$ 3\r\nfoo\r\n", "bulk length"),
        (b"$-2\r\n", "bulk length"),
        (b"*-2\r\n", "aggregate length"),
        (b"*1x\r\n", "aggregate length"),
        (b"%-1\r\n", "aggregate length"),
        (b":1.5\r\n", "integer"),
        (b":\r\n", "integer"),
        (b":-0\r\n", "integer"),
        (b":9223372036854775808\r\n", "integer"),
        (b"#x\r\n", "boolean"),
        (b"_x\r\n", "null"),
        (b",1_0\r\n", "double"),
        (b",infinity\r\n", "double"),
        (b",1e400\r\n", "double"),
        (b"(12a\r\n", "big number"),
        (b"=3\r\nabc\r\n", "verbatim"),
        (b"!-1\r\n", "null"),
        (b"+a\rb\r\n", "CR inside"),
        (b"@foo\r\n", "unknown type"),
        (b"$?\r\n", "bulk length"),
        (b"*?\r\n", "aggregate length"),
        (b";3\r\n", "streamed"),
    ],
)
def test_malformed(wire, what):
    err = error_of(wire)
    assert what in err.message
    assert isinstance(parse_bytewise(wire)[-1], ProtocolError)


def test_error_offset_and_stays_failed():
    p = RespParser()
    out = p.feed(b"+OK\r\n:1\r\n$x\r\n+NEVER\r\n")
    assert out[:2] == [Simple(b"OK"), 1]
    assert out[2] == ProtocolError(out[2].message, 9)
    assert p.failed
    assert p.feed(b"+OK\r\n") == []


def test_max_bulk():
    p = RespParser(max_bulk=10)
    assert p.feed(b"$10\r\n0123456789\r\n") == [b"0123456789"]
    err = p.feed(b"$11\r\n")[-1]
    assert isinstance(err, ProtocolError) and "exceeds" in err.message
    huge = error_of(b"*1\r\n$99999999999\r\n")
    assert "exceeds" in huge.message and huge.offset == 4


def test_max_bulk_on_the_command_fast_path():
    for use_hiredis in (True, False):
        p = RespParser(max_bulk=3, use_hiredis=use_hiredis)
        assert p.feed(encode_command("GET", "key") * 3) == [[b"GET", b"key"]] * 3
        out = p.feed(encode_command("GET", "key") + encode_command("GET", "keys"))
        assert out[0] == [b"GET", b"key"]
        assert isinstance(out[-1], ProtocolError) and "exceeds" in out[-1].message


def test_depth_cap():
    assert one(b"*1\r\n" * 5 + b":1\r\n", max_depth=5) == [[[[[1]]]]]
    err = error_of(b"*1\r\n" * 6 + b":1\r\n", max_depth=5)
    assert "deeper" in err.message
    # a deep declared nesting never recurses: the default cap stops it
    assert "deeper" in error_of(b"*1\r\n" * 100_000).message


def test_line_limit():
    assert "longer" in error_of(b"+" + b"a" * 100 + b"\r\n", max_inline=50).message
    p = RespParser(max_inline=50)
    out = p.feed(b"+")
    for _ in range(60):
        out += p.feed(b"a")
    assert isinstance(out[-1], ProtocolError) and "longer" in out[-1].message
    assert len(out) == 1


# redis_requests: how redis-server 7 frames a request (processMultibulkBuffer), checked against
# the real server in test_respserver.test_request_framing_errors_match_redis
REDIS_REQUEST_CASES = [
    (b"*999999999999\r\n", "bad aggregate length"),  # over INT_MAX
    (b"*2147483648\r\n", "bad aggregate length"),
    (b"*-9999999999999999999\r\n", "bad aggregate length"),  # below LLONG_MIN
    (b"*05\r\n", "bad aggregate length"),
    (b"*1\nPING\r\n", "bad aggregate length"),  # a bare LF
    (b"*" + b"1" * 70000, "array header longer"),
    (b"*1\r\n$" + b"1" * 70000, "line longer"),
    (b"*1\r\n" + b"X" * 70000, "line longer"),
    (b"x" * 70000, "inline line longer"),
    (b"*1\r\n$-1\r\n", "bad bulk length"),
    (b"*1\r\n$4\nPING\r\n", "bad bulk length"),
    (b"*1\r\n$536870913\r\n", "bulk length 536870913 exceeds"),
    (b"*1\r\n:1\r\n", "expected '$', got ':'"),
    (b"*1\r\n*2147483647\r\n", "expected '$', got '*'"),
]


@pytest.mark.parametrize("data,message", REDIS_REQUEST_CASES)
def test_redis_requests_header_errors(data, message):
    for cut in (None, 1, 3, len(data) // 2, len(data) - 1):  # the same error however it is split
        p = RespParser(inline=True, redis_requests=True)
        out = p.feed(data) if cut is None else p.feed(data[:cut]) + p.feed(data[cut:])
        assert len(out) == 1 and isinstance(out[0], ProtocolError), (cut, out)
        assert out[0].message.startswith(message), (cut, out)


def test_redis_requests_counts():
    def parse(data, **kw):
        return RespParser(inline=True, redis_requests=True, **kw).feed(data)

    # a negative count is an empty request, INT_MAX is awaited, a count over max_count fails
    assert parse(b"*-5\r\n*-1\r\n*0\r\nPING\r\n") == [None, None, [], Inline((b"PING",))]
    assert parse(b"*2147483647\r\n$1\r\na\r\n") == []
    assert parse(b"*1048577\r\n") == []
    err = parse(b"*11\r\n", max_count=10)[0]
    assert err.message == "aggregate length 11 exceeds the limit 10"
    assert parse(b"*10\r\n", max_count=10) == []
    # without redis_requests the general reader is unchanged
    assert "bad aggregate length" in error_of(b"*-5\r\n", inline=True).message
    assert one(b"*1\r\n$-1\r\n", inline=True) == [None]
    assert RespParser(inline=True).feed(b"*2147483648\r\n") == []


def test_incomplete_returns_nothing_then_completes():
    p = RespParser()
    assert p.feed(b"*2\r\n$3\r\nfo") == []
    assert p.feed(b"o\r\n") == []
    assert p.feed(b":7\r") == []
    assert p.feed(b"\n") == [[b"foo", 7]]


def test_big_bulk_in_small_chunks_is_linear():
    """A bulk fed 1 KiB at a time costs time proportional to its size: 4x the bytes take well
    under 8x the CPU (a parser that joined or rescanned the buffer per chunk would take ~16x)."""

    def cost(size: int) -> float:
        data = b"$%d\r\n" % size + b"y" * size + b"\r\n+after\r\n"
        best = float("inf")
        for _ in range(2):
            p = RespParser()
            out = []
            t0 = time.process_time()
            for i in range(0, len(data), 1024):
                out += p.feed(data[i : i + 1024])
            best = min(best, time.process_time() - t0)
            assert out == [b"y" * size, Simple(b"after")]
        return best

    small, large = cost(2 * 2**20), cost(8 * 2**20)
    assert large < 8 * max(small, 0.005), (small, large)


def test_many_tiny_frames_split_anywhere():
    data = b"+OK\r\n" * 20_000
    out = parse_chunks(data, range(0, len(data), 3))
    assert len(out) == 20_000 and out[-1] == Simple(b"OK")


# ---------------------------------------------------------------------------------------------
# inline commands


def test_inline_parser():
    p = RespParser(inline=True)
    data = b'PING\r\n\r\n\nset foo "bar baz"\nGET foo\r\n*1\r\n$4\r\nPING\r\n$3\r\n'
    assert p.feed(data) == [
        Inline((b"PING",)),
        Inline((b"set", b"foo", b"bar baz")),
        Inline((b"GET", b"foo")),
        [b"PING"],
        Inline((b"$3",)),
    ]
    assert parse_bytewise(data, inline=True) == parse_all(data, inline=True)
    # sizes are those of the frames; skipped empty lines belong to none
    assert RespParser(inline=True).feed_sized(b"PING\r\n\r\nGET a\n") == [
        (Inline((b"PING",)), 6),
        (Inline((b"GET", b"a")), 6),
    ]
    assert "unbalanced" in error_of(b'set a "b\r\n', inline=True).message
    assert "longer" in error_of(b"x" * 100, inline=True, max_inline=64).message
    # without inline=True a line is not RESP
    assert "unknown type" in error_of(b"PING\r\n").message


# ---------------------------------------------------------------------------------------------
# properties


streams = st.builds(
    mutate,
    st.lists(values, min_size=1, max_size=4).map(lambda vs: b"".join(encode(v, 3) for v in vs)),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=2),
)


@given(streams, st.lists(st.integers(0, 400), max_size=8), st.booleans())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_split_invariance(data, cuts, inline):
    cuts = [c for c in cuts if c < len(data)]
    whole = [canon(v) for v in parse_all(data, inline=inline)]
    assert [canon(v) for v in parse_bytewise(data, inline=inline)] == whole
    assert [canon(v) for v in parse_chunks(data, cuts, inline=inline)] == whole
    sized_whole = parse_chunks(data, [], sized=True, inline=inline)
    sized_cut = parse_chunks(data, cuts, sized=True, inline=inline)
    assert [(canon(v), n) for v, n in sized_cut] == [(canon(v), n) for v, n in sized_whole]
    if sized_whole and not isinstance(sized_whole[-1][0], ProtocolError):
        assert sum(n for _, n in sized_whole) <= len(data)


@given(st.binary(max_size=300), st.booleans(), st.lists(st.integers(0, 300), max_size=5))
@settings(max_examples=500)
def test_random_bytes_never_raise(data, inline, cuts):
    for kw in ({}, {"max_bulk": 5, "max_depth": 2, "max_inline": 8}):
        out = parse_chunks(data, [c for c in cuts if c < len(data)], inline=inline, **kw)
        assert all(not isinstance(v, ProtocolError) for v in out[:-1])
        for v in out:
            if isinstance(v, ProtocolError):
                assert 0 <= v.offset <= len(data) and "internal" not in v.message


_REQUEST_BITS = st.sampled_from([
    b"*", b"$", b"\r\n", b"\n", b"1", b"2", b"-", b"0", b"9" * 12, b"PING", b"x", b":", b'"',
    b" ", b"*2147483648\r\n", b"*-3\r\n", b"$-1\r\n",
])


@given(st.lists(st.one_of(_REQUEST_BITS, st.binary(max_size=6)), max_size=30),
       st.lists(st.integers(0, 200), max_size=5), st.sampled_from([None, 3]))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_redis_requests_split_invariance_and_never_raise(parts, cuts, max_count):
    data = b"".join(parts)
    kw = {"inline": True, "redis_requests": True, "max_inline": 16, "max_bulk": 8,
          "max_count": max_count}
    whole = [canon(v) for v in parse_all(data, **kw)]
    assert [canon(v) for v in parse_bytewise(data, **kw)] == whole
    assert [canon(v) for v in parse_chunks(data, [c for c in cuts if c < len(data)], **kw)] == whole
    for v in whole[:-1]:
        assert not isinstance(v, ProtocolError)
    if whole and isinstance(whole[-1], ProtocolError):
        assert "internal" not in whole[-1].message


# hiredis as the oracle for RESP2
resp2_scalars = st.one_of(
    st.binary(max_size=20),
    st.builds(Simple, no_crlf),
    st.builds(Error, st.text(alphabet="abcXYZ -_", max_size=10).map(str.encode)),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none(),
)
resp2_values = st.recursive(resp2_scalars, lambda ch: st.lists(ch, max_size=4), max_leaves=12)


def is_resp2(v):
    if isinstance(v, list):
        return all(map(is_resp2, v))
    return v is None or type(v) in (bytes, int, Simple) or (type(v) is Error and not v.bulk)


def as_hiredis(v):
    if isinstance(v, Simple):
        return v.value
    if isinstance(v, Error):
        return ("error", v.value.decode("utf-8", "replace"))
    if isinstance(v, list):
        return [as_hiredis(x) for x in v]
    return v


def hiredis_all(data: bytes) -> tuple[list, bool]:
    def norm(x):
        if isinstance(x, hiredis.ReplyError):
            return ("error", str(x))
        if isinstance(x, list):
            return [norm(y) for y in x]
        return x

    reader = hiredis.Reader()
    reader.feed(data)
    out = []
    try:
        while (v := reader.gets()) is not False:
            out.append(norm(v))
    except hiredis.ProtocolError:
        return out, True
    return out, False


@given(
    st.lists(resp2_values, min_size=1, max_size=5),
    # mutations that keep to RESP2 type bytes (hiredis reads RESP3 attributes differently)
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 255).filter(lambda b: b not in b"|")),
        max_size=1,
    ),
)
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_hiredis_oracle_resp2(vals, edits):
    data = mutate(b"".join(encode(v) for v in vals), edits)
    theirs, failed = hiredis_all(data)
    ours = parse_all(data)
    ours_failed = bool(ours) and isinstance(ours[-1], ProtocolError)
    if ours_failed:
        ours = ours[:-1]
    assume(not failed or theirs)  # compare what both parsed before hiredis gave up
    n = min(len(theirs), len(ours)) if (failed or ours_failed) else len(theirs)
    # a mutation may create a RESP3 type: compare the RESP2 values before it
    n = next((i for i, v in enumerate(ours[:n]) if not is_resp2(v)), n)
    assert [as_hiredis(v) for v in ours[:n]] == theirs[:n]
    if not edits:
        assert not failed and not ours_failed and len(ours) == len(theirs)


def test_spans_and_frame_start():
    for use_hiredis in (True, False):
        p = RespParser(inline=True, use_hiredis=use_hiredis)
        assert p.feed_spans(b"PING\r\n\r\n*1\r\n$1\r\na\r\n*2\r\n$1") == [
            (Inline((b"PING",)), 0, 6),
            ([b"a"], 8, 19),
        ]
        assert p.frame_start == 19
        assert p.feed_spans(b"\r\nx\r\n$1\r\n") == []
        assert p.frame_start == 19
        assert p.feed_spans(b"y\r\n*1\r\n$1\r\nz\r\nGE") == [
            ([b"x", b"y"], 19, 37),
            ([b"z"], 37, 48),
        ]
        assert p.frame_start == 48 and p.offset == 50
        assert p.feed_spans(b"T a\r\n") == [(Inline((b"GET", b"a")), 48, 55)]
        assert p.frame_start == p.offset == 55
        assert p.feed_spans(b"*1\r\n$x\r\n") == [
            (ProtocolError("bad bulk length b'x'", 59), 59, 59)
        ]


@pytest.mark.parametrize("data", [
    b"+OK\r\n" * 16,
    b"+OK\r\n" * 15 + b"+OK\r",
    b"+OK\r\n" * 3 + b"+OK!\r\n",
    b":1\r\n" * 40,
    b":1\r\n" * 3 + b":12\r\n",
    b"+QUEUED\r\n" * 7 + b"*1\r\n$1\r\na\r\n",
    b"+a\rb\r\n" * 4,
])
def test_runs_of_one_reply_equal_frame_by_frame(data):
    assert RespParser().feed(data) == parse_bytewise(data)


# -- the one-reply-per-read fast path (feed_reply) ----------------------------------------------

replies = st.one_of(
    st.binary(max_size=20).map(encode),
    st.builds(Simple, no_crlf).map(encode),
    st.integers(min_value=-(2**70), max_value=2**70).map(encode),
    st.sampled_from([b"$-1\r\n", b"_\r\n", b"-ERR x\r\n", b"+OK\r\n", b":007\r\n", b"$03\r\nabc\r\n",
                     b"$3\r\nabcXY", b"$3\r\nab", b"+a\rb\r\n", b"+OK\r\n+OK\r\n", b":+1\r\n",
                     b"$1\r\n\r\r\n", b"#t\r\n", b",1.5\r\n", b"=5\r\ntxt:a\r\n"]),
)


@given(replies)
@settings(max_examples=500)
def test_feed_reply_equals_pure_parser(data):
    fast, pure = RespParser(), RespParser(use_hiredis=False)
    want = pure.feed_spans(data)
    got = fast.feed_reply(data)
    if got is NOT_ONE:
        assert fast.offset == 0
        assert fast.feed_spans(data) == want
    else:
        assert [(canon(v), s, e) for v, s, e in want] == [(canon(got), 0, len(data))]
        assert fast.offset == len(data)


_RUN_PIECES = st.sampled_from([
    b"$3\r\nxxx\r\n", b"$0\r\n\r\n", b"+OK\r\n", b":1\r\n", b"$-1\r\n", b"*1\r\n$1\r\na\r\n",
    b"-ERR x\r\n", b"$3\r\nab", b"\r\n", b"+QUEUED\r\n", b"=5\r\ntxt:a\r\n", b"~1\r\n$1\r\na\r\n",
])


@given(st.one_of(
    # runs of one reply over and over (pipelined GETs and SETs), with something else at times
    st.tuples(_RUN_PIECES, st.integers(1, 40), st.lists(_RUN_PIECES, max_size=3)).map(
        lambda t: t[0] * t[1] + b"".join(t[2])),
    st.lists(_RUN_PIECES, min_size=1, max_size=30).map(b"".join),
    streams,
), st.lists(st.integers(0, 400), max_size=6), st.sampled_from([None, 16]))
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_last_types_say_the_types_of_the_values_a_feed_gave(data, cuts, max_value):
    """``last_types``, when a feed sets it (a run hiredis read whole, one line over and over),
    is exactly the set of the types of what that feed gave, at any split."""
    parser = RespParser(max_value=max_value)
    prev = 0
    for cut in sorted({c for c in cuts if c < len(data)}) + [len(data)]:
        values = parser.feed(data[prev:cut])
        prev = cut
        if parser.last_types is not None:
            assert parser.last_types == frozenset(map(type, values))
    runs = RespParser()
    assert runs.feed(b"$3\r\nxxx\r\n" * 16) == [b"xxx"] * 16
    assert runs.last_types == frozenset({bytes})
    assert runs.feed(b"+OK\r\n" * 16) == [Simple(b"OK")] * 16
    assert runs.last_types == frozenset({Simple})
    assert runs.feed(b"+OK\r\n:1\r\n") and runs.last_types is None
