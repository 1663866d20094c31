"""The RESP conversation decoder: pairing, pub/sub, transactions, CLIENT REPLY, MONITOR, secrets,
split invariance, garbage, and a real conversation recorded from redis-server."""

from __future__ import annotations

import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground.codec.encoder import encode, encode_command
from playground.codec.parser import RespParser
from playground.codec.values import Error, Map, Push, Simple
from playground.decode.respdecoder import (
    C2S,
    S2C,
    Answered,
    Exchange,
    RespConversation,
    SecretRange,
    ServerPush,
    Unanswered,
    Undecodable,
    redact_command,
    secret_parts,
    secret_ranges,
)
from tests.support.resp_events import general_feed, with_spans


def cmd(*args) -> bytes:
    return encode_command(*args)


def run(steps, conv=None) -> list:
    conv = conv or RespConversation()
    out = []
    for step in steps:
        if step[0] == "eof":
            out += conv.eof(step[1], step[2])
        else:
            direction, data, now = step
            out += conv.feed(direction, data, now)
    return out


def pairs(events) -> list:
    return [(e.command, e.reply) for e in events if type(e) is Exchange]


def of(events, kind) -> list:
    return [e for e in events if type(e) is kind]


OK = b"+OK\r\n"


@pytest.mark.pure
def test_pipelining_order_and_latency():
    events = run(
        [
            (C2S, cmd("SET", "a", "1") + cmd("GET", "a") + cmd("GET", "b"), 1.0),
            (S2C, OK + b"$1\r\n1\r\n", 1.5),
            (S2C, b"$-1\r\n", 2.25),
        ]
    )
    assert pairs(events) == [
        ((b"SET", b"a", b"1"), Simple(b"OK")),
        ((b"GET", b"a"), b"1"),
        ((b"GET", b"b"), None),
    ]
    assert [e.latency for e in events] == [0.5, 0.5, 1.25]
    assert [(e.sent_at, e.replied_at) for e in events] == [(1.0, 1.5), (1.0, 1.5), (1.0, 2.25)]
    assert events[1].offset == len(cmd("SET", "a", "1")) and events[1].size == len(cmd("GET", "a"))


@pytest.mark.pure
def test_latency_counts_from_the_feed_that_completes_frames():
    c = cmd("GET", "key")
    events = run(
        [(C2S, c[:5], 1.0), (C2S, c[5:], 2.0), (S2C, b"$3\r\nv", 3.0), (S2C, b"al\r\n", 4.5)]
    )
    assert [(e.sent_at, e.replied_at, e.latency) for e in events] == [(2.0, 4.5, 2.5)]


@pytest.mark.pure
def test_inline_commands_pair():
    events = run([(C2S, b'SET k "a b"\r\n\r\nGET k\n', 1.0), (S2C, OK + b"$3\r\na b\r\n", 2.0)])
    assert pairs(events) == [((b"SET", b"k", b"a b"), Simple(b"OK")), ((b"GET", b"k"), b"a b")]


@pytest.mark.pure
def test_empty_arrays_are_ignored_like_redis():
    events = run([(C2S, b"*0\r\n*-1\r\n" + cmd("PING"), 1.0), (S2C, b"+PONG\r\n", 2.0)])
    assert pairs(events) == [((b"PING",), Simple(b"PONG"))]


@pytest.mark.pure
def test_reply_without_command_is_a_push():
    events = run([(S2C, b"-ERR max number of clients reached\r\n", 1.0)])
    assert [(type(e), e.kind) for e in events] == [(ServerPush, "unsolicited")]


@pytest.mark.pure
def test_pubsub_resp2():
    conv = RespConversation()
    events = run(
        [
            (C2S, cmd("SUBSCRIBE", "a", "b") + cmd("PSUBSCRIBE", "n*"), 1.0),
            (S2C, encode([b"subscribe", b"a", 1]), 1.1),
            (S2C, encode([b"subscribe", b"b", 2]) + encode([b"message", b"a", b"hi"]), 1.2),
            (S2C, encode([b"psubscribe", b"n*", 3]), 1.3),
            (S2C, encode([b"pmessage", b"n*", b"news", b"x"]), 1.4),
            (C2S, cmd("PING"), 2.0),
            (S2C, encode([b"message", b"b", b"yo"]) + encode([b"pong", b""]), 2.1),
            (C2S, cmd("UNSUBSCRIBE") + cmd("PUNSUBSCRIBE"), 3.0),
            (S2C, encode([b"unsubscribe", b"a", 2]) + encode([b"message", b"b", b"late"]), 3.1),
            (S2C, encode([b"unsubscribe", b"b", 1]) + encode([b"punsubscribe", b"n*", 0]), 3.2),
            # no longer subscribed: an array starting with "message" is an ordinary reply
            (C2S, cmd("LRANGE", "l", 0, -1), 4.0),
            (S2C, encode([b"message", b"x", b"y"]), 4.1),
        ],
        conv,
    )
    assert pairs(events) == [
        ((b"SUBSCRIBE", b"a", b"b"), [[b"subscribe", b"a", 1], [b"subscribe", b"b", 2]]),
        ((b"PSUBSCRIBE", b"n*"), [b"psubscribe", b"n*", 3]),
        ((b"PING",), [b"pong", b""]),
        ((b"UNSUBSCRIBE",), [[b"unsubscribe", b"a", 2], [b"unsubscribe", b"b", 1]]),
        ((b"PUNSUBSCRIBE",), [b"punsubscribe", b"n*", 0]),
        ((b"LRANGE", b"l", b"0", b"-1"), [b"message", b"x", b"y"]),
    ]
    pushes = of(events, ServerPush)
    assert [(p.kind, p.value[-1]) for p in pushes] == [
        ("message", b"hi"),
        ("pmessage", b"x"),
        ("message", b"yo"),
        ("message", b"late"),
    ]
    assert [type(e) for e in events][:3] == [Exchange, ServerPush, Exchange]
    assert conv.pending == 0


@pytest.mark.pure
def test_unsubscribe_all_when_not_subscribed():
    events = run(
        [
            (C2S, cmd("UNSUBSCRIBE") + cmd("PING"), 1.0),
            (S2C, encode([b"unsubscribe", None, 0]) + b"+PONG\r\n", 2.0),
        ]
    )
    assert pairs(events) == [
        ((b"UNSUBSCRIBE",), [b"unsubscribe", None, 0]),
        ((b"PING",), Simple(b"PONG")),
    ]


@pytest.mark.pure
def test_long_channels_cut_alike_are_counted_apart():
    """Channel names longer than what the decoder keeps (their first --max-value bytes) may
    compare equal though they differ further on: UNSUBSCRIBE without arguments still expects
    one confirmation per channel (the server's counts tell a new channel from a repeat), so
    the commands after it keep their replies."""
    a, b = b"c" * 70_000 + b"A", b"c" * 70_000 + b"B"
    events = run(
        [
            (C2S, cmd("SUBSCRIBE", a, b, a), 1.0),
            (S2C, encode([b"subscribe", a, 1]) + encode([b"subscribe", b, 2]), 1.1),
            (S2C, encode([b"subscribe", a, 2]), 1.2),  # a again: no new subscription
            (C2S, cmd("UNSUBSCRIBE") + cmd("PING") + cmd("PING", "x"), 2.0),
            (S2C, encode([b"unsubscribe", a, 1]) + encode([b"unsubscribe", b, 0]), 2.1),
            (S2C, b"+PONG\r\n$1\r\nx\r\n", 2.2),
        ],
        RespConversation(max_value=200),
    )
    got = pairs(events)
    assert [c[0] for c, _ in got] == [b"SUBSCRIBE", b"UNSUBSCRIBE", b"PING", b"PING"]
    replies = [r for _, r in got]
    assert [x[-1] for x in replies[0]] == [1, 2, 2]  # the server's counts
    assert type(replies[1][0]) is list and [x[-1] for x in replies[1]] == [1, 0]
    assert replies[2:] == [Simple(b"PONG"), b"x"]
    assert of(events, ServerPush) == []


@pytest.mark.pure
def test_subscribe_arity_error_does_not_desync():
    events = run(
        [
            (C2S, cmd("SUBSCRIBE") + cmd("PING"), 1.0),
            (S2C, b"-ERR wrong number of arguments for 'subscribe' command\r\n+PONG\r\n", 2),
        ]
    )
    assert [c for c, _ in pairs(events)] == [(b"SUBSCRIBE",), (b"PING",)]


HELLO3 = encode(Map(((b"server", b"redis"), (b"proto", 3))), 3)


@pytest.mark.pure
def test_hello3_and_pubsub_resp3():
    conv = RespConversation()
    events = run(
        [
            (C2S, cmd("HELLO", "3"), 1.0),
            (S2C, HELLO3, 1.1),
            (C2S, cmd("SUBSCRIBE", "a") + cmd("GET", "k"), 2.0),
            (S2C, encode(Push((b"message", b"a", b"early")), 3), 2.05),
            (S2C, encode(Push((b"subscribe", b"a", 1)), 3), 2.1),
            (S2C, encode(Push((b"message", b"a", b"m1")), 3) + b"$1\r\nv\r\n", 2.2),
            (S2C, encode(Push((b"invalidate", [b"k"])), 3), 2.3),
            (C2S, cmd("LRANGE", "l", 0, -1), 3.0),
            # in RESP3 an array is never a push, even while subscribed
            (S2C, encode([b"message", b"x", b"y"], 3), 3.1),
        ],
        conv,
    )
    assert conv.protocol == 3
    assert pairs(events) == [
        ((b"HELLO", b"3"), Map(((b"server", b"redis"), (b"proto", 3)))),
        ((b"SUBSCRIBE", b"a"), Push((b"subscribe", b"a", 1))),
        ((b"GET", b"k"), b"v"),
        ((b"LRANGE", b"l", b"0", b"-1"), [b"message", b"x", b"y"]),
    ]
    assert [e.protocol for e in of(events, Exchange)] == [3, 3, 3, 3]
    assert [p.kind for p in of(events, ServerPush)] == ["message", "message", "invalidate"]


@pytest.mark.pure
def test_hello_failure_keeps_resp2_and_hello2_goes_back():
    conv = RespConversation()
    run([(C2S, cmd("HELLO", "4"), 1), (S2C, b"-NOPROTO unsupported protocol version\r\n", 2)], conv)
    assert conv.protocol == 2
    run([(C2S, cmd("HELLO", "3"), 3), (S2C, HELLO3, 4)], conv)
    assert conv.protocol == 3
    events = run([(C2S, cmd("HELLO", "2"), 5), (S2C, encode([b"proto", 2]), 6)], conv)
    assert conv.protocol == 2 and events[0].protocol == 2


@pytest.mark.pure
def test_multi_exec():
    events = run(
        [
            (C2S, cmd("MULTI") + cmd("SET", "a", "1") + cmd("INCR", "a") + cmd("NOPE"), 1.0),
            (C2S, cmd("EXEC") + cmd("GET", "a"), 1.0),
            (S2C, OK + b"+QUEUED\r\n+QUEUED\r\n-ERR unknown command 'NOPE'\r\n", 2.0),
            (S2C, b"*2\r\n+OK\r\n:2\r\n$1\r\n2\r\n", 3.0),
        ]
    )
    ex = of(events, Exchange)
    assert [(e.command[0], e.in_transaction) for e in ex] == [
        (b"MULTI", False),
        (b"SET", True),
        (b"INCR", True),
        (b"NOPE", True),
        (b"EXEC", False),
        (b"GET", False),
    ]
    assert ex[4].reply == [Simple(b"OK"), 2]
    assert ex[4].queued == ((b"SET", b"a", b"1"), (b"INCR", b"a"))


@pytest.mark.pure
def test_discard_and_nested_multi_and_watch_abort():
    events = run(
        [
            (C2S, cmd("MULTI") + cmd("MULTI") + cmd("SET", "a", "1") + cmd("DISCARD"), 1),
            (C2S, cmd("WATCH", "a") + cmd("MULTI") + cmd("GET", "a") + cmd("EXEC"), 1),
            (S2C, OK + b"-ERR MULTI calls can not be nested\r\n+QUEUED\r\n" + OK, 2),
            (S2C, OK + OK + b"+QUEUED\r\n*-1\r\n", 3),
        ]
    )
    ex = of(events, Exchange)
    assert [(e.command[0], e.in_transaction) for e in ex] == [
        (b"MULTI", False),
        (b"MULTI", True),
        (b"SET", True),
        (b"DISCARD", False),
        (b"WATCH", False),
        (b"MULTI", False),
        (b"GET", True),
        (b"EXEC", False),
    ]
    assert ex[-1].reply is None and ex[-1].queued == ((b"GET", b"a"),)


@pytest.mark.pure
def test_failed_multi_unmarks_the_commands_after_it():
    events = run(
        [
            (C2S, cmd("MULTI") + cmd("GET", "a") + cmd("EXEC"), 1),
            (S2C, b"-NOAUTH Authentication required.\r\n" * 3, 2),
        ]
    )
    assert [e.in_transaction for e in of(events, Exchange)] == [False, False, False]


@pytest.mark.pure
def test_monitor():
    events = run(
        [
            (C2S, cmd("MONITOR"), 1),
            (S2C, OK, 2),
            (S2C, b'+1700000000.123456 [0 127.0.0.1:50000] "GET" "a"\r\n', 3),
            (S2C, b'+1700000000.223456 [0 lua] "set" "b" "1"\r\n', 4),
            (C2S, cmd("QUIT"), 5),
            (S2C, OK, 6),
        ]
    )
    assert pairs(events) == [((b"MONITOR",), Simple(b"OK")), ((b"QUIT",), Simple(b"OK"))]
    assert [p.kind for p in of(events, ServerPush)] == ["monitor", "monitor"]


@pytest.mark.pure
def test_client_reply_off_skip_on():
    events = run(
        [
            (C2S, cmd("GET", "x") + cmd("CLIENT", "REPLY", "OFF") + cmd("SET", "a", "1"), 1),
            (C2S, cmd("CLIENT", "REPLY", "SKIP") + cmd("CLIENT", "REPLY", "ON"), 1),
            (C2S, cmd("CLIENT", "REPLY", "SKIP") + cmd("SET", "b", "2") + cmd("GET", "b"), 1),
            (C2S, cmd("CLIENT", "REPLY", "SKIP") + cmd("CLIENT", "REPLY", "SKIP"), 1),
            (C2S, cmd("GET", "c") + cmd("GET", "d"), 1),
            (S2C, b"$1\r\nx\r\n", 2),
            (S2C, OK, 3),
            (S2C, b"$1\r\n2\r\n", 4),
            (S2C, b"$1\r\nd\r\n", 5),
        ]
    )
    ex = of(events, Exchange)
    assert [(e.command, e.reply, e.suppressed) for e in ex] == [
        ((b"GET", b"x"), b"x", False),
        ((b"CLIENT", b"REPLY", b"OFF"), None, True),
        ((b"SET", b"a", b"1"), None, True),
        ((b"CLIENT", b"REPLY", b"SKIP"), None, True),
        ((b"CLIENT", b"REPLY", b"ON"), Simple(b"OK"), False),
        ((b"CLIENT", b"REPLY", b"SKIP"), None, True),
        ((b"SET", b"b", b"2"), None, True),
        ((b"GET", b"b"), b"2", False),
        ((b"CLIENT", b"REPLY", b"SKIP"), None, True),
        ((b"CLIENT", b"REPLY", b"SKIP"), None, True),
        ((b"GET", b"c"), None, True),
        ((b"GET", b"d"), b"d", False),
    ]
    assert all(e.replied_at is None and e.latency is None for e in ex if e.suppressed)


@pytest.mark.pure
def test_quit_then_unanswered_at_eof():
    conv = RespConversation()
    events = run([(C2S, cmd("QUIT") + cmd("GET", "a"), 1), (S2C, OK, 2), ("eof", S2C, 3)], conv)
    assert pairs(events) == [((b"QUIT",), Simple(b"OK"))]
    assert of(events, Unanswered) == [
        Unanswered((b"GET", b"a"), 1, 3, "connection closed before a reply")
    ]
    assert conv.pending == 0


@pytest.mark.pure
def test_client_eof_keeps_waiting_and_close_flushes():
    conv = RespConversation()
    assert run([(C2S, cmd("BLPOP", "q", 0), 1), ("eof", C2S, 2)], conv) == []
    assert [type(e) for e in conv.close(3)] == [Unanswered]


@pytest.mark.pure
def test_reset():
    conv = RespConversation()
    events = run(
        [
            (C2S, cmd("HELLO", "3") + cmd("SUBSCRIBE", "a") + cmd("RESET") + cmd("GET", "a"), 1),
            (S2C, HELLO3 + encode(Push((b"subscribe", b"a", 1)), 3) + b"+RESET\r\n", 2),
            (S2C, b"$-1\r\n", 3),
        ],
        conv,
    )
    assert conv.protocol == 2
    assert [c[0] for c, _ in pairs(events)] == [b"HELLO", b"SUBSCRIBE", b"RESET", b"GET"]


@pytest.mark.pure
def test_undecodable_reply_stream():
    events = run([(C2S, cmd("GET", "a"), 1), (S2C, b"$3\r\nabcX\r\n", 2), (S2C, OK, 3)])
    assert [type(e) for e in events] == [Undecodable]
    assert events[0].direction == S2C and events[0].offset == 7
    events = run([(C2S, b"*1\r\n$x\r\n", 1), (C2S, cmd("PING"), 2)])
    assert events == [Undecodable(C2S, 1, "bad bulk length b'x'", 4)]


@pytest.mark.pure
def test_pending_cap():
    conv = RespConversation(max_pending=10)
    events = conv.feed(C2S, cmd("PING") * 11, 1.0)
    assert [(type(e), e.direction) for e in events] == [(Undecodable, C2S), (Undecodable, S2C)]
    assert conv.feed(S2C, b"+PONG\r\n", 2.0) == [] and conv.pending == 0


# ---------------------------------------------------------------------------------------------
# secrets

REDACTION_CASES = [
    ((b"AUTH", b"pw"), (b"AUTH", b"(redacted)")),
    ((b"auth", b"user", b"pw"), (b"auth", b"user", b"(redacted)")),
    (
        (b"HELLO", b"3", b"AUTH", b"default", b"pw", b"SETNAME", b"n"),
        (b"HELLO", b"3", b"AUTH", b"default", b"(redacted)", b"SETNAME", b"n"),
    ),
    (
        (b"HELLO", b"3", b"SETNAME", b"auth", b"auth", b"u", b"pw"),
        (b"HELLO", b"3", b"SETNAME", b"auth", b"auth", b"u", b"(redacted)"),
    ),
    (
        (b"MIGRATE", b"h", b"6379", b"", b"0", b"5000", b"COPY", b"AUTH", b"pw", b"KEYS", b"AUTH"),
        (
            b"MIGRATE",
            b"h",
            b"6379",
            b"",
            b"0",
            b"5000",
            b"COPY",
            b"AUTH",
            b"(redacted)",
            b"KEYS",
            b"AUTH",
        ),
    ),
    (
        (b"MIGRATE", b"h", b"1", b"k", b"0", b"5", b"AUTH2", b"user", b"pw"),
        (b"MIGRATE", b"h", b"1", b"k", b"0", b"5", b"AUTH2", b"user", b"(redacted)"),
    ),
    (
        (b"CONFIG", b"SET", b"requirepass", b"pw", b"maxmemory", b"1mb", b"MASTERAUTH", b"pw2"),
        (
            b"CONFIG",
            b"SET",
            b"requirepass",
            b"(redacted)",
            b"maxmemory",
            b"1mb",
            b"MASTERAUTH",
            b"(redacted)",
        ),
    ),
    ((b"config", b"get", b"requirepass"), (b"config", b"get", b"requirepass")),
    (
        (
            b"ACL",
            b"SETUSER",
            b"bob",
            b"on",
            b">pw1",
            b"<pw2",
            b"#" + b"a" * 64,
            b"!" + b"b" * 64,
            b"~key*",
            b"+get",
        ),
        (
            b"ACL",
            b"SETUSER",
            b"bob",
            b"on",
            b">(redacted)",
            b"<(redacted)",
            b"#(redacted)",
            b"!(redacted)",
            b"~key*",
            b"+get",
        ),
    ),
    (
        (b"SENTINEL", b"SET", b"m", b"auth-pass", b"pw"),
        (b"SENTINEL", b"SET", b"m", b"auth-pass", b"(redacted)"),
    ),
    ((b"GET", b"AUTH"), (b"GET", b"AUTH")),
]


@pytest.mark.pure
@pytest.mark.parametrize("args, shown", REDACTION_CASES)
def test_redact_command(args, shown):
    assert redact_command(args) == shown
    frame = encode_command(*args)
    ranges = secret_ranges(args, None, 100)
    hidden = [frame[s - 100 : e - 100] for s, e in ranges]
    assert hidden == [args[i][skip:] for i, skip in secret_parts(args)]
    # the masked frame still parses to the same shape
    masked = bytearray(frame)
    for s, e in ranges:
        masked[s - 100 : e - 100] = b"*" * (e - s)
    assert len(RespParser().feed(bytes(masked))[0]) == len(args)


@pytest.mark.pure
def test_secret_ranges_inline():
    line = b"AUTH  user  s3cret\r\n"
    args = RespParser(inline=True).feed(line)[0].args
    assert [line[s:e] for s, e in secret_ranges(args, line, 0)] == [b"s3cret"]
    line = b'AUTH user "s3 cret"\r\n'
    args = RespParser(inline=True).feed(line)[0].args
    ((s, e),) = secret_ranges(args, line, 0)
    assert b"s3 cret" in line[s:e] and b"user" not in line[s:e]


@pytest.mark.pure
def test_inline_secret_found_when_the_same_read_then_fails():
    """The parser stops at the error: the inline line's place in the read is still known."""
    for prefix in (b"", cmd("PING"), b"\r\n"):
        stream = prefix + b"AUTH s3cret\r\n*x\r\n"
        conv = RespConversation()
        conv.feed(C2S, prefix, 0.0)
        events = conv.feed(C2S, stream[len(prefix):], 0.0)
        [r] = of(events, SecretRange)
        assert stream[r.start:r.end] == b"s3cret"
        assert of(events, Undecodable)


_INLINE_SECRETS = (b"PING\r\n\r\nAUTH s3cret\r\n  auth user  s3cret2\nHELLO 3 AUTH u 'pw x'\r\n"
                   b"CONFIG SET masterauth pw3\r\nACL SETUSER u on >pw4 ~*\r\n")


@pytest.mark.pure
@given(st.lists(st.integers(1, len(_INLINE_SECRETS) - 1), max_size=8))
def test_inline_secrets_have_the_same_ranges_whatever_the_split(cuts):
    """An inline command's secret ranges are its password tokens whichever reads the line came
    in: the pcap masks the same bytes (the command's name and user stay readable)."""
    whole = [(r.start, r.end) for r in of(RespConversation().feed(C2S, _INLINE_SECRETS, 0.0),
                                           SecretRange)]
    assert [_INLINE_SECRETS[s:e] for s, e in whole] == [
        b"s3cret", b"s3cret2", b"'pw x'", b"pw3", b"pw4"]
    split = _feed_split(RespConversation(), C2S, _INLINE_SECRETS, cuts)
    assert [(r.start, r.end) for r in of(split, SecretRange)] == whole


_HASH = b"e8f318657ce39ec4edeecbbee28fd72dea2261d8a6b2155ce4977393e0ea721b"  # sha256 of bobpw


@pytest.mark.pure
@pytest.mark.parametrize("hello, answer, shown", [
    (b"", b"*2\r\n$105\r\nuser bob on #" + _HASH + b" ~* resetchannels -@all +get\r\n"
          b"$34\r\nuser default on nopass ~* &* +@all\r\n",
     [b"user bob on #(redacted) ~* resetchannels -@all +get",
      b"user default on nopass ~* &* +@all"]),
    (b"", b"*6\r\n$5\r\nflags\r\n*1\r\n$2\r\non\r\n$9\r\npasswords\r\n*1\r\n$64\r\n"
          + _HASH + b"\r\n$8\r\ncommands\r\n$10\r\n-@all +get\r\n",
     [b"flags", [b"on"], b"passwords", [b"(redacted)"], b"commands", b"-@all +get"]),
    (cmd("HELLO", "3"), b"%3\r\n$5\r\nflags\r\n~1\r\n$2\r\non\r\n$9\r\npasswords\r\n*1\r\n"
                        b"$64\r\n" + _HASH + b"\r\n$9\r\nselectors\r\n*0\r\n",
     None),
])
def test_acl_list_and_getuser_answers_hide_the_password_hashes(hello, answer, shown):
    """ACL LIST and ACL GETUSER answer with each user's password hashes (SHA-256), which ACL
    SETUSER's ``#hash`` rule hides: hidden in their answers too, and masked in the pcap."""
    from playground.decode.respdecoder import redact_reply

    args = (b"ACL", b"LIST") if answer.startswith(b"*2") else (b"ACL", b"GETUSER", b"bob")
    conv = RespConversation()
    events = conv.feed(C2S, hello + cmd(*args) + cmd("PING"), 0.0)
    stream = (b"%1\r\n$5\r\nproto\r\n:3\r\n" if hello else b"") + answer + b"+PONG\r\n"
    for i in range(len(stream)):
        events += conv.feed(S2C, stream[i:i + 1], 1.0)
        if i < len(stream) - 8:
            assert conv.settled(S2C) <= stream.index(answer)  # held until it is complete
    assert [stream[r.start:r.end] for r in of(events, SecretRange)] == [_HASH]
    [reply] = [e.reply for e in events if getattr(e, "command", ())[:1] == (b"ACL",)]
    hidden = redact_reply(args, reply)
    assert _HASH.decode() not in repr(hidden) and "(redacted)" in repr(hidden)
    if shown is not None:
        assert hidden == shown
    assert redact_reply((b"ACL", b"WHOAMI"), b"bob") == b"bob"


_BOB = b"user bob on #" + _HASH + b" ~* +get"


@pytest.mark.pure
@pytest.mark.parametrize("other", [b":1\r\n", b"+OK\r\n", b"_\r\n", b"*1\r\n$1\r\na\r\n",
                                   b"+" + _BOB + b"\r\n", b"=%d\r\ntxt:" % (len(_BOB) + 4)
                                   + _BOB + b"\r\n"])
def test_an_acl_list_answer_with_a_line_not_a_bulk_string_hides_the_hashes(other):
    """An ``ACL LIST`` answer with an element Redis does not send (an integer, a null, an
    array, a simple or verbatim string): the decoder raised on it (TypeError), and the chain's
    fallback to hex sent the hashes to the pcap in clear; a simple or verbatim line showed its
    hash. Such a frame is masked whole, each line's hash hidden whatever its string type."""
    from playground.decode.respdecoder import redact_reply

    answer = b"*2\r\n$%d\r\n%s\r\n%s" % (len(_BOB), _BOB, other)
    conv = RespConversation()
    events = conv.feed(C2S, cmd("ACL", "LIST"), 0.0) + conv.feed(S2C, answer, 1.0)
    assert [(r.start, r.end) for r in of(events, SecretRange)] == [(0, len(answer))]
    [reply] = [e.reply for e in events if getattr(e, "command", ())[:1] == (b"ACL",)]
    assert _HASH.decode() not in repr(redact_reply((b"ACL", b"LIST"), reply))


@pytest.mark.pure
def test_config_get_answer_secret_ranges():
    from playground.decode.respdecoder import reply_secret_ranges

    conv = RespConversation()
    conv.feed(C2S, cmd("PING") + cmd("CONFIG", "GET", "*") + cmd("PING"), 0.0)
    answer = b"*4\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n$11\r\nrequirepass\r\n$2\r\npw\r\n"
    stream = b"+PONG\r\n" + answer + b"+PONG\r\n"
    assert conv.settled(S2C) == 0
    events = conv.feed(S2C, stream[:20], 1.0)
    assert conv.settled(S2C) == 7  # the answer is held back until it is complete
    events += conv.feed(S2C, stream[20:], 1.0)
    [r] = of(events, SecretRange)
    assert (r.direction, stream[r.start:r.end]) == (S2C, b"pw")
    assert conv.settled(S2C) == len(stream)  # no CONFIG GET waiting: nothing held
    args = (b"CONFIG", b"GET", b"requirepass")
    assert reply_secret_ranges(args, [b"requirepass", b""], 0, 28) == []
    assert reply_secret_ranges(args, [b"requirepass", b"pw"], 10, 40) == [(36, 38)]
    assert reply_secret_ranges(args, [b"requirepass", b"pw"], 10, 45) == [(10, 45)]  # odd frame
    assert reply_secret_ranges((b"CONFIG", b"SET"), [b"requirepass", b"pw"], 0, 30) == []


@pytest.mark.pure
def test_an_error_echoing_an_acl_rule_has_the_password_masked():
    """``ACL SETUSER u <pw`` (a password the user does not have) is answered ``-ERR Error in
    ACL SETUSER modifier '<pw': ...``: the password is in the answer too."""
    from playground.decode.respdecoder import redact_reply, reply_secret_ranges

    args = (b"ACL", b"SETUSER", b"u", b"on", b"<hunter2")
    conv = RespConversation()
    conv.feed(C2S, cmd(*args) + cmd("PING"), 0.0)
    error = (b"-ERR Error in ACL SETUSER modifier '<hunter2': The password you are trying to "
             b"remove from the user does not exist\r\n")
    stream = error + b"+PONG\r\n"
    assert conv.settled(S2C) == 0
    events = conv.feed(S2C, stream[:30], 1.0)
    assert conv.settled(S2C) == 0  # the answer is held back until it is complete
    events += conv.feed(S2C, stream[30:], 1.0)
    [r] = of(events, SecretRange)
    assert (r.direction, stream[r.start:r.end]) == (S2C, b"hunter2")
    answer = next(e for e in events if getattr(e, "command", ())[:1] == (b"ACL",))
    assert b"hunter2" not in redact_reply(args, answer.reply).value
    assert b"(redacted)" in redact_reply(args, answer.reply).value
    # a RESP3 bulk error, and a frame not as Redis writes it: the whole frame
    bulk = Error(b"ERR modifier '<hunter2'", bulk=True)
    assert reply_secret_ranges(args, bulk, 10, 10 + 1 + 2 + 2 + 23 + 2) == [(30, 37)]
    assert reply_secret_ranges(args, Error(b"x hunter2"), 0, 99) == [(0, 99)]
    assert reply_secret_ranges(args, Error(b"ERR syntax error"), 0, 19) == []


@pytest.mark.pure
def test_secret_range_events_come_before_the_exchange():
    conv = RespConversation()
    frame = cmd("AUTH", "bob", "hunter2")
    prefix = cmd("PING")
    stream = prefix + frame + b"AUTH bob 'pw x'\r\n"
    events = []
    for i in range(len(stream)):  # byte by byte: frames and lines span feeds
        events += conv.feed(C2S, stream[i : i + 1], 1.0)
        if i == len(prefix) + 5:
            assert conv.settled(C2S) == len(prefix)
    ranges = [(e.start, e.end) for e in of(events, SecretRange)]
    assert stream[ranges[0][0] : ranges[0][1]] == b"hunter2"
    assert b"pw x" in stream[ranges[1][0] : ranges[1][1]]
    assert conv.settled(C2S) == len(stream)
    events = conv.feed(S2C, b"+PONG\r\n" + OK + OK, 2.0)
    assert [c for c, _ in pairs(events)][1] == (b"AUTH", b"bob", b"hunter2")  # raw; display redacts


# ---------------------------------------------------------------------------------------------
# properties

SCRIPT_C2S = (
    cmd("HELLO", "3")
    + cmd("SET", "a", "x\r\ny")
    + b'GET "a"\r\n'
    + cmd("MULTI")
    + cmd("INCR", "n")
    + cmd("EXEC")
    + cmd("SUBSCRIBE", "c1", "c2")
    + cmd("CLIENT", "REPLY", "SKIP")
    + cmd("PING")
    + cmd("AUTH", "pw")
    + cmd("GET", "b")
)
SCRIPT_S2C = (
    HELLO3
    + OK
    + b"$4\r\nx\r\ny\r\n"
    + OK
    + b"+QUEUED\r\n"
    + b"*1\r\n:1\r\n"
    + encode(Push((b"subscribe", b"c1", 1)), 3)
    + encode(Push((b"message", b"c1", b"m")), 3)
    + encode(Push((b"subscribe", b"c2", 2)), 3)
    + b"-WRONGPASS invalid username-password pair\r\n"
    + b"_\r\n"
)


def _feed_split(conv, direction, data, cuts):
    out = []
    prev = 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]:
        out += conv.feed(direction, data[prev:cut], 0.0)
        prev = cut
    return out


@pytest.mark.pure
def test_script_whole():
    conv = RespConversation()
    events = conv.feed(C2S, SCRIPT_C2S, 0.0) + conv.feed(S2C, SCRIPT_S2C, 0.0)
    assert [c[0] for c, _ in pairs(events)] == [
        b"HELLO",
        b"SET",
        b"GET",
        b"MULTI",
        b"INCR",
        b"EXEC",
        b"SUBSCRIBE",
        b"CLIENT",
        b"PING",
        b"AUTH",
        b"GET",
    ]
    assert conv.pending == 0 and len(of(events, ServerPush)) == 1


@pytest.mark.pure
@given(
    st.lists(st.integers(0, len(SCRIPT_C2S)), max_size=10),
    st.lists(st.integers(0, len(SCRIPT_S2C)), max_size=10),
)
@settings(max_examples=200)
def test_split_invariance(c_cuts, s_cuts):
    whole = RespConversation()
    expected = whole.feed(C2S, SCRIPT_C2S, 0.0) + whole.feed(S2C, SCRIPT_S2C, 0.0)
    conv = RespConversation()
    got = _feed_split(conv, C2S, SCRIPT_C2S, c_cuts) + _feed_split(conv, S2C, SCRIPT_S2C, s_cuts)
    assert with_spans(got) == with_spans(expected)


@pytest.mark.pure
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=40)), max_size=12))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_never_raise(chunks):
    conv = RespConversation(max_bulk=16, max_depth=3, max_inline=20, max_pending=5)
    for i, (c2s, data) in enumerate(chunks):
        events = conv.feed(C2S if c2s else S2C, data, float(i))
        assert all(hasattr(e, "__attrs_attrs__") for e in events)
    conv.eof(S2C, 99.0)
    conv.close(100.0)


SOUP = [
    cmd("SUBSCRIBE", "a"),
    cmd("UNSUBSCRIBE"),
    cmd("CLIENT", "REPLY", "SKIP"),
    cmd("CLIENT", "REPLY", "OFF"),
    cmd("CLIENT", "REPLY", "ON"),
    cmd("MULTI"),
    cmd("EXEC"),
    cmd("HELLO", "3"),
    cmd("RESET"),
    cmd("MONITOR"),
    OK,
    b"+QUEUED\r\n",
    HELLO3,
    encode([b"subscribe", b"a", 1]),
    encode([b"message", b"a", b"x"]),
    b"*-1\r\n",
    encode(Push((b"unsubscribe", b"a", 0)), 3),
    b"+1.5 [0 x]\r\n",
    b"-ERR x\r\n",
]


@pytest.mark.pure
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(SOUP)), max_size=30))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_protocol_soup_never_raises(chunks):
    conv = RespConversation(max_pending=50)
    for i, (c2s, data) in enumerate(chunks):
        conv.feed(C2S if c2s else S2C, data, float(i))
    conv.eof(S2C, 99.0)
    assert conv.pending == 0


# ---------------------------------------------------------------------------------------------
# a real conversation recorded from redis-server


class Recorder:
    """A raw client socket recording the exact bytes each way."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sent = bytearray()
        self.received = bytearray()
        self.parser = RespParser()
        self.frames = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += data

    def wait(self, frames: int, timeout: float = 10.0) -> None:
        """Read until ``frames`` reply frames in all have arrived."""
        deadline = time.monotonic() + timeout
        while self.frames < frames:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.frames} of {frames} frames: {bytes(self.received)!r}")
            data = self.sock.recv(65536)
            if not data:
                break
            self.received += data
            self.frames += len(self.parser.feed(data))

    def close(self) -> None:
        self.sock.close()


@pytest.mark.real
def test_real_conversation(redis_server):
    port = redis_server.port
    k = "tcpplay:decoder:%d" % time.monotonic_ns()
    sub = Recorder(port)
    pub = Recorder(port)
    try:
        sub.send(cmd("SUBSCRIBE", k + ":ch", k + ":ch2"))
        sub.wait(2)
        pub.send(
            cmd("SET", k, "v\r\n1")
            + cmd("GET", k)
            + b"INCR "
            + k.encode()
            + b":n\r\n"
            + cmd("MULTI")
            + cmd("INCR", k + ":n")
            + cmd("NOSUCHCOMMAND")
            + cmd("EXEC")
            + cmd("CLIENT", "REPLY", "SKIP")
            + cmd("SET", k + ":skipped", "1")
            + cmd("CLIENT", "REPLY", "OFF")
            + cmd("GET", k)
            + cmd("CLIENT", "REPLY", "ON")
            + cmd("PUBLISH", k + ":ch", "hello")
            + cmd("HELLO", "3")
            + cmd("HGETALL", k + ":nohash")
            + cmd("PING")
        )
        pub.wait(12)
        sub.wait(3)
        sub.send(cmd("PING") + cmd("UNSUBSCRIBE"))
        sub.wait(6)
    finally:
        sub.close()
        pub.close()

    conv = RespConversation()
    events = conv.feed(C2S, bytes(pub.sent), 1.0) + conv.feed(S2C, bytes(pub.received), 2.0)
    ex = of(events, Exchange)
    assert [(e.command[0], e.in_transaction, e.suppressed) for e in ex] == [
        (b"SET", False, False),
        (b"GET", False, False),
        (b"INCR", False, False),
        (b"MULTI", False, False),
        (b"INCR", True, False),
        (b"NOSUCHCOMMAND", True, False),
        (b"EXEC", False, False),
        (b"CLIENT", False, True),
        (b"SET", False, True),
        (b"CLIENT", False, True),
        (b"GET", False, True),
        (b"CLIENT", False, False),
        (b"PUBLISH", False, False),
        (b"HELLO", False, False),
        (b"HGETALL", False, False),
        (b"PING", False, False),
    ]
    assert ex[1].reply == b"v\r\n1"
    assert ex[6].reply.value.startswith(b"EXECABORT")
    assert ex[11].reply == Simple(b"OK") and ex[12].reply == 1
    assert ex[13].protocol == 3 and isinstance(ex[13].reply, Map)
    assert ex[14].reply == Map() and ex[15].reply == Simple(b"PONG")
    assert all(e.latency == 1.0 for e in ex if not e.suppressed)
    assert conv.pending == 0 and not of(events, ServerPush)

    conv = RespConversation()
    events = conv.feed(C2S, bytes(sub.sent), 1.0) + conv.feed(S2C, bytes(sub.received), 2.0)
    chan = (k + ":ch").encode()
    chan2 = (k + ":ch2").encode()
    got = pairs(events)
    assert got[:2] == [
        ((b"SUBSCRIBE", chan, chan2), [[b"subscribe", chan, 1], [b"subscribe", chan2, 2]]),
        ((b"PING",), [b"pong", b""]),
    ]
    # UNSUBSCRIBE without channels: one confirmation per channel, in the server's order
    assert got[2][0] == (b"UNSUBSCRIBE",)
    assert sorted(c[1] for c in got[2][1]) == [chan, chan2]
    assert [c[2] for c in got[2][1]] == [1, 0]
    assert len(got) == 3
    assert [(p.kind, p.value) for p in of(events, ServerPush)] == [
        ("message", [b"message", chan, b"hello"])
    ]


@pytest.mark.real
def test_real_monitor(redis_server):
    port = redis_server.port
    k = "tcpplay:monitor:%d" % time.monotonic_ns()
    mon = Recorder(port)
    other = Recorder(port)
    try:
        mon.send(cmd("MONITOR"))
        mon.wait(1)
        other.send(cmd("SET", k, "1") + cmd("GET", k) + cmd("DEL", k))
        other.wait(3)
        mon.wait(4)
        mon.send(cmd("QUIT"))
        mon.wait(5)
    finally:
        mon.close()
        other.close()
    conv = RespConversation()
    events = conv.feed(C2S, bytes(mon.sent), 1.0) + conv.feed(S2C, bytes(mon.received), 2.0)
    assert pairs(events) == [((b"MONITOR",), Simple(b"OK")), ((b"QUIT",), Simple(b"OK"))]
    lines = [p.value.value for p in of(events, ServerPush)]
    assert [p.kind for p in of(events, ServerPush)] == ["monitor"] * 3
    assert b'"SET"' in lines[0] and b'"GET"' in lines[1] and b'"DEL"' in lines[2]


_PIPELINE = [
    cmd("SET", "k", "v"), cmd("GET", "k"), cmd("MULTI"), cmd("INCR", "n"), cmd("EXEC"),
    cmd("AUTH", "user", "s3cret"), cmd("CLIENT", "REPLY", "SKIP"), cmd("SET", "a", "1"),
    cmd("MGET", "a", "b"), cmd("*0"), b"*0\r\n", cmd("PING"), cmd("HELLO", "3"),
]
_REPLIES = {
    b"SET": b"+OK\r\n", b"GET": b"$1\r\nv\r\n", b"MULTI": b"+OK\r\n", b"INCR": b"+QUEUED\r\n",
    b"EXEC": b"*1\r\n:1\r\n", b"AUTH": b"-WRONGPASS no\r\n", b"MGET": b"*2\r\n$1\r\n1\r\n$-1\r\n",
    b"*0": b"+OK\r\n", b"PING": b"+PONG\r\n", b"HELLO": b"%1\r\n$5\r\nproto\r\n:3\r\n",
}


def _script(picks):
    """Each picked frame with the reply redis gives it: None for a frame that is not a command
    (``*0``) and for the command after CLIENT REPLY SKIP (as well as for that CLIENT itself)."""
    skip = False
    for i in picks:
        frame = _PIPELINE[i]
        name = frame.split(b"\r\n")[2] if frame.startswith(b"*") and frame != b"*0\r\n" else None
        if name is None:
            yield frame, None
        elif skip:
            skip = False
            yield frame, None
        elif name == b"CLIENT":
            skip = True
            yield frame, None
        else:
            yield frame, _REPLIES[name]


@pytest.mark.pure
@given(st.lists(st.sampled_from(range(len(_PIPELINE))), min_size=1, max_size=60),
       st.lists(st.integers(0, 3000), max_size=3))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_pipelined_runs_equal_frame_by_frame(picks, cuts):
    """Commands parsed as a run (hiredis, offsets worked out lazily, queued in one go) give the
    same events, offsets included, as the pure parser's one frame at a time."""
    c2s = b"".join(_PIPELINE[i] for i in picks)
    s2c = b"".join(reply for _, reply in _script(picks) if reply is not None)
    fast, pure = RespConversation(), RespConversation()
    pure._c2s._use_hiredis = pure._s2c._use_hiredis = False
    got = _feed_split(fast, C2S, c2s, cuts) + fast.feed(S2C, s2c, 1.0) + fast.close(2.0)
    want = _feed_split(pure, C2S, c2s, cuts) + pure.feed(S2C, s2c, 1.0) + pure.close(2.0)
    assert with_spans(got) == with_spans(want)
    # fed whole (one run of commands, one read of replies), the fast paths included: the same
    # as the general parsing loop gives
    conv, ref = RespConversation(), RespConversation()
    got = conv.feed(C2S, c2s, 0.0) + conv.feed(S2C, s2c, 1.0) + conv.close(2.0)
    want = general_feed(ref, C2S, c2s, 0.0) + general_feed(ref, S2C, s2c, 1.0) + ref.close(2.0)
    assert with_spans(got) == with_spans(want)


@pytest.mark.pure
@given(st.lists(st.sampled_from(range(len(_PIPELINE))), min_size=1, max_size=40))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_one_frame_per_read_equals_pure(picks):
    """Request/response traffic, one command or one reply per read (the fast paths of
    feed), gives the events of the pure parser fed the same reads."""
    fast, pure = RespConversation(), RespConversation()
    pure._c2s._use_hiredis = pure._s2c._use_hiredis = False
    got, want = [], []
    t = 0.0
    for frame, reply in _script(picks):
        t += 1.0
        got += fast.feed(C2S, frame, t)
        want += general_feed(pure, C2S, frame, t)
        if reply is None:
            continue
        t += 0.5
        got += fast.feed(S2C, reply, t)
        want += general_feed(pure, S2C, reply, t)
    got += fast.close(t + 1)
    want += pure.close(t + 1)
    assert with_spans(got) == with_spans(want)


@pytest.mark.pure
def test_answers_inside_exec_are_masked_too():
    """``MULTI``, ``CONFIG GET requirepass``, ``ACL SETUSER u <pw``, ``EXEC``: the answers come
    inside EXEC's array, with the password in them."""
    from playground.decode.respdecoder import redact_exec

    conv = RespConversation()
    sent = (cmd("MULTI") + cmd("CONFIG", "GET", "requirepass") + cmd("ACL", "SETUSER", "u", "<pw2")
            + cmd("GET", "k") + cmd("EXEC") + cmd("PING"))
    conv.feed(C2S, sent, 0.0)
    answer = (b"*3\r\n*2\r\n$11\r\nrequirepass\r\n$3\r\npw1\r\n-ERR Error in ACL SETUSER "
              b"modifier '<pw2': no\r\n$3\r\npw1\r\n")  # GET k's value is not a secret
    stream = b"+OK\r\n" + b"+QUEUED\r\n" * 3 + answer + b"+PONG\r\n"
    events = []
    for i in range(len(stream)):
        events += conv.feed(S2C, stream[i:i + 1], 1.0)
        if i < len(stream) - 8:
            assert conv.settled(S2C) <= stream.index(b"*3")  # held until EXEC is answered
    found = [stream[r.start:r.end] for r in of(events, SecretRange)]
    assert found == [b"pw1", b"pw2"]
    exec_ = next(e for e in events if getattr(e, "command", ())[:1] == (b"EXEC",))
    shown = redact_exec(exec_.queued, exec_.reply)
    assert shown[0] == [b"requirepass", b"(redacted)"] and b"pw2" not in shown[1].value
    assert shown[2] == b"pw1"
    assert conv.settled(S2C) == len(stream)


@pytest.mark.pure
def test_every_path_gives_the_one_exchange_type_with_its_latency_set_once():
    """One command per read (the fast paths), a pipelined run (offsets worked out when asked), a
    command followed for its state (AUTH, MULTI/EXEC) and a suppressed one: all come out as
    ``Exchange``, read by name, with ``latency`` the reply's time less the command's."""
    conv = RespConversation()
    got = conv.feed(C2S, cmd("GET", "a"), 1.0) + conv.feed(S2C, b"$1\r\n1\r\n", 1.25)
    run_ = cmd("SET", "b", "2") + cmd("GET", "b")
    got += conv.feed(C2S, run_, 2.0) + conv.feed(S2C, OK + b"$1\r\n2\r\n", 2.5)
    special = cmd("AUTH", "pw") + cmd("MULTI") + cmd("INCR", "n") + cmd("EXEC")
    got += conv.feed(C2S, special, 3.0)
    got += conv.feed(S2C, b"+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:1\r\n", 3.75)
    got += conv.feed(C2S, cmd("CLIENT", "REPLY", "SKIP") + cmd("PING"), 4.0)
    exchanges = of(got, Exchange)
    assert [type(e) for e in got if type(e) is not SecretRange] == [Exchange] * 9
    assert [e.name for e in exchanges] == [b"GET", b"SET", b"GET", b"AUTH", b"MULTI", b"INCR",
                                           b"EXEC", b"CLIENT", b"PING"] and conv.pending == 0
    answered = [e for e in exchanges if not e.suppressed]
    assert [e.latency for e in answered] == [0.25, 0.5, 0.5, 0.75, 0.75, 0.75, 0.75]
    assert all(e.latency == e.replied_at - e.sent_at for e in answered)
    assert [(e.reply, e.replied_at, e.latency) for e in exchanges if e.suppressed] == [
        (None, None, None)] * 2
    assert exchanges[5].in_transaction and exchanges[6].queued == ((b"INCR", b"n"),)
    starts = [0, len(cmd("GET", "a")), len(cmd("GET", "a")) + len(cmd("SET", "b", "2"))]
    assert [e.offset for e in exchanges[:3]] == starts
    assert [e.size for e in exchanges[:3]] == [len(cmd("GET", "a")), len(cmd("SET", "b", "2")),
                                               len(cmd("GET", "b"))]


def _triples(events) -> list:
    """Each answered command as ``(command, reply, latency)`` (an ``Answered`` as its
    exchanges), and every other event as it is. An ``Answered`` says its replies' types."""
    out = []
    for e in events:
        if type(e) is Answered:
            assert e.reply_types == frozenset(map(type, e.replies))
            out += zip(map(tuple, e.commands), e.replies, e.latencies, strict=True)
        elif type(e) is Exchange and not (e.suppressed or e.in_transaction or e.queued):
            out.append((e.command, e.reply, e.latency))
        else:
            out.append(e)
    return out


@pytest.mark.pure
def test_replies_to_a_pipelined_run_come_matched_in_bulk():
    """With ``runs``, a read answering several ordinary commands gives one ``Answered``: the
    commands, replies and latencies as lists, no object per exchange."""
    conv = RespConversation(runs=True)
    sent = cmd("SET", "a", "1") + cmd("GET", "a") + cmd("GET", "b")
    assert conv.feed(C2S, sent, 1.0) == []
    events = conv.feed(S2C, OK + b"$1\r\n1\r\n", 1.5) + conv.feed(S2C, b"$-1\r\n", 2.0)
    assert events[0] == Answered([[b"SET", b"a", b"1"], [b"GET", b"a"]],
                                 [Simple(b"OK"), b"1"], [0.5, 0.5], frozenset({Simple, bytes}))
    assert [(e.command, e.reply, e.latency) for e in events[1:]] == [((b"GET", b"b"), None, 1.0)]
    assert conv.pending == 0
    # not all ordinary (AUTH), a pub/sub push, an error of the parser: exchange by exchange
    conv.feed(C2S, cmd("AUTH", "pw") + cmd("GET", "a"), 3.0)
    assert [type(e) for e in conv.feed(S2C, b"+OK\r\n$1\r\n1\r\n", 3.5)] == [Exchange] * 2
    conv.feed(C2S, cmd("GET", "a") * 2, 4.0)
    assert [type(e) for e in conv.feed(S2C, b"$1\r\n1\r\n%1\r\n", 4.5)] == [Exchange]
    assert type(conv.feed(S2C, b"\r\n", 4.6)[-1]) is Undecodable


@pytest.mark.pure
@given(st.lists(st.sampled_from(range(len(_PIPELINE))), min_size=1, max_size=60),
       st.lists(st.integers(0, 3000), max_size=3), st.lists(st.integers(0, 3000), max_size=4))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_replies_matched_in_bulk_equal_exchange_by_exchange(picks, cuts, reply_cuts):
    """The same bytes, split alike, give the same answers (command, reply, latency, in order)
    and the same other events with ``runs`` (replies matched in bulk) as without."""
    c2s = b"".join(_PIPELINE[i] for i in picks)
    s2c = b"".join(reply for _, reply in _script(picks) if reply is not None)
    got, want = [], []
    for runs, out in ((True, got), (False, want)):
        conv = RespConversation(runs=runs)
        out += _feed_split(conv, C2S, c2s, cuts)
        prev = 0
        for i, cut in enumerate(sorted({c for c in reply_cuts if 0 < c < len(s2c)})
                                + [len(s2c)]):
            out += conv.feed(S2C, s2c[prev:cut], 1.0 + i)
            prev = cut
        out += conv.close(9.0)
    assert _triples(with_spans(got)) == _triples(with_spans(want))


@pytest.mark.pure
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(SOUP)), max_size=30))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_protocol_soup_matched_in_bulk_equals_exchange_by_exchange(chunks):
    got, want = [], []
    for runs, out in ((True, got), (False, want)):
        conv = RespConversation(max_pending=50, runs=runs)
        for i, (c2s, data) in enumerate(chunks):
            # several replies a read, as a pipelined server sends them
            out += conv.feed(C2S if c2s else S2C, data * (1 if c2s else 3), float(i))
        out += conv.eof(S2C, 99.0)
    assert _triples(with_spans(got)) == _triples(with_spans(want))


@pytest.mark.pure
def test_pending_cap_counts_each_command_of_a_run():
    """The commands of a pipelined run wait as one entry of the queue, but count one each
    against ``max_pending``."""
    conv = RespConversation(max_pending=10)
    assert conv.feed(C2S, cmd("GET", "a") * 6, 1.0) == [] and conv.pending == 6
    assert conv.feed(C2S, cmd("GET", "b") * 4, 1.0) == [] and conv.pending == 10
    events = conv.feed(C2S, cmd("GET", "c") * 2, 1.0)
    assert [(type(e), e.direction) for e in events] == [(Undecodable, C2S), (Undecodable, S2C)]
    assert conv.pending == 0


# Mostly ordinary commands with scalar replies (SET, GET, PING), so that runs of them, answered
# in bulk, are common.
_MOSTLY_ORDINARY = [0, 1, 7, 11] * 8 + list(range(len(_PIPELINE)))


@pytest.mark.pure
@given(st.lists(st.sampled_from(_MOSTLY_ORDINARY), min_size=1, max_size=40),
       st.lists(st.integers(0, 40), max_size=8), st.lists(st.integers(0, 300), max_size=6),
       st.integers(0, 300), st.integers(1, 7), st.booleans())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_a_pipelined_run_answers_as_its_commands_read_one_by_one(picks, groups, reply_cuts,
                                                                 answered, limit, runs):
    """Commands read in pipelined runs (a run waits as one queue entry, its replies matched to
    slices of it, or to several entries at once) give the same events as the same commands
    read one a read (each waiting as its own): replies split anywhere, some left unanswered
    and handed out at close ``limit`` at a time."""
    frames = [_PIPELINE[i] for i in picks]
    s2c = b"".join(reply for _, reply in _script(picks) if reply is not None)[:answered]
    cuts = sorted({c for c in groups if 0 < c < len(frames)}) + [len(frames)]
    got, want = [], []
    for pipelined, out in ((True, got), (False, want)):
        conv = RespConversation(runs=runs)
        if pipelined:
            prev = 0
            for cut in cuts:
                out += conv.feed(C2S, b"".join(frames[prev:cut]), 1.0)
                prev = cut
        else:
            for frame in frames:
                out += conv.feed(C2S, frame, 1.0)
        prev = 0
        for i, cut in enumerate(sorted({c for c in reply_cuts if 0 < c < len(s2c)})
                                + [len(s2c)]):
            out += conv.feed(S2C, s2c[prev:cut], 2.0 + i)
            out.append(("waiting", conv.pending))
            prev = cut
        for _ in range(len(frames) + 1):
            step = conv.close(9.0, limit)
            out += step
            assert len(step) <= limit
            if not conv.pending:
                break
        assert conv.pending == 0
    assert _triples(with_spans(got)) == _triples(with_spans(want))


@pytest.mark.pure
def test_replies_matched_to_slices_of_runs_and_across_entries():
    """Replies matched in bulk take a run's commands in slices, and cross from one waiting
    entry to the next (a run, part of one, a command read on its own)."""
    conv = RespConversation(runs=True)
    conv.feed(C2S, cmd("SET", "a", "1") * 3, 1.0)  # a run
    conv.feed(C2S, cmd("GET", "a") * 3, 2.0)  # another
    conv.feed(C2S, cmd("GET", "b"), 3.0)  # on its own
    assert conv.pending == 7
    value = b"$1\r\n1\r\n"
    first = conv.feed(S2C, OK * 2, 4.0)  # a slice of the first run
    second = conv.feed(S2C, OK + value, 5.0)  # its rest and the second's first
    assert conv.pending == 3
    third = conv.feed(S2C, value * 3, 6.0)  # the second's rest and the one on its own
    assert conv.pending == 0
    sets, gets = [b"SET", b"a", b"1"], [b"GET", b"a"]
    assert first == [Answered([sets] * 2, [Simple(b"OK")] * 2, [3.0] * 2, frozenset({Simple}))]
    assert second == [Answered([sets, gets], [Simple(b"OK"), b"1"], [4.0, 3.0],
                                 frozenset({Simple, bytes}))]
    assert third == [Answered([gets, gets, (b"GET", b"b")], [b"1"] * 3, [4.0, 4.0, 3.0],
                                frozenset({bytes}))]
    # the rest of a run answered one reply at a time: each its own exchange
    conv.feed(C2S, cmd("GET", "a") * 3, 7.0)
    assert conv.feed(S2C, value * 2, 8.0) == [Answered([gets] * 2, [b"1"] * 2, [1.0] * 2,
                                                                frozenset({bytes}))]
    assert [(e.command, e.latency) for e in conv.feed(S2C, value, 9.0)] == [
        ((b"GET", b"a"), 2.0)]
    assert conv.pending == 0
    # two whole runs answered by one read
    conv.feed(C2S, cmd("SET", "a", "1") * 2, 10.0)
    conv.feed(C2S, cmd("GET", "a") * 2, 10.5)
    assert conv.feed(S2C, OK * 2 + value * 2, 11.0) == [
        Answered([sets, sets, gets, gets], [Simple(b"OK")] * 2 + [b"1"] * 2, [1.0] * 2 + [0.5] * 2,
                 frozenset({Simple, bytes}))]
    assert conv.pending == 0
