"""RESP parser and encoder: every type, edge cases, bounds, split invariance, hiredis and redis-server
as oracles."""

from __future__ import annotations

import math
import time

import hiredis
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from playground.codec import resp as resp_module
from playground.codec.resp import (
    Attributed,
    BigNumber,
    Error,
    Inline,
    Map,
    ProtocolError,
    Push,
    RespParser,
    Set,
    Simple,
    Verbatim,
    encode,
    encode_command,
    split_inline,
)
from tests.support.net import resp_exchange

# ---------------------------------------------------------------------------------------------
# helpers


def canon(v):
    """A comparable form that tells bool from int and accepts nan == nan."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("float", "nan" if math.isnan(v) else v)
    if isinstance(v, list):
        return ("list", tuple(canon(x) for x in v))
    if isinstance(v, Map):
        return ("map", tuple((canon(k), canon(x)) for k, x in v.items))
    if isinstance(v, Set):
        return ("set", tuple(canon(x) for x in v.items))
    if isinstance(v, Push):
        return ("push", tuple(canon(x) for x in v.items))
    if isinstance(v, Attributed):
        return ("attr", canon(v.attributes), canon(v.value))
    return (type(v).__name__, v)


def parse_all(data: bytes, **kw) -> list:
    return RespParser(**kw).feed(data)


def parse_bytewise(data: bytes, **kw) -> list:
    p = RespParser(**kw)
    out = []
    for i in range(len(data)):
        out += p.feed(data[i : i + 1])
    return out


def parse_chunks(data: bytes, cuts, sized=False, **kw) -> list:
    p = RespParser(**kw)
    feed = p.feed_sized if sized else p.feed
    out = []
    prev = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        out += feed(data[prev:cut])
        prev = cut
    return out


def one(data: bytes, **kw):
    values = parse_all(data, **kw)
    assert len(values) == 1, values
    return values[0]


def error_of(data: bytes, **kw) -> ProtocolError:
    values = parse_all(data, **kw)
    assert values and isinstance(values[-1], ProtocolError), values
    return values[-1]


# ---------------------------------------------------------------------------------------------
# every type


@pytest.mark.pure
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


@pytest.mark.pure
def test_nan():
    assert math.isnan(one(b",nan\r\n"))
    assert math.isnan(one(b",-nan\r\n"))


@pytest.mark.pure
def test_pipeline_and_sizes():
    wire = b"+OK\r\n$3\r\nabc\r\n*1\r\n:1\r\n-E\r\n"
    assert RespParser().feed_sized(wire) == [
        (Simple(b"OK"), 5),
        (b"abc", 9),
        ([1], 8),
        (Error(b"E"), 4),
    ]


@pytest.mark.pure
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


@pytest.mark.pure
def test_error_offset_and_stays_failed():
    p = RespParser()
    out = p.feed(b"+OK\r\n:1\r\n$x\r\n+NEVER\r\n")
    assert out[:2] == [Simple(b"OK"), 1]
    assert out[2] == ProtocolError(out[2].message, 9)
    assert p.failed
    assert p.feed(b"+OK\r\n") == []


@pytest.mark.pure
def test_max_bulk():
    p = RespParser(max_bulk=10)
    assert p.feed(b"$10\r\n0123456789\r\n") == [b"0123456789"]
    err = p.feed(b"$11\r\n")[-1]
    assert isinstance(err, ProtocolError) and "exceeds" in err.message
    huge = error_of(b"*1\r\n$99999999999\r\n")
    assert "exceeds" in huge.message and huge.offset == 4


@pytest.mark.pure
def test_max_bulk_on_the_command_fast_path():
    for use_hiredis in (True, False):
        p = RespParser(max_bulk=3, use_hiredis=use_hiredis)
        assert p.feed(encode_command("GET", "key") * 3) == [[b"GET", b"key"]] * 3
        out = p.feed(encode_command("GET", "key") + encode_command("GET", "keys"))
        assert out[0] == [b"GET", b"key"]
        assert isinstance(out[-1], ProtocolError) and "exceeds" in out[-1].message


@pytest.mark.pure
def test_depth_cap():
    assert one(b"*1\r\n" * 5 + b":1\r\n", max_depth=5) == [[[[[1]]]]]
    err = error_of(b"*1\r\n" * 6 + b":1\r\n", max_depth=5)
    assert "deeper" in err.message
    # a deep declared nesting never recurses: the default cap stops it
    assert "deeper" in error_of(b"*1\r\n" * 100_000).message


@pytest.mark.pure
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


@pytest.mark.pure
@pytest.mark.parametrize("data,message", REDIS_REQUEST_CASES)
def test_redis_requests_header_errors(data, message):
    for cut in (None, 1, 3, len(data) // 2, len(data) - 1):  # the same error however it is split
        p = RespParser(inline=True, redis_requests=True)
        out = p.feed(data) if cut is None else p.feed(data[:cut]) + p.feed(data[cut:])
        assert len(out) == 1 and isinstance(out[0], ProtocolError), (cut, out)
        assert out[0].message.startswith(message), (cut, out)


@pytest.mark.pure
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


@pytest.mark.pure
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


@pytest.mark.pure
def test_incomplete_returns_nothing_then_completes():
    p = RespParser()
    assert p.feed(b"*2\r\n$3\r\nfo") == []
    assert p.feed(b"o\r\n") == []
    assert p.feed(b":7\r") == []
    assert p.feed(b"\n") == [[b"foo", 7]]


@pytest.mark.pure
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


@pytest.mark.pure
def test_many_tiny_frames_split_anywhere():
    data = b"+OK\r\n" * 20_000
    out = parse_chunks(data, range(0, len(data), 3))
    assert len(out) == 20_000 and out[-1] == Simple(b"OK")


# ---------------------------------------------------------------------------------------------
# inline commands


@pytest.mark.pure
@pytest.mark.parametrize(
    "line, args",
    [
        (b"PING", (b"PING",)),
        (b"  set   foo  bar  ", (b"set", b"foo", b"bar")),
        (b'set foo "bar baz"', (b"set", b"foo", b"bar baz")),
        (b"set foo 'bar baz'", (b"set", b"foo", b"bar baz")),
        (b'"\\x41\\x4a" "\\n\\r\\t\\b\\a\\q" "\\"" "\\\\"', (b"AJ", b"\n\r\t\b\aq", b'"', b"\\")),
        (b"'it\\'s' '\\n'", (b"it's", b"\\n")),
        (b'foo"bar baz"', (b"foobar baz",)),
        (b'"x\\x4"', (b"xx4",)),
        (b"a\x0bb", (b"a\x0bb",)),
        (b"\x0b a", (b"a",)),
        (b"a\x00b c", (b"a",)),
        (b"", ()),
        (b'"abc', None),
        (b'"abc"def', None),
        (b"'abc", None),
        (b"'abc'def", None),
    ],
)
def test_split_inline(line, args):
    assert split_inline(line) == args


@pytest.mark.pure
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


INLINE_CASES = [
    b"a \"b c\" 'd e'",
    b'"\\x41\\x4a" "tab\\there" "q\\"uote" "\\\\"',
    b"'it\\'s' 'raw\\n'",
    b'foo"bar baz"   x',
    b"   spaced    out   ",
    b"a\x0bb",
    b'"\\xzz" "\\x4"',
]


@pytest.mark.real
@pytest.mark.parametrize("args_line", INLINE_CASES)
def test_inline_splitting_matches_redis(redis_server, args_line):
    key = b"tcpplay:inline:%d" % INLINE_CASES.index(args_line)
    line = b"RPUSH " + key + b" " + args_line
    ours = parse_all(line + b"\r\n", inline=True)
    assert len(ours) == 1
    raw = b"DEL " + key + b"\r\n" + line + b"\r\n" + encode_command("LRANGE", key, 0, -1)
    replies = resp_exchange(redis_server.port, raw, 3)
    assert len(replies) == 3, replies
    assert replies[2] == list(ours[0].args[2:])


@pytest.mark.real
def test_inline_unbalanced_quotes_like_redis(redis_server):
    replies = resp_exchange(redis_server.port, b'SET k "abc\r\n', 1)
    assert isinstance(replies[0], Error) and b"unbalanced" in replies[0].value
    assert "unbalanced" in error_of(b'SET k "abc\r\n', inline=True).message


# ---------------------------------------------------------------------------------------------
# encoding


@pytest.mark.pure
def test_encode_resp3_and_resp2():
    cases = [
        (b"x", b"$1\r\nx\r\n", b"$1\r\nx\r\n"),
        ("é", b"$2\r\n\xc3\xa9\r\n", b"$2\r\n\xc3\xa9\r\n"),
        (Simple(b"OK"), b"+OK\r\n", b"+OK\r\n"),
        (Error(b"ERR x"), b"-ERR x\r\n", b"-ERR x\r\n"),
        (Error(b"ERR\r\nx", bulk=True), b"!6\r\nERR\r\nx\r\n", b"-ERR x\r\n"),
        (None, b"_\r\n", b"$-1\r\n"),
        (True, b"#t\r\n", b":1\r\n"),
        (False, b"#f\r\n", b":0\r\n"),
        (-7, b":-7\r\n", b":-7\r\n"),
        (1.5, b",1.5\r\n", b"$3\r\n1.5\r\n"),
        (3.0, b",3\r\n", b"$1\r\n3\r\n"),
        (math.inf, b",inf\r\n", b"$3\r\ninf\r\n"),
        (-math.inf, b",-inf\r\n", b"$4\r\n-inf\r\n"),
        (math.nan, b",nan\r\n", b"$3\r\nnan\r\n"),
        (BigNumber(10**20), b"(100000000000000000000\r\n", b"$21\r\n100000000000000000000\r\n"),
        (Verbatim(b"txt", b"hi"), b"=6\r\ntxt:hi\r\n", b"$2\r\nhi\r\n"),
        ([1, [b"a"]], b"*2\r\n:1\r\n*1\r\n$1\r\na\r\n", b"*2\r\n:1\r\n*1\r\n$1\r\na\r\n"),
        (Map(((b"k", 1),)), b"%1\r\n$1\r\nk\r\n:1\r\n", b"*2\r\n$1\r\nk\r\n:1\r\n"),
        ({b"k": 1}, b"%1\r\n$1\r\nk\r\n:1\r\n", b"*2\r\n$1\r\nk\r\n:1\r\n"),
        (Set((1,)), b"~1\r\n:1\r\n", b"*1\r\n:1\r\n"),
        (Push((b"m",)), b">1\r\n$1\r\nm\r\n", b"*1\r\n$1\r\nm\r\n"),
        (Attributed(Map(((b"a", 1),)), 2), b"|1\r\n$1\r\na\r\n:1\r\n:2\r\n", b":2\r\n"),
        (
            Inline((b"GET", b"k")),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        ),
    ]
    for value, resp3, resp2 in cases:
        assert encode(value, protocol=3) == resp3, value
        assert encode(value) == resp2, value


@pytest.mark.pure
def test_encode_rejects():
    with pytest.raises(ValueError):
        encode(Simple(b"a\r\nb"))
    with pytest.raises(TypeError):
        encode(object())
    with pytest.raises(ValueError):
        encode(Verbatim(b"text", b"x"), protocol=3)


@pytest.mark.pure
def test_encode_command():
    assert encode_command("SET", b"k", 12, 1.5) == (
        b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$3\r\n1.5\r\n"
    )
    assert encode_command() == b"*0\r\n"
    assert one(encode_command("a", b"b\r\nc")) == [b"a", b"b\r\nc"]


# ---------------------------------------------------------------------------------------------
# properties

no_crlf = st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b)
scalars = st.one_of(
    st.binary(max_size=20),
    st.builds(Simple, no_crlf),
    st.builds(Error, no_crlf),
    st.builds(lambda v: Error(v, bulk=True), st.binary(max_size=12)),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none(),
    st.booleans(),
    st.floats(),
    st.builds(BigNumber, st.integers()),
    st.builds(Verbatim, st.sampled_from([b"txt", b"mkd"]), st.binary(max_size=12)),
)


def _aggregates(children):
    pairs = st.lists(st.tuples(children, children), max_size=3).map(tuple)
    return st.one_of(
        st.lists(children, max_size=4),
        st.builds(Map, pairs),
        st.builds(Set, st.lists(children, max_size=4).map(tuple)),
        st.builds(Push, st.lists(children, max_size=4).map(tuple)),
        st.builds(Attributed, st.builds(Map, pairs), children),
    )


values = st.recursive(scalars, _aggregates, max_leaves=12)


def downgrade(v):
    """What a RESP2 peer sees of a value encoded with protocol=2."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        return encode(v, 3)[1:-2]
    if isinstance(v, BigNumber):
        return b"%d" % v.value
    if isinstance(v, Verbatim):
        return v.text
    if isinstance(v, Error):
        return Error(v.value.replace(b"\r\n", b" ").replace(b"\r", b" ").replace(b"\n", b" "))
    if isinstance(v, list):
        return [downgrade(x) for x in v]
    if isinstance(v, Map):
        return [downgrade(x) for kv in v.items for x in kv]
    if isinstance(v, Set | Push):
        return [downgrade(x) for x in v.items]
    if isinstance(v, Attributed):
        return downgrade(v.value)
    return v


@pytest.mark.pure
@given(st.lists(values, min_size=1, max_size=5))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_roundtrip_resp3(vals):
    wire = b"".join(encode(v, protocol=3) for v in vals)
    assert [canon(v) for v in parse_all(wire)] == [canon(v) for v in vals]
    sized = RespParser().feed_sized(wire)
    assert [n for _, n in sized] == [len(encode(v, protocol=3)) for v in vals]


@pytest.mark.pure
@given(st.lists(values, min_size=1, max_size=5))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_roundtrip_resp2(vals):
    wire = b"".join(encode(v) for v in vals)
    assert [canon(v) for v in parse_all(wire)] == [canon(downgrade(v)) for v in vals]


def _mutate(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for pos, byte in edits:
        if b:
            b[pos % len(b)] = byte
    return bytes(b)


streams = st.builds(
    _mutate,
    st.lists(values, min_size=1, max_size=4).map(lambda vs: b"".join(encode(v, 3) for v in vs)),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=2),
)


@pytest.mark.pure
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


@pytest.mark.pure
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


@pytest.mark.pure
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


@pytest.mark.pure
@given(commands, risky, commands, st.lists(st.integers(0, 2000), max_size=4))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_hiredis_fast_path_equals_pure_parser(a, middle, b, cuts):
    data = a + middle + b
    cuts = [c for c in cuts if c < len(data)]
    saved = resp_module._HIREDIS_MIN
    resp_module._HIREDIS_MIN = 0  # use hiredis on small inputs too
    try:
        for sized in (False, True):
            for inline in (False, True):
                fast = parse_chunks(data, cuts, sized=sized, inline=inline)
                pure = parse_chunks(data, cuts, sized=sized, inline=inline, use_hiredis=False)
                assert fast == pure
    finally:
        resp_module._HIREDIS_MIN = saved


@pytest.fixture
def readers(monkeypatch) -> list:
    """One entry per hiredis.Reader the parser creates (it still gets a real one)."""
    made: list = []

    class CountingHiredis:
        @staticmethod
        def Reader():
            made.append(1)
            return hiredis.Reader()

    monkeypatch.setattr(resp_module, "_hiredis", CountingHiredis)
    return made


@pytest.mark.pure
def test_hiredis_fast_path_is_used_and_exact(readers):
    frame = encode_command("SET", "key:000000000001", "xxx")
    data = frame * 16
    p = RespParser()
    out = p.feed_spans(data)
    assert out == [
        ([b"SET", b"key:000000000001", b"xxx"], i * len(frame), (i + 1) * len(frame))
        for i in range(16)
    ]
    assert p.offset == len(data) and readers == [1]
    # a stream cut mid-frame: the pure parser finishes the frame, hiredis takes the rest
    assert len(p.feed(data[:100])) == 2
    assert len(p.feed(data[100:])) == 14 and len(readers) == 2


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


@pytest.mark.pure
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
    data = _mutate(b"".join(encode(v) for v in vals), edits)
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


@pytest.mark.pure
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


@pytest.mark.pure
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


@pytest.mark.pure
@given(st.one_of(commands, risky), st.booleans())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_whole_feed_hiredis_path_equals_pure_parser(frames, inline):
    # each feed is one frame under _HIREDIS_MIN bytes: the whole-feed hiredis check is tried
    ours, pure = RespParser(inline=inline), RespParser(inline=inline, use_hiredis=False)
    for frame in (frames, b"*1\r\n$3\r\nabc\r\n", frames):
        assert ours.feed_spans(frame) == pure.feed_spans(frame)
        assert ours.offset == pure.offset


@pytest.mark.pure
def test_whole_feed_hiredis_path_is_used(readers):
    p = RespParser(max_bulk=4)
    frame = encode_command("SET", "k", "xx")
    for i in range(3):
        assert p.feed_spans(frame) == [([b"SET", b"k", b"xx"], i * len(frame), (i + 1) * len(frame))]
    assert readers == [1]  # one reader, reused while every feed is a whole command
    # non-canonical, over a bound, or partial: the pure parser decides
    assert p.feed(b"*1\r\n+OK\r\n") == [[Simple(b"OK")]]
    assert p.feed(b"*1\r\n$5\r\nabcde\r\n")[0].message.startswith("bulk length 5 exceeds")


@pytest.mark.pure
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


# -- the one-frame-per-read fast paths and bulk runs -----------------------------------------

replies = st.one_of(
    st.binary(max_size=20).map(encode),
    st.builds(Simple, no_crlf).map(encode),
    st.integers(min_value=-(2**70), max_value=2**70).map(encode),
    st.sampled_from([b"$-1\r\n", b"_\r\n", b"-ERR x\r\n", b"+OK\r\n", b":007\r\n", b"$03\r\nabc\r\n",
                     b"$3\r\nabcXY", b"$3\r\nab", b"+a\rb\r\n", b"+OK\r\n+OK\r\n", b":+1\r\n",
                     b"$1\r\n\r\r\n", b"#t\r\n", b",1.5\r\n", b"=5\r\ntxt:a\r\n"]),
)


@pytest.mark.pure
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


@pytest.mark.pure
@given(replies)
@settings(max_examples=500)
def test_feed_reply_equals_pure_parser(data):
    fast, pure = RespParser(), RespParser(use_hiredis=False)
    want = pure.feed_spans(data)
    got = fast.feed_reply(data)
    if got is resp_module.NOT_ONE:
        assert fast.offset == 0
        assert fast.feed_spans(data) == want
    else:
        assert [(canon(v), s, e) for v, s, e in want] == [(canon(got), 0, len(data))]
        assert fast.offset == len(data)


@pytest.mark.pure
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


@pytest.mark.pure
def test_bulk_reply_run_uses_hiredis(readers):
    data = b"$3\r\nxxx\r\n" * 16
    assert RespParser().feed(data) == [b"xxx"] * 16 and readers == [1]


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


@pytest.mark.pure
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
    monkeypatch.setattr(resp_module, "_HIREDIS_MIN", 0)
    monkeypatch.setattr(resp_module, "_HIREDIS_MIN_BULKS", 0)
    fast, pure = RespParser(), RespParser(use_hiredis=False)
    for data in feeds:
        assert [canon(v) for v in fast.feed(data)] == [canon(v) for v in pure.feed(data)]
    assert fast.offset == pure.offset
