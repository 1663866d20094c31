"""Helpers for the codec tests: a comparable form of RESP values, parsing fed whole, byte by byte
or at given cuts, and hypothesis strategies for RESP values."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from playground.codec.parser import RespParser
from playground.codec.values import (
    Attributed,
    BigNumber,
    Error,
    Map,
    ProtocolError,
    Push,
    Set,
    Simple,
    Verbatim,
)


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


def aggregates(children):
    pairs = st.lists(st.tuples(children, children), max_size=3).map(tuple)
    return st.one_of(
        st.lists(children, max_size=4),
        st.builds(Map, pairs),
        st.builds(Set, st.lists(children, max_size=4).map(tuple)),
        st.builds(Push, st.lists(children, max_size=4).map(tuple)),
        st.builds(Attributed, st.builds(Map, pairs), children),
    )


values = st.recursive(scalars, aggregates, max_leaves=12)


def mutate(data: bytes, edits) -> bytes:
    """``data`` with the bytes at ``(position, byte)`` edits replaced (positions wrap around)."""
    b = bytearray(data)
    for pos, byte in edits:
        if b:
            b[pos % len(b)] = byte
    return bytes(b)
