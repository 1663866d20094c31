"""The RESP encoder: every type in RESP3 and downgraded to RESP2, what it refuses, commands, and
round trips through the parser."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground.codec.encoder import encode, encode_command
from playground.codec.parser import RespParser
from playground.codec.values import (
    Attributed,
    BigNumber,
    Error,
    Inline,
    Map,
    Push,
    Set,
    Simple,
    Verbatim,
)
from tests.support.codec import canon, one, parse_all, values

pytestmark = pytest.mark.pure


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


def test_encode_rejects():
    with pytest.raises(ValueError):
        encode(Simple(b"a\r\nb"))
    with pytest.raises(TypeError):
        encode(object())
    with pytest.raises(ValueError):
        encode(Verbatim(b"text", b"x"), protocol=3)


def test_encode_command():
    assert encode_command("SET", b"k", 12, 1.5) == (
        b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$3\r\n1.5\r\n"
    )
    assert encode_command() == b"*0\r\n"
    assert one(encode_command("a", b"b\r\nc")) == [b"a", b"b\r\nc"]


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


@given(st.lists(values, min_size=1, max_size=5))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_roundtrip_resp3(vals):
    wire = b"".join(encode(v, protocol=3) for v in vals)
    assert [canon(v) for v in parse_all(wire)] == [canon(v) for v in vals]
    sized = RespParser().feed_sized(wire)
    assert [n for _, n in sized] == [len(encode(v, protocol=3)) for v in vals]


@given(st.lists(values, min_size=1, max_size=5))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_roundtrip_resp2(vals):
    wire = b"".join(encode(v) for v in vals)
    assert [canon(v) for v in parse_all(wire)] == [canon(downgrade(v)) for v in vals]
