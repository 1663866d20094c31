"""``twistd tcpplay proxy --fault 'resp:...'`` with redis-server, redis-py and redis-cli: an
injected -LOADING raised as BusyLoadingError for matching keys only, pipeline order kept, a delay
on GETs only, a reset at the third SET, a dropped reply timing redis-py out; an
injected -MOVED raised as MovedError and printed by redis-cli."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from playground.codec.encoder import encode_command
from tests.support.net import recv_exactly
from tests.support.processes import need, start_proxy

pytestmark = pytest.mark.twistd


def test_injected_loading_for_matching_keys_only(twistd, redis_server):
    direct = redis.Redis(port=redis_server.port)
    direct.config_resetstat()
    proc, port = start_proxy(twistd, redis_server.port,
                             "--fault", "resp:GET user:*:error=-LOADING Redis is loading")
    client = redis.Redis(port=port, socket_timeout=10)
    try:
        client.set("other", "v")
        assert client.get("other") == b"v"
        with pytest.raises(redis.exceptions.BusyLoadingError):
            client.get("user:1")
    finally:
        client.close()
    # a pipeline (redis-py raises a pipeline's LOADING as a connection error: read the bytes)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(encode_command("SET", "a", "1") + encode_command("GET", "user:1")
                  + encode_command("GET", "a"))
        want = b"+OK\r\n-LOADING Redis is loading\r\n$1\r\n1\r\n"
        assert recv_exactly(s, len(want)) == want
    proc.wait_for("fault resp_downstream injected -LOADING Redis is loading for GET user:1")
    out = subprocess.run([need("redis-cli"), "-h", "127.0.0.1", "-p", str(port), "GET",
                          "user:7"], capture_output=True, text=True, timeout=20)
    assert "LOADING Redis is loading" in out.stdout + out.stderr
    # the server saw the GETs of other and a, none of user:*
    assert direct.info("commandstats")["cmdstat_get"]["calls"] == 2


def test_delay_only_for_gets(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--fault", "resp:GET:delay=200ms",
                             "--quiet")
    client = redis.Redis(port=port, socket_timeout=10)
    try:
        client.ping()  # the connection's own set-up (connects, CLIENT SETINFO) is not what is timed
        t0 = time.monotonic()
        client.set("k", "v")
        set_took = time.monotonic() - t0
        t0 = time.monotonic()
        assert client.get("k") == b"v"
        get_took = time.monotonic() - t0
    finally:
        client.close()
    assert get_took >= 0.2 and get_took < 0.2 * 2, get_took  # held once, not twice
    assert set_took < 0.2, set_took  # not held (the bound: the delay itself)


def test_reset_at_the_third_set(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--fault", "resp:SET:reset,nth=3")
    client = redis.Redis(port=port, socket_timeout=10, retry=Retry(NoBackoff(), 0))
    try:
        client.set("s", "1")
        client.set("s", "2")
        with pytest.raises(redis.exceptions.ConnectionError):
            client.set("s", "3")
    finally:
        client.close()
    proc.wait_for("fault resp_downstream resets the pair at SET s on pair 1")
    proc.wait_for("closed by toxic resp_downstream (rst)")
    assert redis.Redis(port=redis_server.port).get("s") == b"2"  # the third never reached it


def test_drop_times_redis_py_out(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--fault", "resp:GET:drop", "--quiet")
    client = redis.Redis(port=port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    try:
        client.set("d", "1")
        with pytest.raises(redis.exceptions.TimeoutError):
            client.get("d")
    finally:
        client.close()


def test_redis_py_with_retries_rides_out_loading_on_half_the_connections(twistd, redis_server):
    redis.Redis(port=redis_server.port).set("user:9", "v")
    proc, port = start_proxy(twistd, redis_server.port,
                             "--fault", "resp:GET user:*:error=-LOADING,toxicity=0.5")
    client = redis.Redis(port=port, socket_timeout=10, retry=Retry(NoBackoff(), 30),
                         retry_on_error=[redis.exceptions.BusyLoadingError])
    try:
        for _ in range(20):  # a new connection each time: each rolls the toxicity again
            assert client.get("user:9") == b"v"
            client.connection_pool.disconnect()
    finally:
        client.close()
    proc.wait_for("fault resp_downstream injected -LOADING for GET user:9")  # 1 in 2**20 fails


def test_injected_moved_raised_by_redis_py_and_printed_by_redis_cli(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port,
                             "--fault", "resp:GET user:*:error=-MOVED 3999 127.0.0.1:6381")
    client = redis.Redis(port=port, socket_timeout=10, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(redis.exceptions.MovedError) as raised:
            client.get("user:1")
        assert (raised.value.slot_id, raised.value.host, raised.value.port) == (
            3999, "127.0.0.1", 6381)
        client.set("plain", "p")
        assert client.get("plain") == b"p"  # only user:* keys are "moved"
    finally:
        client.close()
    # --no-raw: the format redis-cli uses at a terminal
    out = subprocess.run([need("redis-cli"), "--no-raw", "-h", "127.0.0.1", "-p", str(port),
                          "GET", "user:7"], capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == "(error) MOVED 3999 127.0.0.1:6381", out
    proc.wait_for("fault resp_downstream injected -MOVED 3999 127.0.0.1:6381 for GET user:7")
