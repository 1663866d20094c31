"""The pure command engine: every command, Redis's reply shapes and error texts, expiry with
explicit timestamps, transactions, pub/sub effects, HELLO/AUTH."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playground.codec.values import Error, Map, Push, Set, Simple, Verbatim
from playground.examples.resp.arguments import glob_match, parse_int
from playground.examples.resp.engine import COMMANDS, Engine
from playground.examples.resp.replies import NULL_ARRAY, Close, Deliver, Reply, encode_reply

pytestmark = pytest.mark.pure

OK = Simple(b"OK")


def b(*args) -> list[bytes]:
    return [a if isinstance(a, bytes) else str(a).encode() for a in args]


class Client:
    """One session on an engine, with the clock under the test's control."""

    def __init__(self, engine: Engine, now: float = 1000.0):
        self.engine = engine
        self.now = now
        self.session = engine.connect(now, peer="127.0.0.1:5000", local="127.0.0.1:6380")

    def effects(self, *args, now: float | None = None) -> list:
        return self.engine.execute(self.session, b(*args), self.now if now is None else now)

    def replies(self, *args, **kw) -> list:
        return [e.value for e in self.effects(*args, **kw) if isinstance(e, Reply)]

    def __call__(self, *args, **kw):
        """The single reply to a command."""
        replies = self.replies(*args, **kw)
        assert len(replies) == 1, replies
        return replies[0]

    def wire(self, *args, **kw) -> bytes:
        return b"".join(encode_reply(v, self.session.protocol) for v in self.replies(*args, **kw))


@pytest.fixture
def engine():
    return Engine()


@pytest.fixture
def c(engine):
    return Client(engine)


def err(text: str) -> Error:
    return Error(text.encode())


# ------------------------------------------------------------------ dispatch and errors


def test_unknown_command_text_like_redis(c):
    assert c("FOO", "a", "b") == err(
        "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
    )
    assert c("foo") == err("ERR unknown command 'foo', with args beginning with: ")


def test_unknown_command_args_are_truncated_at_128_bytes(c):
    reply = c("nope", "x" * 300, "y")
    text = reply.value.decode()
    assert text.startswith("ERR unknown command 'nope', with args beginning with: 'xxx")
    assert "y" not in text and len(text) < 220


def test_wrong_arity_texts(c):
    assert c("GET") == err("ERR wrong number of arguments for 'get' command")
    assert c("get", "a", "b") == err("ERR wrong number of arguments for 'get' command")
    assert c("CLIENT") == err("ERR wrong number of arguments for 'client' command")
    assert c("CLIENT", "SETNAME") == err(
        "ERR wrong number of arguments for 'client|setname' command"
    )
    assert c("PING", "a", "b") == err("ERR wrong number of arguments for 'ping' command")
    assert c("MSET", "a") == err("ERR wrong number of arguments for 'mset' command")
    assert c("MSET", "a", "1", "b") == err("ERR wrong number of arguments for 'mset' command")
    assert c("HSET", "h", "a") == err("ERR wrong number of arguments for 'hset' command")


def test_unknown_subcommand(c):
    assert c("CLIENT", "FOO") == err("ERR unknown subcommand 'FOO'. Try CLIENT HELP.")
    assert c("command", "nope") == err("ERR unknown subcommand 'nope'. Try COMMAND HELP.")


def test_empty_command_does_nothing(c):
    assert c.engine.execute(c.session, [], 0.0) == []


def test_commands_are_case_insensitive(c):
    assert c("sEt", "k", "v") == OK
    assert c("GeT", "k") == b"v"


# ------------------------------------------------------------------ connection commands


def test_ping_echo_time(c):
    assert c("PING") == Simple(b"PONG")
    assert c("PING", "hi") == b"hi"
    assert c("ECHO", "x y") == b"x y"
    assert c("TIME", now=1234.5678905) == [b"1234", b"567890"] or c("TIME", now=1234.5678905) == [
        b"1234",
        b"567891",
    ]
    assert c("TIME", now=7.25) == [b"7", b"250000"]


def test_quit_replies_ok_then_closes(c):
    effects = c.effects("QUIT")
    assert effects == [Reply(OK), Close("QUIT")]


def test_select_only_db_zero(c):
    assert c("SELECT", "0") == OK
    assert c("SELECT", "1") == err("ERR DB index is out of range")
    assert c("SELECT", "x") == err("ERR value is not an integer or out of range")


def test_client_subcommands(c):
    assert c("CLIENT", "GETNAME") is None
    assert c("CLIENT", "SETNAME", "worker-1") == OK
    assert c("CLIENT", "GETNAME") == b"worker-1"
    assert c("CLIENT", "SETNAME", "bad name") == err(
        "ERR Client names cannot contain spaces, newlines or special characters."
    )
    assert c("CLIENT", "SETNAME", "") == OK
    assert c("CLIENT", "GETNAME") is None
    assert c("CLIENT", "ID") == c.session.id
    assert c("CLIENT", "SETINFO", "LIB-NAME", "redis-py") == OK
    assert c("CLIENT", "SETINFO", "lib-ver", "8.1") == OK
    assert c("CLIENT", "SETINFO", "color", "red") == err("ERR Unrecognized option 'color'")
    info = c("CLIENT", "INFO")
    assert isinstance(info, Verbatim) and info.format == b"txt"
    line = info.text.decode()
    assert line.endswith("\n")
    fields = dict(kv.split("=", 1) for kv in line.split())
    assert fields["id"] == str(c.session.id)
    assert fields["addr"] == "127.0.0.1:5000"
    assert fields["lib-name"] == "redis-py" and fields["lib-ver"] == "8.1"
    assert fields["resp"] == "2" and fields["cmd"] == "client|info"
    other = Client(c.engine)
    listing = c("CLIENT", "LIST").text.decode().splitlines()
    assert len(listing) == 2 and listing[1].startswith(f"id={other.session.id} ")
    assert isinstance(c("CLIENT", "HELP"), list)


def test_client_info_is_a_bulk_string_in_resp2(c):
    assert c.wire("CLIENT", "INFO").startswith(b"$")
    c("HELLO", "3")
    assert c.wire("CLIENT", "INFO").startswith(b"=")


def test_info_sections(c):
    c("SET", "a", "1")
    c("SET", "b", "2", "EX", "100")
    text = c("INFO").text.decode()
    assert "# Server\r\n" in text and "redis_version:" in text
    assert "connected_clients:1\r\n" in text
    assert "db0:keys=2,expires=1,avg_ttl=0" in text
    only = c("INFO", "keyspace").text.decode()
    assert only == "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n"
    assert c("INFO", "nosuchsection").text == b""


def test_dbsize_flushdb_flushall(c):
    c("MSET", "a", "1", "b", "2")
    assert c("DBSIZE") == 2
    assert c("FLUSHDB") == OK
    assert c("DBSIZE") == 0
    c("SET", "a", "1")
    assert c("FLUSHALL", "ASYNC") == OK
    assert c("DBSIZE") == 0
    assert c("FLUSHALL", "later") == err("ERR syntax error")


def test_command_count_list_info_docs(c):
    assert c("COMMAND", "COUNT") == len(COMMANDS)
    names = c("COMMAND", "LIST")
    assert b"get" in names and b"hset" in names and len(names) == len(COMMANDS)
    table = c("COMMAND")
    get = next(entry for entry in table if entry[0] == b"get")
    assert get[1:2] == [2] and get[3:6] == [1, 1, 1]
    assert Simple(b"readonly") in get[2].items
    client = next(entry for entry in table if entry[0] == b"client")
    assert any(sub[0] == b"client|setname" for sub in client[9])
    info = c("COMMAND", "INFO", "set", "nosuch", "client|id")
    assert info[0][0] == b"set" and info[0][1] == -3
    assert info[1] is None and info[2][0] == b"client|id"
    docs = c("COMMAND", "DOCS", "get")
    assert isinstance(docs, Map)
    assert docs.items[0][0] == b"get"
    assert docs.items[0][1].get(b"group") == b"string"
    assert docs.items[0][1].get(b"summary")
    all_docs = c("COMMAND", "DOCS")
    assert len(all_docs.items) == len(COMMANDS)
    assert c.wire("COMMAND", "DOCS", "get").startswith(b"*2\r\n$3\r\nget\r\n*6\r\n")


def test_config_get(c):
    assert c("CONFIG", "GET", "save") == Map(((b"save", b""),))
    assert c("CONFIG", "GET", "appendonly") == Map(((b"appendonly", b"no"),))
    assert c("CONFIG", "GET", "nothing*") == Map(())
    assert c("CONFIG") == err("ERR wrong number of arguments for 'config' command")


# ------------------------------------------------------------------ HELLO, AUTH, RESET


def test_hello_map_like_redis(c):
    reply = c("HELLO", "3")
    assert isinstance(reply, Map)
    assert [k for k, _ in reply.items] == [
        b"server",
        b"version",
        b"proto",
        b"id",
        b"mode",
        b"role",
        b"modules",
    ]
    assert reply.get(b"proto") == 3 and reply.get(b"id") == c.session.id
    assert reply.get(b"mode") == b"standalone" and reply.get(b"modules") == []
    assert c.session.protocol == 3
    assert c.wire("HELLO").startswith(b"%7\r\n")  # HELLO alone keeps the protocol
    assert c("HELLO", "2").get(b"proto") == 2
    assert c.wire("HELLO").startswith(b"*14\r\n")


def test_hello_errors(c):
    assert c("HELLO", "4") == err("NOPROTO unsupported protocol version")
    assert c("HELLO", "x") == err("ERR Protocol version is not an integer or out of range")
    assert c("HELLO", "3", "FOO") == err("ERR Syntax error in HELLO option 'FOO'")
    assert c("HELLO", "3", "AUTH", "default") == err("ERR Syntax error in HELLO option 'AUTH'")
    assert c.session.protocol == 2


def test_hello_setname(c):
    assert c("HELLO", "3", "SETNAME", "me").get(b"proto") == 3
    assert c("CLIENT", "GETNAME") == b"me"


def test_auth_without_password_configured(c):
    assert c("AUTH", "x") == err(
        "ERR AUTH <password> called without any password configured for the default user. "
        "Are you sure your configuration is correct?"
    )
    assert c("AUTH", "default", "anything") == OK
    assert c("AUTH", "alice", "x") == err(
        "WRONGPASS invalid username-password pair or user is disabled."
    )
    assert c("AUTH", "a", "b", "c") == err("ERR syntax error")
    assert c("HELLO", "3", "AUTH", "default", "whatever").get(b"proto") == 3


def test_requirepass_auth_flow():
    engine = Engine(password="s3cret")
    c = Client(engine)
    noauth = err("NOAUTH Authentication required.")
    assert c("PING") == noauth
    assert c("GET", "a") == noauth
    assert c("FOO") == err("ERR unknown command 'FOO', with args beginning with: ")
    assert c("GET") == err("ERR wrong number of arguments for 'get' command")
    assert c("AUTH", "wrong") == err(
        "WRONGPASS invalid username-password pair or user is disabled."
    )
    assert c("AUTH", "default", "wrong") == err(
        "WRONGPASS invalid username-password pair or user is disabled."
    )
    assert c("AUTH", "s3cret") == OK
    assert c("PING") == Simple(b"PONG")
    assert c("RESET") == Simple(b"RESET")
    assert c("PING") == noauth
    assert c("AUTH", "default", "s3cret") == OK
    assert c("PING") == Simple(b"PONG")


def test_hello_with_requirepass():
    engine = Engine(password=b"pw")
    c = Client(engine)
    assert c("HELLO", "3") == err(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
        "HELLO AUTH <user> <pass> option can be used to authenticate the client and "
        "select the RESP protocol version at the same time"
    )
    assert c.session.protocol == 2
    assert c("HELLO", "3", "AUTH", "default", "nope") == err(
        "WRONGPASS invalid username-password pair or user is disabled."
    )
    assert c("HELLO", "3", "AUTH", "default", "pw", "SETNAME", "x").get(b"proto") == 3
    assert c.session.authenticated and c.session.name == b"x"
    assert c("QUIT") == OK  # QUIT needs no auth either
    d = Client(engine)
    assert d.effects("QUIT") == [Reply(OK), Close("QUIT")]


def test_reset_clears_session_state(c):
    c("HELLO", "3", "SETNAME", "n")
    c("SUBSCRIBE", "ch")
    c("MULTI")
    assert c("RESET") == Simple(b"RESET")
    s = c.session
    assert s.protocol == 2 and s.name is None and s.multi is None and not s.channels
    assert c.engine.channels == {}
    assert c("GET", "x") is None


# ------------------------------------------------------------------ strings


def test_get_set_basic(c):
    assert c("GET", "k") is None
    assert c("SET", "k", "v") == OK
    assert c("GET", "k") == b"v"
    assert c("SET", "k", b"\x00\xff\r\n") == OK
    assert c("GET", "k") == b"\x00\xff\r\n"


def test_set_options(c):
    assert c("SET", "k", "1", "NX") == OK
    assert c("SET", "k", "2", "NX") is None
    assert c("SET", "k", "3", "XX") == OK
    assert c("SET", "other", "3", "XX") is None
    assert c("GET", "other") is None
    assert c("SET", "k", "4", "GET") == b"3"
    assert c("SET", "new", "v", "GET") is None
    assert c("SET", "k", "5", "NX", "GET") == b"4"  # condition fails: old value, no write
    assert c("GET", "k") == b"4"


def test_set_syntax_errors(c):
    syntax = err("ERR syntax error")
    assert c("SET", "k", "v", "NX", "XX") == syntax
    assert c("SET", "k", "v", "FOO") == syntax
    assert c("SET", "k", "v", "EX") == syntax
    assert c("SET", "k", "v", "EX", "10", "PX", "100") == syntax
    assert c("SET", "k", "v", "EX", "10", "KEEPTTL") == syntax
    assert c("SET", "k", "v", "EX", "x") == err("ERR value is not an integer or out of range")
    assert c("SET", "k", "v", "EX", "0") == err("ERR invalid expire time in 'set' command")
    assert c("SET", "k", "v", "PX", "-5") == err("ERR invalid expire time in 'set' command")
    assert c("SET", "k", "v", "EX", str(2**62)) == err("ERR invalid expire time in 'set' command")
    assert c("GET", "k") is None


def test_set_expiry_options(c):
    c.now = 100.0
    assert c("SET", "a", "v", "EX", "10") == OK
    assert c("PTTL", "a") == 10_000
    assert c("SET", "b", "v", "PX", "1500") == OK
    assert c("PTTL", "b") == 1500
    assert c("SET", "e", "v", "EXAT", "200") == OK
    assert c("TTL", "e") == 100
    assert c("SET", "p", "v", "PXAT", "100500") == OK
    assert c("PTTL", "p") == 500
    assert c("SET", "a", "w", "KEEPTTL") == OK
    assert c("PTTL", "a") == 10_000
    assert c("SET", "a", "x") == OK  # a plain SET drops the TTL
    assert c("TTL", "a") == -1


def test_set_get_on_wrong_type(c):
    c("RPUSH", "l", "x")
    assert c("SET", "l", "v", "GET") == err(
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    )
    assert c("TYPE", "l") == Simple(b"list")
    assert c("SET", "l", "v") == OK  # plain SET overwrites any type
    assert c("TYPE", "l") == Simple(b"string")


def test_mget_mset_setnx_getdel(c):
    assert c("MSET", "a", "1", "b", "2") == OK
    c("RPUSH", "l", "x")
    assert c("MGET", "a", "nope", "b", "l") == [b"1", None, b"2", None]
    assert c("SETNX", "a", "9") == 0
    assert c("SETNX", "c", "3") == 1
    assert c("GETDEL", "c") == b"3"
    assert c("GETDEL", "c") is None
    assert c("EXISTS", "c") == 0
    assert c("GETDEL", "l") == err(
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    )


def test_incr_family(c):
    assert c("INCR", "n") == 1
    assert c("INCRBY", "n", "10") == 11
    assert c("DECR", "n") == 10
    assert c("DECRBY", "n", "-5") == 15
    assert c("GET", "n") == b"15"
    not_int = err("ERR value is not an integer or out of range")
    assert c("INCRBY", "n", "1.5") == not_int
    assert c("INCRBY", "n", "+1") == not_int
    for bad in ("01", "1.5", " 1", "abc", "", "-0", "99999999999999999999"):
        c("SET", "s", bad)
        assert c("INCR", "s") == not_int, bad
    c("SET", "big", str(2**63 - 1))
    assert c("INCR", "big") == err("ERR increment or decrement would overflow")
    c("SET", "small", str(-(2**63)))
    assert c("DECR", "small") == err("ERR increment or decrement would overflow")
    assert c("DECRBY", "x", str(-(2**63))) == err("ERR decrement would overflow")
    c("RPUSH", "l", "a")
    assert c("INCR", "l") == err(
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    )


def test_incr_keeps_ttl(c):
    c("SET", "n", "1", "EX", "100")
    c("INCR", "n")
    assert c("TTL", "n") == 100


def test_append_strlen(c):
    assert c("APPEND", "s", "ab") == 2
    assert c("APPEND", "s", "cd") == 4
    assert c("GET", "s") == b"abcd"
    assert c("STRLEN", "s") == 4
    assert c("STRLEN", "none") == 0
    c("HSET", "h", "f", "v")
    assert c("STRLEN", "h") == err(
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    )


def test_wrongtype_everywhere(c):
    wrongtype = err("WRONGTYPE Operation against a key holding the wrong kind of value")
    c("SET", "s", "v")
    c("RPUSH", "l", "v")
    c("HSET", "h", "f", "v")
    for cmd in (
        ["GET", "l"],
        ["APPEND", "h", "x"],
        ["INCR", "h"],
        ["LPUSH", "s", "x"],
        ["RPOP", "h"],
        ["LRANGE", "s", "0", "-1"],
        ["LLEN", "h"],
        ["HSET", "l", "f", "v"],
        ["HGET", "s", "f"],
        ["HGETALL", "l"],
        ["HDEL", "s", "f"],
        ["HLEN", "l"],
        ["HEXISTS", "s", "f"],
        ["LPOP", "h", "2"],
    ):
        assert c(*cmd) == wrongtype, cmd


# ------------------------------------------------------------------ keys and expiry


def test_del_exists_type(c):
    c("MSET", "a", "1", "b", "2")
    assert c("EXISTS", "a", "a", "b", "z") == 3
    assert c("DEL", "a", "z", "a") == 1
    assert c("TYPE", "a") == Simple(b"none")
    assert c("TYPE", "b") == Simple(b"string")
    c("HSET", "h", "f", "v")
    assert c("TYPE", "h") == Simple(b"hash")


def test_expire_ttl_with_explicit_clock(c):
    c.now = 1000.0
    c("SET", "k", "v")
    assert c("TTL", "k") == -1
    assert c("TTL", "missing") == -2
    assert c("PTTL", "missing") == -2
    assert c("EXPIRE", "k", "10") == 1
    assert c("EXPIRE", "missing", "10") == 0
    assert c("TTL", "k") == 10
    assert c("TTL", "k", now=1004.4) == 6  # rounded like Redis: (ms + 500) / 1000
    assert c("PTTL", "k", now=1004.4) == 5600
    assert c("GET", "k", now=1010.0) == b"v"  # expired only once now > deadline
    assert c("GET", "k", now=1010.001) is None
    assert c("EXISTS", "k", now=1010.001) == 0
    assert c("TTL", "k", now=1010.001) == -2


def test_pexpire_persist(c):
    c.now = 50.0
    c("SET", "k", "v")
    assert c("PEXPIRE", "k", "250") == 1
    assert c("PTTL", "k") == 250
    assert c("PERSIST", "k") == 1
    assert c("PERSIST", "k") == 0
    assert c("PERSIST", "missing") == 0
    assert c("TTL", "k") == -1
    assert c("GET", "k", now=1e6) == b"v"


def test_expire_zero_or_negative_deletes(c):
    c("SET", "k", "v")
    assert c("EXPIRE", "k", "0") == 1
    assert c("EXISTS", "k") == 0
    c("SET", "k", "v")
    assert c("PEXPIRE", "k", "-100") == 1
    assert c("EXISTS", "k") == 0


def test_expire_options(c):
    c("SET", "k", "v")
    assert c("EXPIRE", "k", "100", "XX") == 0
    assert c("EXPIRE", "k", "100", "GT") == 0  # no TTL counts as infinite
    assert c("EXPIRE", "k", "100", "NX") == 1
    assert c("EXPIRE", "k", "50", "NX") == 0
    assert c("EXPIRE", "k", "50", "GT") == 0
    assert c("EXPIRE", "k", "200", "GT") == 1
    assert c("EXPIRE", "k", "300", "LT") == 0
    assert c("EXPIRE", "k", "20", "LT", "XX") == 1
    assert c("TTL", "k") == 20
    assert c("EXPIRE", "k", "10", "NX", "XX") == err(
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    )
    assert c("EXPIRE", "k", "10", "GT", "LT") == err(
        "ERR GT and LT options at the same time are not compatible"
    )
    assert c("EXPIRE", "k", "10", "FOO") == err("ERR Unsupported option FOO")
    assert c("EXPIRE", "k", "x") == err("ERR value is not an integer or out of range")
    assert c("EXPIRE", "k", "99999999999999999") == err(
        "ERR invalid expire time in 'expire' command"
    )
    assert c("PEXPIRE", "k", str(2**63 - 1)) == err("ERR invalid expire time in 'pexpire' command")


def test_sweep_removes_expired_keys_without_access(engine, c):
    c.now = 10.0
    for i in range(100):
        c("SET", f"k{i}", "v", "PX", str(100 + i * 10))
    c("SET", "forever", "v")
    c("SET", "moved", "v", "PX", "50")
    c("PEXPIRE", "moved", "50000")  # the first deadline is stale now
    assert engine.sweep(10.0) == 0
    assert engine.sweep(10.6) == 50  # deadlines 10.1 .. 10.59 have passed
    assert len(engine.keyspace.data) == 52
    assert engine.sweep(20.0, limit=20) == 20  # bounded work per sweep
    assert engine.sweep(20.0) == 30
    assert sorted(engine.keyspace.data) == [b"forever", b"moved"]
    assert engine.sweep(100.0) == 1
    assert engine.keyspace.expired == 101
    assert c("INFO", "stats").text.count(b"expired_keys:101") == 1


def test_sweep_heap_stays_bounded(engine, c):
    c("SET", "k", "v")
    for i in range(5000):
        c("EXPIRE", "k", str(1000 + i))
    assert len(engine.keyspace._heap) <= 4 * 1024 + 4


def test_rename(c):
    c.now = 0.0
    c("SET", "a", "1", "EX", "100")
    c("SET", "b", "2")
    assert c("RENAME", "a", "b") == OK
    assert c("GET", "a") is None
    assert c("GET", "b") == b"1"
    assert c("TTL", "b") == 100
    assert c("RENAME", "nope", "x") == err("ERR no such key")
    assert c("RENAME", "b", "b") == OK
    assert c("GET", "b") == b"1"


def test_keys_glob(c):
    c("MSET", "hello", "1", "hallo", "1", "hxllo", "1", "hllo", "1", "heeeello", "1", "h*llo", "1")
    assert sorted(c("KEYS", "h?llo")) == [b"h*llo", b"hallo", b"hello", b"hxllo"]
    assert sorted(c("KEYS", "h*llo")) == [
        b"h*llo",
        b"hallo",
        b"heeeello",
        b"hello",
        b"hllo",
        b"hxllo",
    ]
    assert sorted(c("KEYS", "h[ae]llo")) == [b"hallo", b"hello"]
    assert sorted(c("KEYS", "h[^e]llo")) == [b"h*llo", b"hallo", b"hxllo"]
    assert sorted(c("KEYS", "h[a-b]llo")) == [b"hallo"]
    assert c("KEYS", "h\\*llo") == [b"h*llo"]
    assert len(c("KEYS", "*")) == 6


@pytest.mark.parametrize(
    "pattern,value,expected",
    [
        (b"*", b"", True),
        (b"a*", b"abc", True),
        (b"a?c", b"abc", True),
        (b"a?c", b"ac", False),
        (b"[z-a]", b"m", True),  # reversed range, as Redis
        (b"[]", b"a", False),
        (b"[^]", b"a", True),
        (b"a[\\]]b", b"a]b", True),
        (b"\\?", b"?", True),
        (b"\\?", b"x", False),
        (b"*.*", b"a.b", True),
        (b"a\nb", b"a\nb", True),
        (b"**a", b"xa", True),
    ],
)
def test_glob_match_cases(pattern, value, expected):
    assert glob_match(pattern, value) is expected


@given(st.binary(max_size=12), st.binary(max_size=12))
def test_glob_never_raises(pattern, value):
    glob_match(pattern, value)


@given(st.binary(max_size=12).filter(lambda p: not any(ch in p for ch in b"*?[]\\")))
def test_glob_literal_matches_itself(pattern):
    assert glob_match(pattern, pattern)


def test_scan_iterates_everything_with_match_and_count(c):
    for i in range(250):
        c("SET", f"user:{i}", "x")
    c("RPUSH", "list:1", "x")
    seen = []
    cursor = b"0"
    for _ in range(1000):
        cursor, keys = c("SCAN", cursor, "COUNT", "7")
        seen += keys
        if cursor == b"0":
            break
    assert sorted(seen) == sorted(c("KEYS", "*"))
    assert len(seen) == 251
    cursor, keys = c("SCAN", "0", "MATCH", "list:*", "COUNT", "1000")
    assert (cursor, keys) == (b"0", [b"list:1"])
    cursor, keys = c("SCAN", "0", "TYPE", "list", "COUNT", "1000")
    assert keys == [b"list:1"]


def test_scan_errors(c):
    assert c("SCAN", "x") == err("ERR invalid cursor")
    assert c("SCAN", "-1") == err("ERR invalid cursor")
    assert c("SCAN", "0", "COUNT", "0") == err("ERR syntax error")
    assert c("SCAN", "0", "COUNT", "x") == err("ERR value is not an integer or out of range")
    assert c("SCAN", "0", "MATCH") == err("ERR syntax error")
    assert c("SCAN", "0", "FOO", "x") == err("ERR syntax error")
    assert c("SCAN", str(2**64 - 1)) == [b"0", []]
    assert c("SCAN", "0" * 30 + "1") == [b"0", []]
    for cursor in ("", str(2**64), "9" * 5000, "0x1", "1_0", "٣"):  # 5000 digits: int() raised
        assert c("SCAN", cursor) == err("ERR invalid cursor"), cursor


@settings(max_examples=60, deadline=None)
@given(
    initial=st.integers(min_value=0, max_value=60),
    ops=st.lists(st.tuples(st.sampled_from(["add", "del"]), st.integers(0, 120)), max_size=80),
    count=st.integers(min_value=1, max_value=15),
)
def test_scan_guarantee_under_concurrent_changes(initial, ops, count):
    """A key present for the whole iteration is returned exactly once. (A key deleted and added
    again during the iteration may come back twice: Redis allows duplicates too.)"""
    c = Client(Engine())
    for i in range(initial):
        c("SET", f"k{i}", "v")
    always = {f"k{i}".encode() for i in range(initial)} - {
        f"k{n}".encode() for op, n in ops if op == "del"
    }
    seen = []
    cursor = b"0"
    ops = list(ops)
    for _ in range(10_000):
        cursor, keys = c("SCAN", cursor, "COUNT", str(count))
        seen += keys
        for _ in range(3):
            if ops:
                op, n = ops.pop(0)
                c("SET" if op == "add" else "DEL", f"k{n}", *(["v"] if op == "add" else []))
        if cursor == b"0":
            break
    assert always <= set(seen)
    assert all(seen.count(k) == 1 for k in always)


# ------------------------------------------------------------------ lists


def test_list_push_pop_range(c):
    assert c("RPUSH", "l", "a", "b", "c") == 3
    assert c("LPUSH", "l", "x", "y") == 5  # y x a b c
    assert c("LRANGE", "l", "0", "-1") == [b"y", b"x", b"a", b"b", b"c"]
    assert c("LRANGE", "l", "1", "2") == [b"x", b"a"]
    assert c("LRANGE", "l", "-2", "-1") == [b"b", b"c"]
    assert c("LRANGE", "l", "-100", "100") == [b"y", b"x", b"a", b"b", b"c"]
    assert c("LRANGE", "l", "3", "1") == []
    assert c("LRANGE", "l", "5", "10") == []
    assert c("LRANGE", "l", "4", "4") == [b"c"]
    assert c("LRANGE", "nope", "0", "-1") == []
    assert c("LRANGE", "l", "a", "1") == err("ERR value is not an integer or out of range")
    assert c("LLEN", "l") == 5
    assert c("LPOP", "l") == b"y"
    assert c("RPOP", "l") == b"c"
    assert c("LPOP", "l", "2") == [b"x", b"a"]
    assert c("RPOP", "l", "5") == [b"b"]
    assert c("EXISTS", "l") == 0  # an emptied list is gone
    assert c("LPOP", "l") is None
    assert c("LLEN", "l") == 0


def test_pop_with_count_edges(c):
    assert c("LPOP", "nokey", "2") is NULL_ARRAY
    assert c.wire("LPOP", "nokey", "2") == b"*-1\r\n"
    assert c.wire("LPOP", "nokey") == b"$-1\r\n"
    c("RPUSH", "l", "a")
    assert c("LPOP", "l", "0") == []
    assert c("LPOP", "l", "-1") == err("ERR value is out of range, must be positive")
    assert c("LPOP", "l", "x") == err("ERR value is out of range, must be positive")
    assert c("LPOP", "l", "1", "2") == err("ERR wrong number of arguments for 'lpop' command")
    c("HELLO", "3")
    assert c.wire("RPOP", "nokey", "2") == b"_\r\n"


def test_lrange_from_the_far_end_of_a_long_list(c):
    c("RPUSH", "l", *[str(i) for i in range(1000)])
    assert c("LRANGE", "l", "990", "995") == [str(i).encode() for i in range(990, 996)]
    assert c("LRANGE", "l", "-3", "-1") == [b"997", b"998", b"999"]
    assert c("LRANGE", "l", "499", "501") == [b"499", b"500", b"501"]


# ------------------------------------------------------------------ hashes


def test_hash_commands(c):
    assert c("HSET", "h", "a", "1", "b", "2") == 2
    assert c("HSET", "h", "a", "9", "c", "3") == 1
    assert c("HGET", "h", "a") == b"9"
    assert c("HGET", "h", "zz") is None
    assert c("HGET", "nope", "a") is None
    assert c("HLEN", "h") == 3
    assert c("HEXISTS", "h", "b") == 1
    assert c("HEXISTS", "h", "zz") == 0
    assert c("HGETALL", "h") == Map(((b"a", b"9"), (b"b", b"2"), (b"c", b"3")))
    assert c.wire("HGETALL", "h").startswith(b"*6\r\n")
    assert c("HDEL", "h", "a", "zz") == 1
    assert c("HDEL", "nope", "a") == 0
    assert c("HDEL", "h", "b", "c") == 2
    assert c("EXISTS", "h") == 0
    assert c("HGETALL", "h") == Map(())
    c("HELLO", "3")
    c("HSET", "h", "f", "v")
    assert c.wire("HGETALL", "h") == b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"


# ------------------------------------------------------------------ pub/sub


def test_subscribe_publish_resp2(engine):
    sub, pub = Client(engine), Client(engine)
    assert sub.replies("SUBSCRIBE", "news", "sport") == [
        [b"subscribe", b"news", 1],
        [b"subscribe", b"sport", 2],
    ]
    effects = pub.effects("PUBLISH", "news", "hello")
    assert effects == [Deliver(sub.session.id, [b"message", b"news", b"hello"]), Reply(1)]
    assert pub("PUBLISH", "nobody", "x") == 0


def test_psubscribe_pmessage_and_counts(engine):
    a, b_, pub = Client(engine), Client(engine), Client(engine)
    a("SUBSCRIBE", "news.tech")
    assert a.replies("PSUBSCRIBE", "news.*") == [[b"psubscribe", b"news.*", 2]]
    b_("HELLO", "3")
    b_("PSUBSCRIBE", "n*")
    effects = pub.effects("PUBLISH", "news.tech", "m")
    assert effects == [
        Deliver(a.session.id, [b"message", b"news.tech", b"m"]),
        Deliver(a.session.id, [b"pmessage", b"news.*", b"news.tech", b"m"]),
        Deliver(b_.session.id, Push((b"pmessage", b"n*", b"news.tech", b"m"))),
        Reply(3),
    ]


def test_unsubscribe_variants(engine):
    c = Client(engine)
    assert c.replies("UNSUBSCRIBE") == [[b"unsubscribe", None, 0]]
    assert c.replies("PUNSUBSCRIBE") == [[b"punsubscribe", None, 0]]
    c.replies("SUBSCRIBE", "a", "b")
    c("PSUBSCRIBE", "p*")
    assert c.replies("UNSUBSCRIBE", "a", "zz") == [
        [b"unsubscribe", b"a", 2],
        [b"unsubscribe", b"zz", 2],
    ]
    assert c.replies("UNSUBSCRIBE") == [[b"unsubscribe", b"b", 1]]
    assert c.replies("PUNSUBSCRIBE") == [[b"punsubscribe", b"p*", 0]]
    assert engine.channels == {} and engine.patterns == {}
    assert c("GET", "x") is None  # out of subscribed mode


def test_subscribed_mode_restrictions_resp2(c):
    c("SUBSCRIBE", "ch")
    assert c("GET", "x") == err(
        "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
        "are allowed in this context"
    )
    assert c("CLIENT", "ID") == err(
        "ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
        "RESET are allowed in this context"
    )
    assert c("PING") == [b"pong", b""]
    assert c("PING", "x") == [b"pong", b"x"]
    assert c.replies("PSUBSCRIBE", "p") == [[b"psubscribe", b"p", 2]]
    assert c.effects("QUIT")[-1] == Close("QUIT")


def test_resp3_subscriber_can_run_anything(c):
    c("HELLO", "3")
    assert c.replies("SUBSCRIBE", "ch") == [Push((b"subscribe", b"ch", 1))]
    assert c.wire("SUBSCRIBE", "ch2") == b">3\r\n$9\r\nsubscribe\r\n$3\r\nch2\r\n:2\r\n"
    assert c("SET", "k", "v") == OK
    assert c("PING") == Simple(b"PONG")
    effects = c.effects("PUBLISH", "ch", "self")  # delivered to itself before the reply
    assert effects == [Deliver(c.session.id, Push((b"message", b"ch", b"self"))), Reply(1)]


def test_disconnect_drops_subscriptions(engine):
    sub, pub = Client(engine), Client(engine)
    sub("SUBSCRIBE", "ch")
    sub("PSUBSCRIBE", "*")
    engine.disconnect(sub.session)
    assert pub("PUBLISH", "ch", "x") == 0
    assert engine.channels == {} and engine.patterns == {}
    assert sub.session.id not in engine.sessions


# ------------------------------------------------------------------ transactions


def test_multi_exec(c):
    assert c("MULTI") == OK
    assert c("SET", "a", "1") == Simple(b"QUEUED")
    assert c("INCR", "a") == Simple(b"QUEUED")
    assert c("RPUSH", "a", "x") == Simple(b"QUEUED")  # fails at EXEC time, not queueing time
    assert c("GET", "a") == Simple(b"QUEUED")
    assert c("EXEC") == [
        OK,
        2,
        err("WRONGTYPE Operation against a key holding the wrong kind of value"),
        b"2",
    ]
    assert c("EXEC") == err("ERR EXEC without MULTI")
    assert c("DISCARD") == err("ERR DISCARD without MULTI")


def test_multi_queueing_errors_abort(c):
    c("MULTI")
    assert c("SET", "a") == err("ERR wrong number of arguments for 'set' command")
    assert c("NOPE") == err("ERR unknown command 'NOPE', with args beginning with: ")
    assert c("SET", "a", "1") == Simple(b"QUEUED")
    assert c("EXEC") == err("EXECABORT Transaction discarded because of previous errors.")
    assert c("GET", "a") is None


def test_multi_nesting_watch_discard(c):
    c("MULTI")
    assert c("MULTI") == err("ERR MULTI calls can not be nested")
    assert c("WATCH", "a") == err("ERR WATCH inside MULTI is not allowed")
    c("SET", "a", "1")
    assert c("DISCARD") == OK
    assert c("GET", "a") is None
    c("MULTI")
    assert c("EXEC") == []  # the nested MULTI did not poison it


def test_multi_exec_nulls_and_resp3(c):
    c("MULTI")
    c("LPOP", "none", "2")
    c("GET", "none")
    assert c.wire("EXEC") == b"*2\r\n*-1\r\n$-1\r\n"
    c("HELLO", "3")
    c("MULTI")
    c("HSET", "h", "f", "v")
    c("HGETALL", "h")
    assert c.wire("EXEC") == b"*2\r\n:1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n"


def test_watch_aborts_on_change(engine):
    a, other = Client(engine), Client(engine)
    a("SET", "k", "1")
    assert a("WATCH", "k") == OK
    other("SET", "k", "2")
    a("MULTI")
    a("INCR", "k")
    assert a("EXEC") is NULL_ARRAY
    assert a("GET", "k") == b"2"
    # Unchanged watched key: EXEC runs.
    a("WATCH", "k")
    a("MULTI")
    a("INCR", "k")
    assert a("EXEC") == [3]
    # UNWATCH forgets.
    a("WATCH", "k")
    other("DEL", "k")
    a("UNWATCH")
    a("MULTI")
    a("INCR", "k")
    assert a("EXEC") == [1]
    assert engine.keyspace._watchers == {}


def test_watch_sees_expiry_and_flush(engine):
    a, other = Client(engine), Client(engine)
    a("SET", "k", "v", "PX", "100")
    a("WATCH", "k")
    engine.sweep(a.now + 1)
    a("MULTI")
    assert a("EXEC") is NULL_ARRAY
    a("WATCH", "j")
    other("FLUSHALL")
    a("MULTI")
    assert a("EXEC") is NULL_ARRAY


def test_quit_and_reset_inside_multi_run_at_once(c):
    c("MULTI")
    assert c.effects("QUIT") == [Reply(OK), Close("QUIT")]
    c("MULTI")
    assert c("RESET") == Simple(b"RESET")
    assert c.session.multi is None


def test_exec_with_publish_delivers(engine):
    sub, c = Client(engine), Client(engine)
    sub("SUBSCRIBE", "ch")
    c("MULTI")
    c("PUBLISH", "ch", "x")
    effects = c.effects("EXEC")
    assert effects == [Deliver(sub.session.id, [b"message", b"ch", b"x"]), Reply([1])]


# ------------------------------------------------------------------ robustness


def test_parse_int_matches_redis_strictness():
    assert parse_int(b"0") == 0
    assert parse_int(b"-12") == -12
    assert parse_int(str(2**63 - 1).encode()) == 2**63 - 1
    assert parse_int(str(-(2**63)).encode()) == -(2**63)
    for bad in (
        b"",
        b"-",
        b"+1",
        b"01",
        b"-0",
        b" 1",
        b"1 ",
        b"1.0",
        str(2**63).encode(),
        b"\xd9\xa1",
    ):
        assert parse_int(bad) is None, bad


@given(st.binary(max_size=24))
def test_parse_int_agrees_with_a_regex(data):
    ok = re.fullmatch(rb"0|-?[1-9][0-9]*", data) is not None and -(2**63) <= int(data) < 2**63
    assert (parse_int(data) is not None) == ok


_NAMES = sorted(COMMANDS) + ["nosuch", "client", "command", "config"]
_ARGS = st.one_of(
    st.sampled_from(
        [
            b"k",
            b"l",
            b"h",
            b"0",
            b"-1",
            b"1",
            b"10",
            b"nx",
            b"xx",
            b"ex",
            b"px",
            b"get",
            b"keepttl",
            b"count",
            b"match",
            b"*",
            b"3",
            b"auth",
            b"default",
            b"setname",
            b"lib-name",
            b"info",
            b"docs",
            b"2",
            b"gt",
            b"lt",
            b"type",
        ]
    ),
    st.binary(max_size=6),
)


_NOW = st.floats(min_value=0, max_value=100)
_COMMAND = st.tuples(st.sampled_from(_NAMES), st.lists(_ARGS, max_size=5), _NOW)
# With a password, random arguments never authenticate: about one command in four is the
# right AUTH, so authenticated sessions are explored too.
_AUTH = st.tuples(st.just("auth"), st.sampled_from([[b"pw"], [b"default", b"pw"]]), _NOW)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 3).flatmap(lambda i: _COMMAND if i else _AUTH), max_size=25),
       st.booleans())
def test_random_commands_never_raise_and_always_encode(script, with_password):
    engine = Engine(password="pw" if with_password else None)
    clients = [Client(engine), Client(engine)]
    for i, (name, args, now) in enumerate(script):
        client = clients[i % 2]
        effects = engine.execute(client.session, [name.encode(), *args], now)
        for effect in effects:
            assert isinstance(effect, Reply | Deliver | Close)
            if isinstance(effect, Reply):
                encode_reply(effect.value, client.session.protocol)
            elif isinstance(effect, Deliver):
                target = engine.sessions[effect.session_id]
                encode_reply(effect.value, target.protocol)
        engine.sweep(now)


def test_set_values_are_binary_safe_via_resp(c):
    blob = bytes(range(256)) * 4
    assert c("SET", b"bin\x00key", blob) == OK
    assert c("GET", b"bin\x00key") == blob
    assert c.wire("GET", b"bin\x00key") == b"$1024\r\n" + blob + b"\r\n"


def test_command_entries_encode_in_both_protocols(c):
    for proto in (2, 3):
        c("HELLO", str(proto))
        wire = c.wire("COMMAND")
        assert wire.startswith(b"*%d\r\n" % len(COMMANDS))
        assert (b"~" in wire) == (proto == 3)
        assert isinstance(c("COMMAND", "INFO", "get")[0][2], Set)
