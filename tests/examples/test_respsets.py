"""The RESP server's sets and sorted sets: the pure value types and commands (reply shapes in
RESP2 and RESP3, errors, seeded randomness), the same commands replayed against a real
redis-server and compared reply by reply (scripts, then hypothesis-chosen sequences), and the
stock ``redis-benchmark`` run (no ``-t``) against the demo's RESP server and through its proxy."""

from __future__ import annotations

import math
import random
import re
import shlex
import subprocess

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from playground.codec.encoder import encode_command
from playground.codec.values import Error, Set, Simple
from playground.examples.resp import sets, sortedsets
from playground.examples.resp.engine import Engine
from playground.examples.resp.replies import NULL_ARRAY, Reply, encode_reply
from playground.examples.resp.server import RespFactory
from playground.examples.resp.sets import MAX_RANDOM_REPLY, MemberSet
from playground.examples.resp.sortedsets import Score, SortedSet, parse_score
from tests.support.net import free_port, resp_exchange
from tests.support.processes import Twistd, need

WRONGTYPE = Error(b"WRONGTYPE Operation against a key holding the wrong kind of value")


def _args(line: str) -> list[bytes]:
    return [a.encode() for a in shlex.split(line)]


class Client:
    """One RESP2 (or RESP3) session on a pure engine; ``client("ZADD z 1 a")`` is the reply."""

    def __init__(self, engine: Engine | None = None, protocol: int = 2, now: float = 1000.0):
        self.engine = engine or Engine()
        self.now = now
        self.session = self.engine.connect(now)
        self.session.protocol = protocol

    def __call__(self, line: str):
        [effect] = self.engine.execute(self.session, _args(line), self.now)
        assert isinstance(effect, Reply)
        return effect.value

    def wire(self, line: str) -> bytes:
        return encode_reply(self(line), self.session.protocol)


# ============================================================== the value types (pure)


@pytest.mark.pure
@given(st.lists(st.tuples(st.sampled_from(["add", "discard", "pop"]),
                          st.binary(max_size=2)), max_size=60),
       st.integers(0, 2**32))
def test_member_set_is_a_set_with_random_picks(steps, seed):
    members, model, rng = MemberSet(), set(), random.Random(seed)
    for op, member in steps:
        if op == "add":
            assert members.add(member) == (member not in model)
            model.add(member)
        elif op == "discard":
            assert members.discard(member) == (member in model)
            model.discard(member)
        elif model:
            popped = members.pop_random(rng)
            assert popped in model
            model.remove(popped)
        assert set(members) == model and len(members) == len(model)
        assert all(m in members for m in model)
        if model:
            assert members.choice(rng) in model
            assert set(members.sample(rng, len(model))) == model


_SCORES = st.sampled_from([0.0, -0.0, 1.0, 1.5, -2.0, 1e300, math.inf, -math.inf])


@pytest.mark.pure
@given(st.lists(st.tuples(st.sampled_from(["set", "remove", "popmin", "popmax"]),
                          st.binary(max_size=2), _SCORES, st.integers(0, 3)), max_size=60))
def test_sorted_set_keeps_score_then_member_order(steps):
    zset, model = SortedSet(), {}
    for op, member, score, count in steps:
        expected = sorted((s, m) for m, s in model.items())
        if op == "set":
            zset.set(member, score)
            model[member] = score + 0.0
        elif op == "remove":
            assert zset.remove(member) == (model.pop(member, None) is not None)
        else:
            taken = zset.pop(count, highest=op == "popmax")
            assert taken == (expected[::-1] if op == "popmax" else expected)[:count]
            for _, m in taken:
                del model[m]
        assert zset.order == sorted((s, m) for m, s in model.items())
        assert zset.scores == model and len(zset) == len(model)
        for rank, (_, m) in enumerate(zset.order):
            assert zset.rank(m) == rank
    assert zset.rank(b"not there") is None


@pytest.mark.pure
@pytest.mark.parametrize("text, value", [
    (b"1", 1.0), (b"-1.5", -1.5), (b"+2", 2.0), (b"1.", 1.0), (b".5", 0.5), (b"1e3", 1000.0),
    (b"0x10", 16.0), (b"0x1p-2", 0.25), (b"inf", math.inf), (b"-INF", -math.inf),
    (b"+infinity", math.inf), (b"-0", 0.0), (b"5e-324", 5e-324), (b"0" * 400, 0.0),
    (b"9" * 299, float("9" * 299)),
])
def test_scores_are_read_as_redis_reads_them(text, value):
    assert parse_score(text) == value


@pytest.mark.pure
@pytest.mark.parametrize("text", [b"", b" 1", b"1 ", b"nan", b"-nan", b"1e400", b"1e-400",
                                  b"1_0", b"x", b"1e", b"0x", b".", b"--1", b"in", b"1,5",
                                  b"9" * 400, b"0x1p-2000", b"\xd9\xa3"])
def test_scores_redis_refuses(text):
    assert parse_score(text) is None


@pytest.mark.pure
def test_scores_print_as_redis_7_0_does():
    assert repr(Score(1.1)) == "1.1000000000000001"
    c2, c3 = Client(), Client(protocol=3)
    c2("ZADD z 1.1 a 2 b -0 c inf d")
    c3.engine = c2.engine
    assert c2.wire("ZSCORE z a") == b"$18\r\n1.1000000000000001\r\n"
    assert c3.wire("ZSCORE z a") == b",1.1000000000000001\r\n"
    assert c2.wire("ZSCORE z c") == b"$1\r\n0\r\n"  # -0 is stored as 0
    assert c3.wire("ZSCORE z d") == b",inf\r\n"
    assert c2.wire("ZSCORE z nope") == b"$-1\r\n"
    assert c3.wire("ZSCORE z nope") == b"_\r\n"


# ============================================================== commands on the engine (pure)


@pytest.mark.pure
def test_set_commands():
    c = Client()
    assert c("SADD s a b a c") == 3
    assert c("SADD s c d") == 1
    assert c("SCARD s") == 4 and c("SCARD nope") == 0
    assert sorted(c("SMEMBERS s").items) == [b"a", b"b", b"c", b"d"]
    assert c("SMEMBERS nope") == Set()
    assert (c("SISMEMBER s a"), c("SISMEMBER s z"), c("SISMEMBER nope a")) == (1, 0, 0)
    assert c("SMISMEMBER s a z d") == [1, 0, 1]
    assert c("SREM s a z") == 1
    c("SADD t c d e")
    assert sorted(c("SUNION s t nope").items) == [b"b", b"c", b"d", b"e"]
    assert sorted(c("SINTER s t").items) == [b"c", b"d"]
    assert c("SINTER s t nope") == Set()
    assert c("SDIFF s t") == Set((b"b",))
    assert c("SDIFF nope s") == Set()
    assert c("SREM s b c d") == 3
    assert c("EXISTS s") == 0  # the last member gone, the key goes
    assert c("TYPE t") == Simple(b"set")
    assert c("SADD t") == Error(b"ERR wrong number of arguments for 'sadd' command")


@pytest.mark.pure
def test_set_commands_on_another_type_say_wrongtype():
    c = Client()
    c("SET str v")
    c("ZADD z 1 a")
    c("SADD s a")
    for line in ["SADD str a", "SREM z a", "SMEMBERS str", "SCARD z", "SISMEMBER str a",
                 "SMISMEMBER z a", "SPOP str", "SPOP str 2", "SRANDMEMBER z", "SUNION s str",
                 "SINTER nope z", "SDIFF s z", "ZADD s 1 a", "ZRANGE s 0 -1", "ZSCORE str a",
                 "ZPOPMIN s", "ZCARD s", "ZREM str a", "ZRANK s a", "ZINCRBY s 1 a"]:
        assert c(line) == WRONGTYPE, line
    assert c("GET s") == WRONGTYPE and c("GET z") == WRONGTYPE


@pytest.mark.pure
def test_spop_and_srandmember_follow_the_engines_seed():
    def draws(rng):
        c = Client(Engine(rng=rng))
        c("SADD s " + " ".join(f"m{i}" for i in range(50)))
        return [c("SPOP s"), c("SRANDMEMBER s"), c("SRANDMEMBER s 5"), c("SRANDMEMBER s -5"),
                sorted(c("SPOP s 5").items), c("SCARD s")]

    first = draws(random.Random(7))
    assert first == draws(random.Random(7))
    assert first != draws(random.Random(8))
    assert draws(None) == draws(random.Random(0))  # the default seed
    assert first[-1] == 44
    assert len(set(first[2])) == 5 and len(first[3]) == 5


@pytest.mark.pure
def test_spop_and_srandmember_shapes_and_errors():
    c, c3 = Client(), Client(protocol=3)
    c3.engine = c.engine
    c("SADD s a b c")
    assert c("SPOP nope") is None and c("SPOP nope 3") == Set()
    assert c3.wire("SPOP nope 3") == b"~0\r\n" and c.wire("SPOP nope 3") == b"*0\r\n"
    assert c("SPOP s 0") == Set() and c("SCARD s") == 3
    for bad in ("SPOP s -1", "SPOP s x"):
        assert c(bad) == Error(b"ERR value is out of range, must be positive")
    assert c("SPOP s 1 2") == Error(b"ERR syntax error")
    assert c("SRANDMEMBER s x") == Error(b"ERR value is not an integer or out of range")
    assert c("SRANDMEMBER s -9223372036854775808") == Error(
        b"ERR value is out of range, value must between -9223372036854775807 and "
        b"9223372036854775807")
    assert c(f"SRANDMEMBER s -{MAX_RANDOM_REPLY + 1}").value.startswith(
        b"ERR count is out of range")
    assert len(c(f"SRANDMEMBER s -{MAX_RANDOM_REPLY}")) == MAX_RANDOM_REPLY
    assert c("SRANDMEMBER nope") is None and c("SRANDMEMBER nope 2") == []
    assert c("SRANDMEMBER s 0") == []
    assert sorted(c("SRANDMEMBER s 9")) == [b"a", b"b", b"c"]  # all of it
    assert c3.wire("SRANDMEMBER s 9").startswith(b"*3\r\n")  # an array, even in RESP3
    assert sorted(c("SPOP s 3").items) == [b"a", b"b", b"c"]
    assert c("EXISTS s") == 0


@pytest.mark.pure
def test_zadd_flags_as_redis_7_0():
    c = Client()
    assert c("ZADD z 1 a 2 b") == 2
    assert c("ZADD z NX 5 a 3 c") == 1 and c("ZSCORE z a") == 1.0
    assert c("ZADD z XX 5 a 4 d") == 0 and c("ZSCORE z a") == 5.0 and c("ZSCORE z d") is None
    assert c("ZADD z CH 6 a 2 b 7 e") == 2  # a changed, e added, b the same
    assert c("ZADD z GT CH 1 a 9 b") == 1  # a would go down: no
    assert c("ZADD z LT CH 1 a 10 b") == 1
    assert c("ZADD z INCR 2.5 a") == 3.5
    assert c("ZADD z NX INCR 1 a") is None  # NOP: nil
    assert c("ZADD z GT INCR -1 a") is None
    assert c("ZINCRBY z 1 new") == 1.0
    assert c("ZADD nope XX 1 a") == 0 and c("EXISTS nope") == 0
    assert c("ZADD z inf i") == 1
    assert c("ZINCRBY z -inf i") == Error(b"ERR resulting score is not a number (NaN)")
    for line, text in [
        ("ZADD z NX XX 1 a", b"ERR XX and NX options at the same time are not compatible"),
        ("ZADD z GT LT 1 a", b"ERR GT, LT, and/or NX options at the same time are not compatible"),
        ("ZADD z NX GT 1 a", b"ERR GT, LT, and/or NX options at the same time are not compatible"),
        ("ZADD z INCR 1 a 2 b", b"ERR INCR option supports a single increment-element pair"),
        ("ZADD z 1 a 2", b"ERR syntax error"),
        ("ZADD z NX CH", b"ERR syntax error"),
        ("ZADD z x a", b"ERR value is not a valid float"),
        ("ZADD z 1 a nan b", b"ERR value is not a valid float"),
        ("ZINCRBY z x a", b"ERR value is not a valid float"),
        ("ZADD z", b"ERR wrong number of arguments for 'zadd' command"),
    ]:
        assert c(line) == Error(text), line
    assert c("ZSCORE z b") == 9.0  # nothing of a refused ZADD was applied (nor LT 10)


@pytest.mark.pure
def test_zrange_by_index_score_and_lex():
    c = Client()
    c("ZADD z 1 a 2 b 2 c 3 d -inf lo inf hi")
    assert c("ZRANGE z 0 -1") == [b"lo", b"a", b"b", b"c", b"d", b"hi"]
    assert c("ZRANGE z 1 2") == [b"a", b"b"] and c("ZRANGE z -2 100") == [b"d", b"hi"]
    assert c("ZRANGE z 4 1") == [] and c("ZRANGE z 10 20") == [] and c("ZRANGE nope 0 -1") == []
    assert c("ZRANGE z 0 1 REV") == [b"hi", b"d"]
    assert c("ZRANGE z 1 3 WITHSCORES") == [b"a", 1.0, b"b", 2.0, b"c", 2.0]
    assert c("ZRANGE z (1 2 BYSCORE") == [b"b", b"c"]
    assert c("ZRANGE z -inf +inf BYSCORE LIMIT 1 2") == [b"a", b"b"]
    assert c("ZRANGE z 3 (1 BYSCORE REV") == [b"d", b"c", b"b"]
    assert c("ZRANGE z (2 (2 BYSCORE") == [] and c("ZRANGE z 3 1 BYSCORE") == []
    assert c("ZRANGE z 0 10 BYSCORE LIMIT -1 5") == []
    assert c("ZRANGE z 0 10 BYSCORE LIMIT 2 -5") == [b"c", b"d"]
    c("ZADD lex 0 a 0 b 0 c 0 d")
    assert c("ZRANGE lex [b (d BYLEX") == [b"b", b"c"]
    assert c("ZRANGE lex - + BYLEX LIMIT 1 2") == [b"b", b"c"]
    assert c("ZRANGE lex + [b BYLEX REV") == [b"d", b"c", b"b"]
    assert c("ZRANGE lex + - BYLEX") == [] and c("ZRANGE lex (b (b BYLEX") == []
    for line, text in [
        ("ZRANGE z 0 -1 LIMIT 0 1", b"ERR syntax error, LIMIT is only supported in combination "
                                    b"with either BYSCORE or BYLEX"),
        ("ZRANGE z - + BYLEX WITHSCORES", b"ERR syntax error, WITHSCORES not supported in "
                                          b"combination with BYLEX"),
        ("ZRANGE z x 1 BYSCORE", b"ERR min or max is not a float"),
        ("ZRANGE z a b BYLEX", b"ERR min or max not valid string range item"),
        ("ZRANGE z a 1", b"ERR value is not an integer or out of range"),
        ("ZRANGE z 0 1 BYSCORE BYLEX", b"ERR syntax error"),
        ("ZRANGE z 0 1 LIMIT 1", b"ERR syntax error"),
        ("ZRANGE z 0 1 BYSCORE LIMIT x 1", b"ERR value is not an integer or out of range"),
    ]:
        assert c(line) == Error(text), line


@pytest.mark.pure
def test_zset_replies_in_resp3_nest_pairs():
    c = Client(protocol=3)
    c("ZADD z 1 a 2 b 3 c")
    assert c.wire("ZRANGE z 0 1 WITHSCORES") == (
        b"*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2\r\n")
    assert c.wire("ZPOPMAX z") == b"*2\r\n$1\r\nc\r\n,3\r\n"  # no count: flat
    assert c.wire("ZPOPMIN z 1") == b"*1\r\n*2\r\n$1\r\na\r\n,1\r\n"
    c.session.protocol = 2
    assert c.wire("ZPOPMIN z 5") == b"*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
    assert c("EXISTS z") == 0
    assert c("ZPOPMIN z") == [] and c("ZPOPMIN z 0") == []
    assert c("ZPOPMIN z -1") == Error(b"ERR value is out of range, must be positive")
    assert c("ZPOPMIN z 1 2") == Error(b"ERR syntax error")


@pytest.mark.pure
def test_zset_small_commands():
    c = Client()
    c("ZADD z 3 c 1 a 2 b")
    assert (c("ZCARD z"), c("ZCARD nope")) == (3, 0)
    assert (c("ZRANK z a"), c("ZRANK z c"), c("ZRANK z x"), c("ZRANK nope a")) == (0, 2, None, None)
    assert (c("ZREVRANK z a"), c("ZREVRANK z c")) == (2, 0)
    assert c("ZREM z a x") == 1 and c("ZREM nope a") == 0
    assert c("TYPE z") == Simple(b"zset")
    assert c("ZREM z b c") == 2 and c("EXISTS z") == 0


@pytest.mark.pure
def test_keys_commands_work_on_sets_and_zsets():
    c = Client()
    c("SADD s a")
    c("ZADD z 1 a")
    assert c("EXISTS s z") == 2
    assert c("EXPIRE s 10") == 1 and c("TTL s") == 10
    c.now += 11
    assert c("SCARD s") == 0 and c("EXISTS s") == 0
    assert c("PEXPIRE z 500") == 1
    assert c.engine.sweep(c.now + 1) == 1 and c("ZCARD z") == 0
    c("ZADD z 1 a")
    c("RENAME z z2")
    assert c("ZSCORE z2 a") == 1.0
    assert c("SCAN 0 TYPE zset") == [b"0", [b"z2"]]
    assert c("DEL z2") == 1 and c("TYPE z2") == Simple(b"none")


@pytest.mark.pure
def test_watch_sees_set_and_zset_writes():
    c = Client()
    other = Client(c.engine)
    for write in ("SADD s x", "SREM s a", "SPOP s", "ZADD z 5 a", "ZINCRBY z 1 a", "ZREM z a",
                  "ZPOPMIN z"):
        c("DEL s z")
        c("SADD s a b")
        c("ZADD z 1 a 2 b")
        c("WATCH s z")
        other(write)
        c("MULTI")
        c("PING")
        assert c("EXEC") is NULL_ARRAY, write


_WORDS = st.sampled_from([b"k", b"s", b"a", b"0", b"1", b"-1", b"2.5", b"(1", b"[a", b"-", b"+",
                          b"inf", b"nan", b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR", b"REV",
                          b"LIMIT", b"BYSCORE", b"BYLEX", b"WITHSCORES", b"9223372036854775807",
                          b"-9223372036854775808", b""]) | st.binary(max_size=6)


@pytest.mark.pure
@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from([c.name for m in (sets, sortedsets) for c in m.COMMANDS]),
                          st.lists(_WORDS, max_size=7)), max_size=8),
       st.sampled_from([2, 3]))
def test_any_arguments_get_a_reply_never_an_exception(commands, protocol):
    c = Client(protocol=protocol)
    for name, args in commands:
        [effect] = c.engine.execute(c.session, [name.encode(), *args], c.now)
        encode_reply(effect.value, protocol)  # and every reply can be written


@pytest.mark.memory
def test_the_server_seeds_its_engine_from_the_system():
    draws = []
    for _ in range(2):
        c = Client(RespFactory().engine)
        c("SADD s " + " ".join(f"m{i}" for i in range(100)))
        draws.append(c("SRANDMEMBER s 10"))
    assert draws[0] != draws[1]  # a repeat has probability ~1e-20


# ============================================================== differential: vs redis-server


@pytest.fixture(scope="module")
def resp_port():
    """``twistd -n tcpplay resp`` on a free port for the whole module."""
    port = free_port()
    server = Twistd(["resp", "--listen", str(port)])
    server.wait_for("resp listening on")
    yield port
    assert server.terminate() == 0
    assert "Traceback" not in server.output()


# Commands whose reply is in hash order (Redis) or insertion order (here): compared sorted.
UNORDERED = {b"SMEMBERS", b"SUNION", b"SINTER", b"SDIFF", b"SPOP", b"SRANDMEMBER"}


def _sets_sorted(value):
    """RESP3 sets (``~``) anywhere in a reply (EXEC's too) with their members sorted."""
    if isinstance(value, Set):
        return Set(tuple(sorted(value.items)))
    if isinstance(value, list):
        return [_sets_sorted(v) for v in value]
    return value


def _normalized(name: bytes, reply):
    if name.upper() == b"HELLO":  # the server's version and the client's id differ
        return type(reply).__name__
    if name.upper() in UNORDERED and isinstance(reply, list):
        return sorted(reply)
    return _sets_sorted(reply)


def _replay(port: int, script: list[str]) -> list:
    """FLUSHALL, then ``script`` on one connection: every reply, normalized."""
    commands = [_args(line) for line in script]
    data = encode_command("FLUSHALL") + b"".join(encode_command(*c) for c in commands)
    replies = resp_exchange(port, data, len(commands) + 1)
    assert replies[0] == Simple(b"OK") and len(replies) == len(commands) + 1, replies
    return [_normalized(c[0], r) for c, r in zip(commands, replies[1:], strict=True)]


def _same_as_redis(resp_port, redis_server, script: list[str]) -> list:
    ours = _replay(resp_port, script)
    theirs = _replay(redis_server.port, script)
    for line, mine, real in zip(script, ours, theirs, strict=True):
        assert mine == real, f"{line}: ours {mine!r}, redis-server's {real!r}"
    return ours


SCRIPTS = {
    "sets": [
        "SADD s a b c a", "SADD s d", "SCARD s", "SMEMBERS s", "SISMEMBER s a", "SISMEMBER s z",
        "SMISMEMBER s a z b", "SMISMEMBER nope a", "SREM s a z", "SREM nope a", "SADD t c d e",
        "SUNION s t nope", "SINTER s t", "SINTER s nope", "SDIFF s t", "SDIFF t s nope",
        "SDIFF nope s", "SPOP nope", "SPOP nope 2", "SPOP s 0", "SPOP s -1", "SPOP s x",
        "SPOP s 1 2", "SRANDMEMBER nope", "SRANDMEMBER nope 3", "SRANDMEMBER s 0",
        "SRANDMEMBER s 10", "SRANDMEMBER s x", "SRANDMEMBER s -9223372036854775808",
        "SRANDMEMBER s 1 2", "SADD one m", "SPOP one", "EXISTS one", "SADD one m",
        "SRANDMEMBER one", "SRANDMEMBER one -3", "SPOP s 10", "EXISTS s", "TYPE t",
        "SADD t", "SREM t", "SCARD", "SMISMEMBER t", "SUNION", "SREM t c d e", "EXISTS t",
    ],
    "sorted sets": [
        "ZADD z 1 a 2 b 3 c", "ZADD z 1.1 a", "ZSCORE z a", "ZSCORE z nope", "ZSCORE nope a",
        "ZADD z NX 5 a 4 d", "ZADD z XX 5 a 4 e", "ZADD z CH 6 a 2 b 7 f", "ZADD z GT CH 1 a 9 b",
        "ZADD z LT CH 1 a 10 b", "ZADD z INCR 2.5 a", "ZADD z NX INCR 1 a", "ZADD z GT INCR -1 a",
        "ZADD z XX INCR 1 nope", "ZINCRBY z 1 new", "ZINCRBY z 0.1 new", "ZINCRBY z x new",
        "ZADD nope XX 1 a", "EXISTS nope", "ZADD z NX XX 1 a", "ZADD z GT LT 1 a",
        "ZADD z NX GT 1 a", "ZADD z NX LT 1 a", "ZADD z INCR 1 a 2 b", "ZADD z 1 a 2",
        "ZADD z NX", "ZADD z x a", "ZADD z nan a", "ZADD z 1e400 a", "ZADD z 1e-400 a",
        "ZADD z ' 1' a", "ZADD z 0x10 hex", "ZADD z -0 zero", "ZADD z inf i", "ZADD z -inf j",
        "ZINCRBY z -inf i", "ZSCORE z i", "ZADD z 1e300 big", "ZADD z 0.1 small",
        "ZSCORE z small", "ZSCORE z zero", "ZSCORE z hex", "ZCARD z", "ZCARD nope",
        "ZRANK z a", "ZRANK z j", "ZRANK z nope", "ZRANK nope a", "ZREVRANK z a",
        "ZREVRANK z j", "ZRANGE z 0 -1 WITHSCORES", "ZREM z a nope", "ZREM nope a",
        "ZPOPMIN z", "ZPOPMAX z", "ZPOPMIN z 2", "ZPOPMAX z 2", "ZPOPMIN z 0", "ZPOPMIN z -1",
        "ZPOPMIN z x", "ZPOPMIN z 1 2", "ZPOPMIN nope", "ZPOPMIN nope 3", "ZPOPMAX z 100",
        "EXISTS z", "ZADD", "ZADD z 1", "ZREM z", "ZCARD", "ZSCORE z", "ZINCRBY z 1",
        "ZRANK z", "ZRANGE z 0", "ZPOPMIN",
    ],
    "zrange": [
        "ZADD z 1 a 2 b 2 c 3 d -inf lo inf hi 2.5 e", "ZRANGE z 0 -1", "ZRANGE z 1 2",
        "ZRANGE z -2 100", "ZRANGE z -100 -5", "ZRANGE z 4 1", "ZRANGE z 10 20",
        "ZRANGE nope 0 -1", "ZRANGE z 0 1 REV", "ZRANGE z -3 -1 REV WITHSCORES",
        "ZRANGE z 1 3 WITHSCORES", "ZRANGE z (1 2 BYSCORE", "ZRANGE z -inf +inf BYSCORE",
        "ZRANGE z -inf +inf BYSCORE LIMIT 1 2", "ZRANGE z -inf +inf BYSCORE LIMIT 1 -1",
        "ZRANGE z -inf +inf BYSCORE LIMIT -1 2", "ZRANGE z -inf +inf BYSCORE LIMIT 10 2",
        "ZRANGE z -inf +inf BYSCORE LIMIT 0 0", "ZRANGE z 3 (1 BYSCORE REV",
        "ZRANGE z 3 (1 BYSCORE REV WITHSCORES LIMIT 1 1", "ZRANGE z (2 (2 BYSCORE",
        "ZRANGE z 2 2 BYSCORE", "ZRANGE z 3 1 BYSCORE", "ZRANGE z '' '(3' BYSCORE",
        "ZRANGE z ' 1' 2 BYSCORE", "ZRANGE z 1e400 inf BYSCORE", "ZRANGE z ( 2 BYSCORE",
        "ZRANGE z x 1 BYSCORE", "ZRANGE z 1 nan BYSCORE", "ZRANGE z 0 -1 LIMIT 0 1",
        "ZRANGE z 0 -1 LIMIT 0 -1", "ZRANGE z 0 1 BYSCORE BYLEX", "ZRANGE z 0 1 REV REV",
        "ZRANGE z 0 1 LIMIT 1", "ZRANGE z 0 1 BYSCORE LIMIT x 1", "ZRANGE z a 1",
        "ZRANGE z 0 1 FOO", "ZRANGE z 0 1 withscores rev", "ZADD lex 0 a 0 b 0 c 0 d 0 dd",
        "ZRANGE lex [b (d BYLEX", "ZRANGE lex - + BYLEX", "ZRANGE lex - + BYLEX LIMIT 1 2",
        "ZRANGE lex + [b BYLEX REV", "ZRANGE lex + - BYLEX", "ZRANGE lex - - BYLEX",
        "ZRANGE lex (b (b BYLEX", "ZRANGE lex [b [b BYLEX", "ZRANGE lex [c - BYLEX",
        "ZRANGE lex [z + BYLEX", "ZRANGE lex - + BYLEX LIMIT 10 1", "ZRANGE lex a b BYLEX",
        "ZRANGE lex - + BYLEX WITHSCORES", "ZRANGE z [b [d BYLEX", "ZRANGE z - + BYLEX REV",
        "ZREVRANGE z 0 2", "ZREVRANGE z 0 -1 WITHSCORES", "ZREVRANGE z 0 1 REV",
        "ZREVRANGE z 0 1 BYSCORE", "ZREVRANGE z 0 1 LIMIT 0 1", "ZREVRANGE nope 0 -1",
        "ZRANGEBYSCORE z (1 3", "ZRANGEBYSCORE z -inf +inf WITHSCORES LIMIT 1 3",
        "ZRANGEBYSCORE z 0 10 REV", "ZRANGEBYSCORE z 0 10 BYSCORE", "ZRANGEBYSCORE z x 1",
        "ZREVRANGEBYSCORE z 3 (1", "ZREVRANGEBYSCORE z +inf -inf WITHSCORES LIMIT 0 2",
        "ZREVRANGEBYSCORE z 1 3", "ZCOUNT z -inf +inf", "ZCOUNT z (1 2", "ZCOUNT z 2 (2",
        "ZCOUNT z x 1", "ZCOUNT nope 0 1", "ZCOUNT z 0", "ZRANGEBYSCORE z 0",
    ],
    "wrongtype and keys": [
        "SET str v", "SADD s a", "ZADD z 1 a", "TYPE s", "TYPE z", "SADD str a", "SREM z a",
        "SMEMBERS str", "SCARD z", "SISMEMBER str a", "SMISMEMBER z a", "SPOP str",
        "SPOP str 2", "SRANDMEMBER z", "SRANDMEMBER z 2", "SUNION s str", "SINTER nope z",
        "SDIFF s z", "SDIFF nope z", "ZADD s 1 a", "ZADD str x a", "ZADD s NX XX 1 a",
        "ZRANGE s 0 -1", "ZRANGE s x 1", "ZSCORE str a", "ZPOPMIN s", "ZPOPMIN s 0",
        "ZCARD s", "ZREM str a", "ZRANK s a", "ZINCRBY s 1 a", "GET s", "GET z", "LPUSH s x",
        "HSET z f v", "EXISTS s z str nope", "EXPIRE s 100", "TTL s", "PERSIST s", "TTL s",
        "RENAME z z2", "ZSCORE z2 a", "DEL s z2", "EXISTS s z2", "SCAN 0 TYPE set",
    ],
    "resp3": [
        "HELLO 3", "SADD s a b", "SMEMBERS s", "SMEMBERS nope", "SUNION s nope", "SINTER s nope",
        "SPOP nope 2", "SPOP s 0", "SRANDMEMBER s 5", "SRANDMEMBER s 0", "SMISMEMBER s a z",
        "SISMEMBER s a", "ZADD z 1.5 a 2 b 3 c", "ZSCORE z a", "ZSCORE z nope",
        "ZADD z INCR 1 a", "ZADD z NX INCR 1 a", "ZINCRBY z 0.1 b", "ZRANGE z 0 -1",
        "ZRANGE z 0 -1 WITHSCORES", "ZRANGE z -inf inf BYSCORE WITHSCORES REV LIMIT 0 2",
        "ZRANK z a", "ZRANK z nope", "ZPOPMIN z", "ZPOPMAX z 1", "ZPOPMIN z 0", "ZPOPMIN nope",
        "ZPOPMIN nope 2", "ZADD y 1 a 2 b", "MULTI", "ZRANGE y 0 -1 WITHSCORES", "ZSCORE y a",
        "SMEMBERS s", "EXEC", "HELLO 2", "ZRANGE y 0 -1 WITHSCORES", "ZPOPMIN y 1",
    ],
}


@pytest.mark.real
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_differential_against_redis(name, resp_port, redis_server):
    assert _same_as_redis(resp_port, redis_server, SCRIPTS[name])


# Hypothesis-chosen sequences over a few keys, members and scores, so they collide.
_KEY = st.sampled_from(["k", "j", "s"])
_MEMBER = st.sampled_from(["a", "b", "c", "dd", "e"])
_SCORE = st.sampled_from(["0", "1", "-1", "1.5", "0.1", "2", "1e2", "inf", "-inf", "-0", "x"])
_BOUND = st.sampled_from(["0", "1", "(1", "-1", "2", "(2", "-inf", "+inf", "(1.5", "x"])
_LEX = st.sampled_from(["-", "+", "[a", "(a", "[c", "(dd", "[e", "b"])
_INDEX = st.integers(-4, 4).map(str)
_ZADD_FLAGS = st.lists(st.sampled_from(["NX", "XX", "GT", "LT", "CH", "INCR"]), max_size=2,
                       unique=True)


def _join(*parts) -> str:
    return " ".join(p for part in parts for p in ([part] if isinstance(part, str) else part))


def _pairs(n):
    return st.lists(st.tuples(_SCORE, _MEMBER).map(" ".join), min_size=1, max_size=n)


_RANGE_OPTS = st.lists(st.sampled_from(["WITHSCORES", "REV", "LIMIT 1 2", "LIMIT 0 -1"]),
                       max_size=3, unique=True)
COMMAND = st.one_of(
    st.builds(lambda k, f, p: _join("ZADD", k, f, p), _KEY, _ZADD_FLAGS, _pairs(3)),
    st.builds(lambda k, s, m: _join("ZINCRBY", k, s, m), _KEY, _SCORE, _MEMBER),
    st.builds(lambda k, ms: _join("ZREM", k, ms), _KEY, st.lists(_MEMBER, min_size=1, max_size=3)),
    st.builds(lambda c, k, m: _join(c, k, m), st.sampled_from(["ZSCORE", "ZRANK", "ZREVRANK"]),
              _KEY, _MEMBER),
    st.builds(lambda k: _join("ZCARD", k), _KEY),
    st.builds(lambda c, k, n: _join(c, k, n), st.sampled_from(["ZPOPMIN", "ZPOPMAX"]), _KEY,
              st.sampled_from([[], ["0"], ["1"], ["2"], ["9"]])),
    st.builds(lambda k, a, b, o: _join("ZRANGE", k, a, b, [x for x in o if "LIMIT" not in x]),
              _KEY, _INDEX, _INDEX, _RANGE_OPTS),
    st.builds(lambda k, a, b, o: _join("ZRANGE", k, a, b, "BYSCORE", o), _KEY, _BOUND, _BOUND,
              _RANGE_OPTS),
    st.builds(lambda c, k, a, b, o: _join(c, k, a, b, [x for x in o if x != "REV"]),
              st.sampled_from(["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]), _KEY, _BOUND, _BOUND,
              _RANGE_OPTS),
    st.builds(lambda k, a, b: _join("ZCOUNT", k, a, b), _KEY, _BOUND, _BOUND),
    st.builds(lambda k, a, b, o: _join("ZRANGE", k, a, b, "BYLEX",
                                       [x for x in o if x != "WITHSCORES"]),
              _KEY, _LEX, _LEX, _RANGE_OPTS),
    st.builds(lambda c, k, ms: _join(c, k, ms),
              st.sampled_from(["SADD", "SREM", "SMISMEMBER"]), _KEY,
              st.lists(_MEMBER, min_size=1, max_size=3)),
    st.builds(lambda c, k: _join(c, k), st.sampled_from(["SCARD", "SMEMBERS", "TYPE", "DEL"]),
              _KEY),
    st.builds(lambda c, ks: _join(c, ks), st.sampled_from(["SUNION", "SINTER", "SDIFF"]),
              st.lists(_KEY, min_size=1, max_size=3)),
    st.builds(lambda k, m: _join("SISMEMBER", k, m), _KEY, _MEMBER),
    st.builds(lambda k: _join("SPOP", k, "9"), _KEY),  # all of it: no randomness
    st.sampled_from(["HELLO 3", "HELLO 2"]).map(lambda line: line + " SETNAME x"),
)


@pytest.mark.real
@settings(max_examples=150, deadline=None)
@given(st.lists(COMMAND, min_size=1, max_size=25))
def test_random_command_sequences_match_redis(resp_port, redis_server, script):
    _same_as_redis(resp_port, redis_server, script)


# ============================================================== redis-benchmark, stock run


def _stock_benchmark(port: int) -> str:
    """``redis-benchmark -q -n 2000`` with no ``-t``: every test it has (Redis 7.0: PING to
    MSET, sets and sorted sets included)."""
    out = subprocess.run([need("redis-benchmark"), "-q", "-n", "2000", "-p", str(port)],
                         capture_output=True, timeout=600)
    assert out.returncode == 0, out.stderr.decode()
    text = re.sub(r"[^\n]*\r", "", out.stdout.decode())  # drop the progress lines
    assert "ERR" not in text and "rror" not in text and not out.stderr, (text, out.stderr)
    return text


STOCK_TESTS = ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP",
               "RPOP", "SADD", "HSET", "SPOP", "ZADD", "ZPOPMIN",
               "LPUSH (needed to benchmark LRANGE)", "LRANGE_100 (first 100 elements)",
               "LRANGE_300 (first 300 elements)", "LRANGE_500 (first 500 elements)",
               "LRANGE_600 (first 600 elements)", "MSET (10 keys)"]


def _every_test_has_a_rate(text: str) -> None:
    rated = re.findall(r"^(.+): [0-9.]+ requests per second", text, re.M)
    assert rated == STOCK_TESTS, text
    assert all(line in ("",) or " requests per second" in line for line in text.splitlines())


@pytest.mark.real
def test_stock_benchmark_reference_redis(redis_server):
    """The test list itself: what redis-server's stock run prints (so a new one is noticed)."""
    _every_test_has_a_rate(_stock_benchmark(redis_server.port))


@pytest.mark.twistd
def test_stock_benchmark_passes_against_the_demo_and_through_its_proxy(twistd):
    rport, hport = free_port(), free_port()
    demo = twistd(["demo", "--redis", rport, "--http", hport, "--color", "never", "--no-web"])
    line = demo.wait_for("resp (internal) listening on 127.0.0.1:")
    internal = int(line.rsplit(":", 1)[1])
    demo.wait_for(f"proxy redis listening on 127.0.0.1:{rport}")
    for port in (internal, rport):
        text = _stock_benchmark(port)
        print(f"\nredis-benchmark -q -n 2000 -p {port}:\n{text}")
        _every_test_has_a_rate(text)
    demo.wait_for("ZPOPMIN myzset -> ")  # the proxy decoded the sorted-set traffic too
    assert demo.terminate() == 0
    assert "Traceback" not in demo.output()


@pytest.mark.real
@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_sets_and_sorted_sets(resp_port, protocol):
    r = redis.Redis(port=resp_port, protocol=protocol, socket_timeout=10)

    def pairs(reply):  # redis-py gives tuples in RESP2, the nested arrays as lists in RESP3
        return [tuple(p) for p in reply]

    try:
        r.flushall()
        assert r.sadd("s", "a", "b", "c") == 3
        assert r.smembers("s") == {b"a", b"b", b"c"}
        assert r.smismember("s", ["a", "z"]) == [1, 0]
        assert r.spop("s", 3) is not None and r.exists("s") == 0
        assert r.zadd("z", {"a": 1.5, "b": 2, "c": 3}) == 3
        assert pairs(r.zrange("z", 0, -1, withscores=True)) == [(b"a", 1.5), (b"b", 2.0),
                                                                (b"c", 3.0)]
        assert r.zrange("z", 0, 0, desc=True) == [b"c"]
        assert r.zrangebyscore("z", "(1.5", "+inf") == [b"b", b"c"]
        assert r.zscore("z", "a") == 1.5 and r.zincrby("z", 1, "a") == 2.5
        assert r.zrank("z", "c") == 2 and r.zcard("z") == 3 and r.zcount("z", 2, 3) == 3
        assert pairs(r.zpopmin("z", 1)) == [(b"b", 2.0)]
        assert pairs(r.zpopmax("z", 2)) == [(b"c", 3.0), (b"a", 2.5)]
        assert r.type("z") == b"none"
    finally:
        r.close()
