"""The RESP server: adapter tests on StringTransport + MemoryReactorClock, then real clients
(redis-py RESP2/RESP3, redis-cli, redis-benchmark) against ``twistd -n tcpplay resp``, and a
differential test replaying command scripts against a real redis-server."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import time

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python import failure, usage

from playground.codec.encoder import encode_command
from playground.codec.parser import RespParser
from playground.codec.values import Error, Map, ProtocolError
from playground.common.limits import Refusal
from playground.examples.resp import server as respserver
from playground.examples.resp.server import ExpirySweep, RespFactory, RespService
from tests.support.net import free_port, resp_exchange
from tests.support.processes import Twistd, need, start_redis, stop_process
from tests.support.waiting import wait_until

PEER = IPv4Address("TCP", "127.0.0.1", 40001)


# ============================================================== adapter (no sockets)


def make_factory(**kw):
    clock = MemoryReactorClock()
    clock.advance(1000)
    return RespFactory(reactor=clock, **kw), clock


def connect(factory, port=40001):
    addr = IPv4Address("TCP", "127.0.0.1", port)
    proto = factory.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr)
    writes = []
    original = transport.write

    def write(data):
        writes.append(data)
        original(data)

    transport.write = write
    proto.makeConnection(transport)
    return proto, transport, writes


def close(proto, exc=None):
    proto.connectionLost(failure.Failure(exc or error.ConnectionDone()))


def cmds(*commands) -> bytes:
    return b"".join(encode_command(*c) for c in commands)


@pytest.mark.memory
def test_pipelined_commands_get_one_write():
    factory, _ = make_factory()
    proto, transport, writes = connect(factory)
    proto.dataReceived(cmds(("SET", "a", "1"), ("INCR", "a"), ("GET", "a"), ("PING",)))
    assert writes == [b"+OK\r\n:2\r\n$1\r\n2\r\n+PONG\r\n"]
    assert proto.commands == 4


@pytest.mark.memory
def test_requests_split_anywhere_give_the_same_replies():
    data = cmds(("SET", "k", "v" * 100), ("GET", "k"), ("DEL", "k")) + b"PING\r\nECHO x\r\n"
    factory, _ = make_factory()
    proto, transport, _ = connect(factory)
    for i in range(len(data)):
        proto.dataReceived(data[i : i + 1])
    one_by_one = transport.value()
    factory, _ = make_factory()
    proto, transport, _ = connect(factory)
    proto.dataReceived(data)
    assert transport.value() == one_by_one
    assert one_by_one == b"+OK\r\n$100\r\n" + b"v" * 100 + b"\r\n:1\r\n+PONG\r\n$1\r\nx\r\n"


@pytest.mark.memory
def test_half_close_still_gets_every_reply():
    """``printf 'PING\\r\\n' | nc -N``: the FIN comes right after the request; the replies queued
    for it go out before the close, as with redis-server."""
    factory, clock = make_factory()
    proto, transport, writes = connect(factory)
    proto.dataReceived(b"PING\r\nECHO hi\r\n")
    proto.readConnectionLost()
    assert transport.value() == b"+PONG\r\n$2\r\nhi\r\n"
    assert transport.disconnecting and not transport.disconnected  # a clean close, not an abort
    assert proto.close_reason == "client finished sending (half-close)"


@pytest.mark.memory
def test_replies_of_one_read_are_made_a_slice_at_a_time():
    # 20 pipelined GETs of a 300 kB value in one read: all 6 MB of replies were made and
    # written at once (one 64 KiB read of GETs of a 1 MB value: 7 GB)
    factory, clock = make_factory()
    proto, transport, writes = connect(factory)
    other, other_transport, _ = connect(factory, 40002)
    value = b"v" * 300_000
    proto.dataReceived(cmds(("SET", "big", value)))
    del writes[:]
    proto.dataReceived(cmds(*[("GET", "big")] * 20))
    assert len(writes) == 1 and len(writes[0]) <= (1 << 20) + len(value) + 20  # REPLY_SLICE
    assert transport.producerState == "paused"  # no more reading while requests are held
    other.dataReceived(b"PING\r\n")  # another client is served meanwhile
    assert other_transport.value() == b"+PONG\r\n"
    for _ in range(20):
        clock.advance(0)
    assert b"".join(writes) == (b"$300000\r\n" + value + b"\r\n") * 20
    assert transport.producerState == "producing" and proto.commands == 21


@pytest.mark.memory
def test_held_requests_wait_for_the_transport_to_drain():
    factory, clock = make_factory()
    proto, transport, writes = connect(factory)
    proto.dataReceived(cmds(("SET", "big", "v" * 600_000)))
    proto.dataReceived(cmds(*[("GET", "big")] * 5) + b"PING\r\n")
    proto.pauseProducing()  # the write filled the transport's buffer
    clock.advance(0)
    assert len(writes) == 2 and not writes[1].endswith(b"+PONG\r\n")  # the rest waits
    proto.resumeProducing()
    clock.advance(0)
    assert b"".join(writes) == b"+OK\r\n" + (b"$600000\r\n" + b"v" * 600_000 + b"\r\n") * 5 \
        + b"+PONG\r\n"
    assert transport.producerState == "producing"


@pytest.mark.twistd
def test_half_close_with_nc_answers_every_time(resp_port):
    nc = need("nc")
    for _ in range(20):
        out = subprocess.run(f"printf 'PING\\r\\n' | {nc} -N 127.0.0.1 {resp_port}", shell=True,
                             capture_output=True, timeout=20)
        assert out.stdout == b"+PONG\r\n"


@pytest.mark.memory
def test_inline_commands_like_nc():
    factory, _ = make_factory()
    proto, transport, _ = connect(factory)
    proto.dataReceived(b'set greeting "hello world"\nget greeting\r\n\r\n')
    assert transport.value() == b"+OK\r\n$11\r\nhello world\r\n"


@pytest.mark.memory
def test_empty_multibulk_is_ignored():
    factory, _ = make_factory()
    proto, transport, _ = connect(factory)
    proto.dataReceived(b"*0\r\n*-1\r\nPING\r\n")
    assert transport.value() == b"+PONG\r\n"


@pytest.mark.memory
@pytest.mark.parametrize(
    "data,reply",
    [
        (b"*1\r\n$20\r\n" + b"x" * 20 + b"\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*x\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n:1\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
        (b"*1\r\n*1\r\n$1\r\na\r\n", b"-ERR Protocol error: expected '$', got '*'\r\n"),
        (b'PING "a\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n"),
        (b"x" * 200, b"-ERR Protocol error: too big inline request\r\n"),
    ],
)
def test_protocol_errors_reply_like_redis_and_close(data, reply, logged):
    factory, _ = make_factory(max_bulk=10, max_inline=100)
    proto, transport, _ = connect(factory)
    proto.dataReceived(b"PING\r\n" + data + b"PING\r\n")
    assert transport.value() == b"+PONG\r\n" + reply
    assert transport.disconnecting
    assert transport.producer is None  # unregistered, so loseConnection is not held up
    proto.dataReceived(b"PING\r\n")  # ignored once closing
    assert transport.value() == b"+PONG\r\n" + reply
    close(proto)
    closes = [e for e in logged if (e.get("log_format") or "").startswith("resp close")]
    assert "protocol error" in closes[0]["reason"]


_FRAGMENTS = st.sampled_from([
    b"*", b"$", b"\r\n", b"\n", b"1", b"3", b"-1", b"0", b"PING", b"SET", b"GET", b"k", b"v",
    b"SUBSCRIBE", b"PUBLISH", b"HELLO", b"MULTI", b"EXEC", b"QUIT", b'"', b"'", b" ", b":", b"%",
])


@pytest.mark.memory
@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_FRAGMENTS, st.binary(max_size=8)), max_size=40),
       st.integers(min_value=1, max_value=16))
def test_random_input_never_raises(fragments, step):
    """Any bytes, any split: replies or a protocol error and a close, never an exception."""
    factory, _ = make_factory(max_bulk=64, max_inline=64)
    proto, transport, _ = connect(factory)
    listener, listener_t, _ = connect(factory, 2)
    listener.dataReceived(cmds(("HELLO", "3"), ("PSUBSCRIBE", "*")))
    data = b"".join(fragments)
    for i in range(0, len(data), step):
        proto.dataReceived(data[i : i + step])
    for written in (transport.value(), listener_t.value()):  # whatever came back is RESP
        assert not [v for v in RespParser().feed(written) if isinstance(v, ProtocolError)]
    close(proto)
    assert factory.limits.open == 1


@pytest.mark.memory
def test_default_limits_are_redis_like():
    factory, _ = make_factory()
    assert factory.max_bulk == 512 * 1024 * 1024
    assert factory.max_inline == 64 * 1024
    proto, transport, _ = connect(factory)
    proto.dataReceived(b"x" * (64 * 1024 + 10))
    assert transport.value() == b"-ERR Protocol error: too big inline request\r\n"
    proto, transport, _ = connect(factory)
    proto.dataReceived(b"*1\r\n$536870913\r\n")
    assert transport.value() == b"-ERR Protocol error: invalid bulk length\r\n"
    proto, transport, _ = connect(factory)
    proto.dataReceived(b"*1\r\n$536870912\r\n")  # exactly the limit is accepted (and awaited)
    assert transport.value() == b"" and not transport.disconnecting


@pytest.mark.memory
def test_query_buffer_limit_closes():
    factory, _ = make_factory(max_query=1000)
    proto, transport, _ = connect(factory)
    proto.dataReceived(b"*100000\r\n" + b"$1\r\na\r\n" * 100)
    assert not transport.disconnecting
    proto.dataReceived(b"$1\r\na\r\n" * 100)
    assert transport.disconnecting
    assert proto.close_reason == "query buffer over 1000 bytes"


@pytest.mark.memory
def test_quit_stops_the_pipeline_and_closes():
    factory, _ = make_factory()
    proto, transport, _ = connect(factory)
    proto.dataReceived(cmds(("SET", "a", "1"), ("QUIT",), ("SET", "b", "2")))
    assert transport.value() == b"+OK\r\n+OK\r\n"
    assert transport.disconnecting
    assert factory.engine.keyspace.data == {b"a": b"1"}


@pytest.mark.memory
def test_hello3_switches_encoding_mid_pipeline():
    factory, _ = make_factory()
    proto, transport, _ = connect(factory)
    proto.dataReceived(cmds(("GET", "none"), ("HELLO", "3"), ("GET", "none")))
    value = transport.value()
    assert value.startswith(b"$-1\r\n%7\r\n")
    assert value.endswith(b"*0\r\n_\r\n")


@pytest.mark.memory
def test_max_clients_refusal_text():
    factory, _ = make_factory(max_connections=1)
    first, _, _ = connect(factory)
    refused = factory.buildProtocol(PEER)
    assert isinstance(refused, Refusal)
    transport = StringTransport()
    refused.makeConnection(transport)
    assert transport.value() == b"-ERR max number of clients reached\r\n"
    assert transport.disconnecting
    close(first)
    again, transport, _ = connect(factory)
    again.dataReceived(b"PING\r\n")
    assert transport.value() == b"+PONG\r\n"


@pytest.mark.memory
def test_pubsub_between_connections():
    factory, _ = make_factory()
    sub, sub_t, _ = connect(factory, 1)
    sub3, sub3_t, _ = connect(factory, 2)
    pub, pub_t, _ = connect(factory, 3)
    sub.dataReceived(cmds(("SUBSCRIBE", "news")))
    sub3.dataReceived(cmds(("HELLO", "3"), ("PSUBSCRIBE", "n*")))
    sub_t.clear()
    sub3_t.clear()
    pub.dataReceived(cmds(("PUBLISH", "news", "one"), ("PUBLISH", "news", "two")))
    assert pub_t.value() == b":2\r\n:2\r\n"
    assert sub_t.value() == (
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$3\r\none\r\n"
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$3\r\ntwo\r\n"
    )
    assert sub3_t.value() == (
        b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$3\r\none\r\n"
        b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$3\r\ntwo\r\n"
    )
    close(sub)
    pub_t.clear()
    pub.dataReceived(cmds(("PUBLISH", "news", "x")))
    assert pub_t.value() == b":1\r\n"


@pytest.mark.memory
def test_slow_subscriber_is_dropped_past_its_backlog():
    factory, _ = make_factory(pubsub_backlog=1000)
    sub, sub_t, _ = connect(factory, 1)
    pub, _, _ = connect(factory, 2)
    sub.dataReceived(cmds(("SUBSCRIBE", "ch")))
    assert sub_t.producer is sub and sub_t.streaming
    sub.pauseProducing()  # what the transport does when its write buffer is full
    assert sub_t.producerState == "paused"
    pub.dataReceived(cmds(("PUBLISH", "ch", "x" * 600)))
    assert not sub_t.disconnecting
    pub.dataReceived(cmds(("PUBLISH", "ch", "x" * 600)))
    assert sub_t.disconnecting
    assert sub.close_reason == "pub/sub backlog over 1000 bytes"


@pytest.mark.memory
def test_backlog_resets_when_the_subscriber_drains():
    factory, _ = make_factory(pubsub_backlog=1000)
    sub, sub_t, _ = connect(factory, 1)
    pub, _, _ = connect(factory, 2)
    sub.dataReceived(cmds(("SUBSCRIBE", "ch")))
    for _ in range(5):
        sub.pauseProducing()
        pub.dataReceived(cmds(("PUBLISH", "ch", "x" * 600)))
        sub.resumeProducing()
    assert not sub_t.disconnecting


@pytest.mark.memory
def test_connection_lost_releases_everything(logged):
    factory, clock = make_factory(max_connections=5)
    proto, transport, _ = connect(factory)
    proto.dataReceived(cmds(("SUBSCRIBE", "ch"), ("PSUBSCRIBE", "*")))
    assert factory.limits.open == 1 and len(factory.clients) == 1
    clock.advance(2.5)
    close(proto)
    assert factory.limits.open == 0 and factory.clients == {}
    assert factory.engine.sessions == {} and factory.engine.channels == {}
    opens = [e for e in logged if e.get("log_format", "").startswith("resp open")]
    closes = [e for e in logged if e.get("log_format", "").startswith("resp close")]
    assert opens[0]["peer"] == "127.0.0.1:40001"
    c = closes[0]
    assert c["commands"] == 2 and c["duration"] == pytest.approx(2.5)
    assert c["reason"] == "client closed" and c["bytes_in"] > 0 and c["bytes_out"] > 0


@pytest.mark.memory
def test_idle_timeout_spares_subscribers():
    factory, clock = make_factory(idle_timeout=10)
    idle, idle_t, _ = connect(factory, 1)
    sub, sub_t, _ = connect(factory, 2)
    sub.dataReceived(cmds(("SUBSCRIBE", "ch")))
    clock.advance(5)
    idle.dataReceived(b"PING\r\n")
    clock.advance(9)
    assert not idle_t.disconnecting
    clock.advance(2)
    assert idle_t.disconnecting and idle.close_reason == "idle timeout (10s)"
    assert not sub_t.disconnecting


@pytest.mark.memory
def test_expiry_uses_the_injected_clock_and_sweep():
    factory, clock = make_factory()
    sweep = ExpirySweep(factory, interval=0.1)
    sweep.startService()
    proto, transport, _ = connect(factory)
    proto.dataReceived(cmds(("SET", "a", "1", "PX", "250"), ("SET", "b", "2", "EX", "100")))
    clock.advance(0.2)
    assert b"a" in factory.engine.keyspace.data
    for _ in range(3):
        clock.advance(0.1)
    assert b"a" not in factory.engine.keyspace.data  # swept, never read
    assert b"b" in factory.engine.keyspace.data
    transport.clear()
    proto.dataReceived(cmds(("TTL", "b")))
    assert transport.value() == b":100\r\n"
    sweep.stopService()
    assert not clock.getDelayedCalls()


@pytest.mark.memory
def test_requirepass_over_the_adapter():
    factory, _ = make_factory(password="pw")
    proto, transport, _ = connect(factory)
    proto.dataReceived(b"GET a\r\nAUTH pw\r\nGET a\r\n")
    assert transport.value() == b"-NOAUTH Authentication required.\r\n+OK\r\n$-1\r\n"


@pytest.mark.memory
def test_unauthenticated_clients_may_only_send_small_requests():
    factory, _ = make_factory(password="pw")
    proto, transport, _ = connect(factory)
    proto.dataReceived(b"*1\r\n$20000\r\n")
    assert transport.value() == b"-ERR Protocol error: unauthenticated bulk length\r\n"
    assert transport.disconnecting
    proto, transport, _ = connect(factory)
    proto.dataReceived(cmds(["DEL"] + ["k"] * 10))
    assert transport.value() == b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    proto, transport, _ = connect(factory)
    proto.dataReceived(cmds(("AUTH", "pw"), ["DEL"] + ["k"] * 10))
    proto.dataReceived(cmds(("SET", "big", "x" * 20000), ("STRLEN", "big")))
    assert transport.value() == b"+OK\r\n:0\r\n+OK\r\n:20000\r\n"
    proto.dataReceived(cmds(("RESET",), ("SET", "big", "y" * 20000)))  # RESET forgets AUTH
    assert transport.value().endswith(
        b"+RESET\r\n-ERR Protocol error: unauthenticated bulk length\r\n")


@pytest.mark.memory
def test_options_and_make_service():
    opts = respserver.Options()
    opts.parseOptions([])
    assert opts["listen"].startswith("tcp:6380:")
    opts = respserver.Options()
    opts.parseOptions(
        [
            "--listen",
            "0",
            "--requirepass",
            "pw",
            "--max-bulk",
            "1m",
            "--max-clients",
            "3",
            "--max-inline",
            "2k",
            "--sweep-interval",
            "0.5",
        ]
    )
    assert opts["max-bulk"] == 1024 * 1024 and opts["max-inline"] == 2048
    assert opts["max-connections"] == 3
    clock = MemoryReactorClock()
    svc = respserver.make_service(opts, reactor=clock)
    assert isinstance(svc, RespService)
    factory = svc.factory
    assert factory.engine.password == b"pw" and factory.max_bulk == 1024 * 1024
    assert factory.limits.max_connections == 3
    svc.startService()
    assert len(clock.tcpServers) == 1
    assert clock.tcpServers[0][1] is factory
    assert any(call.getTime() == pytest.approx(0.5) for call in clock.getDelayedCalls())
    svc.stopService()


@pytest.mark.pure
@pytest.mark.parametrize(
    "args",
    [
        ["--max-bulk", "0"],
        ["--max-bulk", "lots"],
        ["--max-clients", "-1"],
        ["--requirepass", ""],
        ["--sweep-interval", "x"],
    ],
)
def test_bad_options_name_the_flag(args):
    with pytest.raises(usage.UsageError, match=args[0]):
        respserver.Options().parseOptions(args)


@pytest.mark.pure
def test_subcommand_is_registered():
    from playground import tap

    assert (
        "resp",
        "playground.examples.resp.server",
        "Small in-memory Redis-protocol (RESP2/RESP3) server",
    ) in tap.SUBCOMMANDS


# ============================================================== real servers and clients


@pytest.fixture(scope="module")
def resp_port():
    """``twistd -n tcpplay resp`` on a free port for the whole module; exits cleanly."""
    port = free_port()
    server = Twistd(["resp", "--listen", str(port)])
    server.wait_for("resp listening on")
    yield port
    assert server.terminate() == 0  # SIGTERM is an orderly stop
    out = server.output()
    assert "resp stopped listening" in out and "Traceback" not in out


@pytest.fixture(scope="module")
def resp_pass_port():
    port = free_port()
    server = Twistd(
        ["resp", "--listen", str(port), "--requirepass", "s3cret", "--max-clients", "3"]
    )
    server.wait_for("resp listening on")
    yield port
    assert server.terminate() == 0
    assert "Traceback" not in server.output()


@pytest.fixture
def r(resp_port):
    client = redis.Redis(port=resp_port, socket_timeout=10)
    client.flushall()
    yield client
    client.close()


@pytest.mark.real
def test_redis_py_resp2_basics(r):
    assert r.ping() is True
    assert r.echo("hi") == b"hi"
    assert r.set("s", "v") is True
    assert r.get("s") == b"v"
    assert r.set("s", "w", nx=True) is None
    assert r.set("s", "x", xx=True, get=True) == b"v"
    assert r.set("t", 1, ex=100) is True
    assert r.ttl("t") == 100 and 99_000 < r.pttl("t") <= 100_000
    assert r.incr("t") == 2 and r.incrby("t", 5) == 7 and r.decr("t") == 6
    assert r.decrby("t", 2) == 4
    assert r.mset({"a": 1, "b": 2}) is True
    assert r.mget("a", "b", "zz") == [b"1", b"2", None]
    assert r.setnx("a", 9) is False
    assert r.getdel("a") == b"1"
    assert r.append("b", "x") == 2 and r.strlen("b") == 2
    assert r.exists("b", "s", "zz") == 2
    assert r.expire("b", 50) is True and r.persist("b") is True and r.ttl("b") == -1
    assert r.pexpire("b", 50_000) is True
    assert r.type("b") == b"string"
    assert r.rename("b", "c") is True and r.ttl("c") == 50
    assert sorted(r.keys("*")) == [b"c", b"s", b"t"]
    assert r.delete("c", "zz") == 1
    assert r.dbsize() == 2
    assert r.lpush("l", "a", "b") == 2 and r.rpush("l", "c") == 3
    assert r.lrange("l", 0, -1) == [b"b", b"a", b"c"]
    assert r.llen("l") == 3
    assert r.lpop("l") == b"b" and r.rpop("l", 2) == [b"c", b"a"]
    assert r.lpop("l", 2) is None
    assert r.hset("h", mapping={"f1": "v1", "f2": "v2"}) == 2
    assert r.hget("h", "f1") == b"v1" and r.hlen("h") == 2 and r.hexists("h", "f2")
    assert r.hgetall("h") == {b"f1": b"v1", b"f2": b"v2"}
    assert r.hdel("h", "f1") == 1
    assert r.client_setname("tester") is True and r.client_getname() == "tester"
    assert isinstance(r.client_id(), int)
    assert r.info()["redis_mode"] == "standalone"
    assert r.info("keyspace")["db0"]["keys"] == 3  # s, t, h: the emptied list is gone
    seconds, micros = r.time()
    assert abs(seconds - time.time()) < 60 and 0 <= micros < 1_000_000
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.get("h")
    with pytest.raises(redis.ResponseError, match="unknown command 'FOO'"):
        r.execute_command("FOO", "bar")


@pytest.mark.real
def test_redis_py_scan_iter(r):
    with r.pipeline(transaction=False) as pipe:
        for i in range(500):
            pipe.set(f"item:{i}", i)
        pipe.set("other", 1)
        pipe.execute()
    found = list(r.scan_iter(match="item:*", count=37))
    assert len(found) == 500 and len(set(found)) == 500


@pytest.mark.real
def test_redis_py_resp3(resp_port):
    r3 = redis.Redis(port=resp_port, protocol=3, socket_timeout=10)
    try:
        assert r3.ping() is True
        r3.hset("h3", mapping={"a": "1", "b": "2"})
        assert r3.hgetall("h3") == {b"a": b"1", b"b": b"2"}
        assert r3.set("k3", "v", px=5000) is True
        assert r3.get("k3") == b"v"
        assert r3.lpop("nokey3", 3) is None
        info = r3.connection_pool.get_connection()
        try:
            assert info.protocol in (3, "3")
        finally:
            r3.connection_pool.release(info)
        assert r3.client_info()["resp"] == "3"
        assert r3.info()["redis_version"]
    finally:
        r3.close()


@pytest.mark.real
def test_redis_py_pipelines(r):
    pipe = r.pipeline(transaction=False)
    for i in range(200):
        pipe.set(f"p{i}", i)
        pipe.get(f"p{i}")
    results = pipe.execute()
    assert results[0::2] == [True] * 200
    assert results[1::2] == [str(i).encode() for i in range(200)]
    with r.pipeline(transaction=True) as tx:
        tx.set("n", 1).incr("n").incrby("n", 10).get("n")
        assert tx.execute() == [True, 2, 12, b"12"]
    with r.pipeline(transaction=True) as tx:
        tx.set("n", "x").incr("n").get("n")
        with pytest.raises(redis.ResponseError, match="not an integer"):
            tx.execute()
    assert r.get("n") == b"x"  # the transaction ran; only INCR failed


@pytest.mark.real
def test_redis_py_watch(resp_port, r):
    other = redis.Redis(port=resp_port, socket_timeout=10)
    try:
        r.set("counter", 1)
        with r.pipeline() as pipe:
            pipe.watch("counter")
            other.set("counter", 100)
            pipe.multi()
            pipe.incr("counter")
            with pytest.raises(redis.WatchError):
                pipe.execute()

        def bump(pipe):
            value = int(pipe.get("counter"))
            pipe.multi()
            pipe.set("counter", value + 1)

        assert r.transaction(bump, "counter") == [True]
        assert r.get("counter") == b"101"
    finally:
        other.close()


def _next_message(pubsub, kind="message", timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = pubsub.get_message(timeout=0.5)
        if msg and msg["type"] == kind:
            return msg
    raise AssertionError(f"no {kind} within {timeout}s")


@pytest.mark.real
@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_pubsub(resp_port, protocol):
    subscriber = redis.Redis(port=resp_port, protocol=protocol, socket_timeout=10)
    publisher = redis.Redis(port=resp_port, socket_timeout=10)
    p = subscriber.pubsub()
    try:
        p.subscribe("news")
        assert _next_message(p, "subscribe")["channel"] == b"news"
        p.psubscribe("sport.*")
        assert _next_message(p, "psubscribe")["channel"] == b"sport.*"
        assert publisher.publish("news", "hello") == 1
        msg = _next_message(p)
        assert (msg["channel"], msg["data"]) == (b"news", b"hello")
        assert publisher.publish("sport.chess", "mate") == 1
        msg = _next_message(p, "pmessage")
        assert (msg["pattern"], msg["channel"], msg["data"]) == (
            b"sport.*",
            b"sport.chess",
            b"mate",
        )
        assert publisher.publish("nobody", "x") == 0
        p.unsubscribe("news")
        assert _next_message(p, "unsubscribe")["channel"] == b"news"
        assert publisher.publish("news", "gone") == 0
    finally:
        p.close()
        subscriber.close()
        publisher.close()


@pytest.mark.twistd
def test_redis_py_auth(resp_pass_port):
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=resp_pass_port, socket_timeout=10).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=resp_pass_port, password="wrong", socket_timeout=10).ping()
    for protocol in (2, 3):
        ok = redis.Redis(
            port=resp_pass_port, password="s3cret", protocol=protocol, socket_timeout=10
        )
        assert ok.set("a", "1") is True and ok.get("a") == b"1"
        ok.close()


def _admitted(port: int, count: int) -> list[socket.socket]:
    """``count`` connections the server answers; earlier tests' closing connections may still
    hold slots for a moment (they are released when the server sees them closed)."""

    def attempt():
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
        replies = []
        for s in held:
            s.sendall(b"PING\r\n")
            replies.append(s.recv(100))
        if all(r == b"-NOAUTH Authentication required.\r\n" for r in replies):
            return held
        for s in held:
            s.close()
        return None

    return wait_until(attempt, 10, f"{count} connections answered -NOAUTH", interval=0.05)


@pytest.mark.real
def test_max_clients_real_sockets(resp_pass_port):
    held = _admitted(resp_pass_port, 3)
    try:
        with socket.create_connection(("127.0.0.1", resp_pass_port), timeout=10) as extra:
            data = b""
            while chunk := extra.recv(100):
                data += chunk
            assert data == b"-ERR max number of clients reached\r\n"
    finally:
        for s in held:
            s.close()


@pytest.mark.real
def test_redis_cli_commands(resp_port, r):
    cli = need("redis-cli")

    def run(*args, proto=()):
        out = subprocess.run(
            [cli, "-p", str(resp_port), *proto, *args], capture_output=True, timeout=30, check=True
        )
        return out.stdout.decode()

    assert run("PING") == "PONG\n"
    assert run("SET", "greeting", "hello world") == "OK\n"
    assert run("GET", "greeting") == "hello world\n"
    assert run("INCR", "visits") == "1\n"
    assert run("RPUSH", "l", "a", "b", "c") == "3\n"
    assert run("LRANGE", "l", "0", "-1") == "a\nb\nc\n"
    assert run("HSET", "h", "f", "v") == "1\n"
    assert run("HGETALL", "h") == "f\nv\n"
    assert run("HGETALL", "h", proto=("-3",)) == "f v\n"  # a map, printed as one line
    assert run("GET", "nothing") == "\n"
    assert run("TTL", "greeting") == "-1\n"
    assert "unknown command" in run("NOSUCH")
    assert "# Keyspace" in run("INFO", "keyspace")
    assert run("DBSIZE") == "4\n"
    assert run("--no-raw", "LPOP", "nokey", "2") == "(nil)\n"
    assert run("--no-raw", "HGETALL", "h", proto=("-3",)) == '1# "f" => "v"\n'
    # Interactive-style commands through stdin (redis-cli reads them line by line).
    out = subprocess.run(
        [cli, "-p", str(resp_port)],
        input=b"SET x 1\nINCRBY x 41\nGET x\n",
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.decode() == "OK\n42\n42\n"


@pytest.mark.real
def test_redis_cli_pipe_mass_insert(resp_port, r):
    cli = need("redis-cli")
    lines = b"".join(encode_command("SET", f"key:{i}", f"value:{i}") for i in range(100_000))
    out = subprocess.run(
        [cli, "-p", str(resp_port), "--pipe"], input=lines, capture_output=True, timeout=120
    )
    text = out.stdout.decode()
    assert out.returncode == 0, text + out.stderr.decode()
    assert "errors: 0, replies: 100000" in text
    dbsize = subprocess.run(
        [cli, "-p", str(resp_port), "DBSIZE"], capture_output=True, timeout=30, check=True
    )
    assert dbsize.stdout == b"100000\n"
    assert r.get("key:99999") == b"value:99999"


def _benchmark(port) -> str:
    bench = need("redis-benchmark")
    out = subprocess.run(
        [
            bench,
            "-q",
            "-t",
            "ping,set,get,incr,lpush,rpush,lpop,rpop,hset,mset",
            "-n",
            "20000",
            "-p",
            str(port),
        ],
        capture_output=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr.decode()
    return re.sub(r"[^\n]*\r", "", out.stdout.decode())  # drop the progress lines


BENCH_TESTS = [
    "PING_INLINE",
    "PING_MBULK",
    "SET",
    "GET",
    "INCR",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "HSET",
    "MSET (10 keys)",
]


@pytest.mark.real
def test_redis_benchmark(resp_port, r):
    text = _benchmark(resp_port)
    print("\ntcpplay resp:\n" + text)
    for name in BENCH_TESTS:
        assert re.search(rf"^{re.escape(name)}: [0-9.]+ requests per second", text, re.M), text
    assert "ERR" not in text and "rror" not in text
    assert r.llen("mylist") == 0  # 20000 LPUSH/RPUSH then 20000 LPOP/RPOP
    assert r.get("counter:__rand_int__") == b"20000"


# ============================================================== differential: vs redis-server

# Each script runs on a fresh connection after FLUSHALL, on both servers; the replies must be
# equal (after sorting where Redis's order is a hash order). A str is one command (shlex
# syntax); bytes are sent as they are (a script of bytes only must make the server close).
# Deliberate difference, not scripted: Redis accepts an inline line of any length when its
# newline arrives in the same read, and refuses it only when 64 KiB pile up without one; we
# refuse any inline line over 64 KiB, whatever the timing.
SCRIPTS = {
    "strings": [
        "SET a 1",
        "GET a",
        "INCR a",
        "INCRBY a 10",
        "DECR a",
        "DECRBY a 3",
        "GET nope",
        "SETNX a 2",
        "SETNX b 2",
        "MSET c 3 d 4",
        "MGET a b c d nope",
        "APPEND a xyz",
        "STRLEN a",
        "STRLEN nope",
        "GETDEL b",
        "GETDEL b",
        "INCR a",
        "SET big 9223372036854775807",
        "INCR big",
        "DECRBY x -9223372036854775808",
        "INCRBY a 1.5",
        "SET z 01",
        "INCR z",
        "SET e ''",
        "GET e",
        "STRLEN e",
    ],
    "set options": [
        "SET k v NX",
        "SET k w NX",
        "SET k w XX GET",
        "SET q w XX",
        "SET k v GET",
        "SET k v NX GET",
        "SET k v EX 0",
        "SET k v PX -1",
        "SET k v EX x",
        "SET k v NX XX",
        "SET k v EX 10 PX 10",
        "SET k v KEEPTTL EX 5",
        "SET k v FOO",
        "SET k v EX",
        "SET k v EX 100",
        "TTL k",
        "SET k v2 KEEPTTL",
        "TTL k",
        "SET k v3",
        "TTL k",
        "SET k v EX 99999999999999999",
    ],
    "keys": [
        "MSET a 1 b 2",
        "EXISTS a b a nope",
        "DEL a nope",
        "TYPE a",
        "TYPE b",
        "RPUSH l x",
        "HSET h f v",
        "TYPE l",
        "TYPE h",
        "RENAME b c",
        "GET c",
        "RENAME nope x",
        "RENAME c c",
        "EXPIRE c 100",
        "TTL c",
        "PTTL nope",
        "TTL nope",
        "PERSIST c",
        "PERSIST c",
        "TTL c",
        "EXPIRE c 10 XX",
        "EXPIRE c 10 NX",
        "EXPIRE c 20 GT",
        "EXPIRE c 5 LT",
        "TTL c",
        "EXPIRE c 1 NX XX",
        "EXPIRE c 1 GT LT",
        "EXPIRE c 1 FOO",
        "EXPIRE c x",
        "EXPIRE c 99999999999999999",
        "EXPIRE c 0",
        "EXISTS c",
        "PEXPIRE nope 100",
        "DBSIZE",
    ],
    "glob": [
        "MSET hello 1 hallo 1 hxllo 1 hllo 1 heeeello 1 h*llo 1 'h[llo' 1 'a\\b' 1",
        "KEYS h?llo",
        "KEYS h*llo",
        "KEYS h[ae]llo",
        "KEYS h[^e]llo",
        "KEYS h[a-b]llo",
        "KEYS 'h\\*llo'",
        "KEYS *",
        "KEYS 'h[[]llo'",
        "KEYS 'a\\\\b'",
        "KEYS [z-a]*",
        "KEYS h[",
        "KEYS nomatch*",
        "SCAN 0 COUNT 1000 MATCH h*llo",
        "SCAN x",
        "SCAN 0 COUNT 0",
        "SCAN 0 MATCH",
        "SCAN 0 TYPE string COUNT 1000",
    ],
    "lists": [
        "RPUSH l a b c",
        "LPUSH l x y",
        "LRANGE l 0 -1",
        "LRANGE l 1 2",
        "LRANGE l -2 -1",
        "LRANGE l -100 100",
        "LRANGE l 3 1",
        "LRANGE l 9 10",
        "LRANGE l a 1",
        "LLEN l",
        "LPOP l",
        "RPOP l",
        "LPOP l 2",
        "RPOP l 5",
        "EXISTS l",
        "LPOP l",
        "LPOP l 2",
        "RPUSH l a",
        "LPOP l 0",
        "LPOP l -1",
        "LPOP l x",
        "LPOP l 1 2",
        "LLEN nope",
        "LRANGE nope 0 -1",
    ],
    "hashes": [
        "HSET h a 1 b 2",
        "HSET h a 9 c 3",
        "HGET h a",
        "HGET h zz",
        "HGET nope a",
        "HLEN h",
        "HEXISTS h b",
        "HEXISTS h zz",
        "HGETALL h",
        "HDEL h a zz",
        "HDEL nope a",
        "HDEL h b c",
        "EXISTS h",
        "HGETALL h",
        "HSET h a",
        "HGETALL nope",
    ],
    "wrongtype": [
        "SET s v",
        "RPUSH l v",
        "HSET h f v",
        "GET l",
        "APPEND h x",
        "INCR h",
        "LPUSH s x",
        "RPOP h",
        "LRANGE s 0 -1",
        "LLEN h",
        "HSET l f v",
        "HGET s f",
        "HGETALL l",
        "HDEL s f",
        "HLEN l",
        "HEXISTS s f",
        "LPOP h 2",
        "SET l v GET",
        "GETDEL h",
        "STRLEN l",
        "MGET s l h",
    ],
    "errors": [
        "FOO a b",
        "foo",
        "GET",
        "GET a b",
        "CLIENT",
        "CLIENT FOO",
        "CLIENT SETNAME",
        "CLIENT ID x",
        "PING a b",
        "MSET a",
        "MSET a 1 b",
        "HSET h a",
        "SELECT 16",
        "SELECT x",
        "SELECT 0",
        "HELLO 4",
        "HELLO x",
        "HELLO 3 FOO",
        "HELLO 3 AUTH a",
        "AUTH x",
        "AUTH u x",
        "AUTH a b c",
        "FLUSHALL later",
        "CONFIG",
        "COMMAND NOPE",
        "ECHO",
        "KEYS",
        "EXISTS",
        "DEL",
        "TTL",
        "RENAME a",
        "LPUSH l",
        "HGET h",
        "SUBSCRIBE",
        "PUBLISH c",
        "'' x",
        "CLIENT SETNAME 'a b'",
        "CLIENT GETNAME",
        "CLIENT SETNAME n1",
        "CLIENT GETNAME",
    ],
    "transactions": [
        "MULTI",
        "MULTI",
        "WATCH a",
        "SET a 1",
        "INCR a",
        "RPUSH a x",
        "GET a",
        "EXEC",
        "EXEC",
        "DISCARD",
        "MULTI",
        "SET a",
        "NOPE",
        "SET b 1",
        "EXEC",
        "GET b",
        "MULTI",
        "SET b 2",
        "DISCARD",
        "GET b",
        "MULTI",
        "EXEC",
        "WATCH a",
        "SET a 5",
        "MULTI",
        "INCR a",
        "EXEC",
        "WATCH a",
        "UNWATCH",
        "MULTI",
        "INCR a",
        "LPOP none 2",
        "GET none",
        "EXEC",
    ],
    "pubsub resp2": [
        "UNSUBSCRIBE",
        "PUNSUBSCRIBE",
        "SUBSCRIBE a b",
        "PSUBSCRIBE p*",
        "GET a",
        "CLIENT ID",
        "PING",
        "PING x",
        "UNSUBSCRIBE a zz",
        "UNSUBSCRIBE",
        "PUNSUBSCRIBE",
        "SET x 1",
        "GET x",
    ],
    "resp3": [
        "HELLO 3",
        "GET nope",
        "HSET h a 1",
        "HGETALL h",
        "LPOP nope 2",
        "SUBSCRIBE c",
        "PUBLISH c self",
        "PSUBSCRIBE c*",
        "PUBLISH c twice",
        "SET k v",
        "PING",
        "UNSUBSCRIBE",
        "PUNSUBSCRIBE",
        "MULTI",
        "HGETALL h",
        "LPOP nope 1",
        "EXEC",
        "HELLO 2",
        "HGETALL h",
        "RESET",
        "GET k",
        "CLIENT GETNAME",
    ],
    "reset and quit": [
        "HELLO 3 SETNAME me",
        "CLIENT GETNAME",
        "MULTI",
        "SET a 1",
        "RESET",
        "CLIENT GETNAME",
        "EXEC",
        "GET a",
        "SUBSCRIBE c",
        "RESET",
        "GET a",
        "QUIT",
        "PING",
    ],
    "inline": [
        "PING",
        b"PING\r\nset k 'it\\'s'\r\nget k\r\nset k \"a\\x41\\n\"\r\nget k\n\r\n"
        b'  echo   spaced  \r\n*0\r\n*-1\r\n$3\r\nfoo\r\nset k ""\r\nget k\r\n',
    ],
    "protocol error quote not followed by space": [b"set k 'it''s'\r\n"],
    "protocol error bad bulk": [b"PING\r\n*1\r\n$-5\r\n"],
    "protocol error bulk type": [b"*1\r\n:1\r\nPING\r\n"],
    "protocol error multibulk": [b"*x\r\n"],
    "protocol error quotes": [b'ECHO "unbalanced\r\n'],
    "protocol error inline too big": [b"x" * (70 * 1024)],
    "protocol error bulk too big": [b"*1\r\n$999999999999\r\n"],
}

HELLO_FIELDS = (b"version", b"id")


def _normalize(value):
    """Blank out what legitimately differs between servers; sort hash-ordered collections."""
    if isinstance(value, Map):
        items = [(k, b"*" if k in HELLO_FIELDS else _normalize(v)) for k, v in value.items]
        return ("map", sorted(items, key=repr))
    if isinstance(value, list):
        if len(value) == 14 and value[:2] == [b"server", b"redis"]:  # RESP2 HELLO
            value = [
                b"*" if i > 0 and value[i - 1] in HELLO_FIELDS else v for i, v in enumerate(value)
            ]
            return value
        if value and all(isinstance(v, bytes) for v in value):
            return sorted(value)
        return [_normalize(v) for v in value]
    return value


def _run_script(port: int, script: list) -> list:
    data = b""
    for item in script:
        data += item if isinstance(item, bytes) else encode_command(*shlex.split(item))
    if not all(isinstance(item, bytes) for item in script):  # raw scripts end by closing
        data += encode_command("ECHO", "__end__")
    parser = RespParser()
    values = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(encode_command("FLUSHALL"))
        assert s.recv(100) == b"+OK\r\n"
        s.sendall(data)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            values += parser.feed(chunk)
            if values and (
                values[-1] == b"__end__"
                or (isinstance(values[-1], Error) and b"'echo'" in values[-1].value)
            ):
                break
        else:
            raise AssertionError(f"no end of replies: {values!r}")
    return values


@pytest.mark.real
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_differential_against_redis(name, resp_port, redis_server):
    script = SCRIPTS[name]
    ours = _run_script(resp_port, script)
    theirs = _run_script(redis_server.port, script)
    assert ours and [_normalize(v) for v in ours] == [_normalize(v) for v in theirs]


def reply_and_close(port: int, data: bytes, quiet: float = 1.0) -> tuple[bytes, bool]:
    """Send ``data``; read until the server closes (True) or sends nothing for ``quiet``
    seconds (False: it waits for more of the request, or for the next one)."""
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.settimeout(quiet)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return buf, False
            except ConnectionResetError:
                return buf, True
            if not chunk:
                return buf, True
            buf += chunk
    raise AssertionError(f"still sending after 10s: {buf[:200]!r}")


# Request framing at the edges of redis-server's processMultibulkBuffer/processInlineBuffer;
# short cases are followed by a PING, which shows what the server makes of the next bytes.
FRAMING_CASES = [
    b"*999999999999\r\n",
    b"*2147483648\r\n",
    b"*2147483647\r\n",
    b"*1048577\r\n",
    b"*-5\r\n",
    b"*-99999999999999999999\r\n",
    b"*abc\r\n",
    b"*\r\n",
    b"*+5\r\n",
    b"*05\r\n",
    b"*1\nPING\r\n",
    b"*1\r\n$999999999999\r\n",
    b"*1\r\n$536870913\r\n",
    b"*1\r\n$-1\r\n",
    b"*1\r\n$x\r\n",
    b"*1\r\n$4\nPING\r\n",
    b"*1\r\n:1\r\n",
    b"*2\r\n$4\r\nECHO\r\n*2147483647\r\n",
    b"*" + b"1" * 70000,
    b"*1\r\n$" + b"1" * 70000,
    b"*1\r\n" + b"X" * 70000,
    b"x" * 70000,
]


@pytest.mark.real
@pytest.mark.parametrize("data", FRAMING_CASES, ids=lambda d: repr(d[:24]))
def test_request_framing_errors_match_redis(data, resp_port, redis_server):
    if len(data) < 100:
        data += b"PING\r\n"
    ours = reply_and_close(resp_port, data)
    assert ours == reply_and_close(redis_server.port, data)
    assert ours[0].startswith((b"-ERR Protocol error: ", b"+PONG", b"$")) or ours == (b"", False)


@pytest.mark.real
def test_unauthenticated_framing_errors_match_redis(resp_pass_port, tmp_path):
    real = start_redis(str(tmp_path), "s3cret")
    try:
        for data in (b"*11\r\n", b"*1000000\r\n", b"*999999999999\r\n",
                     b"*1\r\n$20000\r\n", b"*1\r\n$999999999999\r\n", b"*10\r\n"):
            ours = reply_and_close(resp_pass_port, data)
            assert ours == reply_and_close(real.port, data), data
    finally:
        stop_process(real.proc)


@pytest.mark.real
def test_differential_auth(resp_pass_port, tmp_path):
    real = start_redis(str(tmp_path), "s3cret")
    try:
        script = [
            "PING",
            "GET a",
            "FOO",
            "GET",
            "HELLO 3",
            "HELLO 3 AUTH default nope",
            "AUTH nope",
            "AUTH default nope",
            "AUTH s3cret",
            "PING",
            "RESET",
            "PING",
            "HELLO 3 AUTH default s3cret SETNAME x",
            "CLIENT GETNAME",
            "AUTH x y z",
        ]
        data = b"".join(encode_command(*shlex.split(line)) for line in script)
        ours = resp_exchange(resp_pass_port, data, len(script))
        theirs = resp_exchange(real.port, data, len(script))
        assert [_normalize(v) for v in ours] == [_normalize(v) for v in theirs]
        assert ours[0] == Error(b"NOAUTH Authentication required.")
        assert ours[-2] == b"x"
        for raw in (b"*1\r\n$20000\r\n", encode_command("DEL", *["k"] * 10)):
            ours = resp_exchange(resp_pass_port, raw, 2)
            assert ours == resp_exchange(real.port, raw, 2)
            assert ours[0].value.startswith(b"ERR Protocol error: unauthenticated")
    finally:
        stop_process(real.proc)


@pytest.mark.real
def test_benchmark_reference_redis(redis_server):
    """redis-benchmark against the real redis-server, for scale (printed with -s)."""
    text = _benchmark(redis_server.port)
    print("\nredis-server:\n" + text)
    for name in BENCH_TESTS:
        assert re.search(rf"^{re.escape(name)}: [0-9.]+ requests per second", text, re.M), text


@pytest.mark.real
def test_publish_to_many_subscribers_over_sockets(resp_port):
    """50 RESP2 subscribers on real sockets each get every message, in order."""
    subs = [socket.create_connection(("127.0.0.1", resp_port), timeout=10) for _ in range(50)]
    try:
        for s in subs:
            s.sendall(encode_command("SUBSCRIBE", "fan"))
        for s in subs:
            assert wait_until(lambda s=s: s.recv(100), what="subscribe reply").startswith(
                b"*3\r\n$9\r\nsubscribe"
            )
        publish = b"".join(encode_command("PUBLISH", "fan", f"m{i}") for i in range(20))
        assert resp_exchange(resp_port, publish, 20) == [50] * 20
        for s in subs:
            parser = RespParser()
            got = []
            deadline = time.monotonic() + 10
            while len(got) < 20 and time.monotonic() < deadline:
                got += parser.feed(s.recv(65536))
            assert [m[2] for m in got] == [f"m{i}".encode() for i in range(20)]
    finally:
        for s in subs:
            s.close()
