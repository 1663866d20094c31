"""Inline commands split as redis-server splits them, with the real server as the oracle."""

from __future__ import annotations

import pytest

from playground.codec.encoder import encode_command
from playground.codec.inline import split_inline
from playground.codec.values import Error
from tests.support.codec import error_of, parse_all
from tests.support.net import resp_exchange


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
