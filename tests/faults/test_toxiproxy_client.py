"""The real toxiproxy client from PyPI (``toxiproxy-python``) driving tcpplay's API unchanged, in
front of a real redis-server: create, toxics, down (redis-cli gets "Connection refused"),
reset, populate, destroy; a latency toxic it adds is seen by redis-py, and gone once removed. The API runs on the test's reactor, the client in a thread."""

from __future__ import annotations

import subprocess
import time

import pytest
import pytest_twisted
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from tests.support.faultsapi import run
from tests.support.net import free_port
from tests.support.processes import need

pytestmark = pytest.mark.real


def get_times(client, rounds: int = 5) -> list[float]:
    """The seconds each of ``rounds`` GETs through redis-py took."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        client.get("toxiapi:key")
        times.append(time.perf_counter() - t0)
    return times


def redis_cli(port: int, *args: str) -> str:
    out = subprocess.run([need("redis-cli"), "-p", str(port), *args], capture_output=True,
                         timeout=20, text=True)
    return (out.stdout + out.stderr).strip()


@pytest_twisted.inlineCallbacks
def test_the_toxiproxy_client_drives_tcpplay(redis_server):
    def check(api):
        server = Toxiproxy()
        server.update_api_consumer("127.0.0.1", api)
        assert server.running()
        assert server.version().startswith(b'{"version":"tcpplay ')
        proxy = server.create(upstream=f"127.0.0.1:{redis_server.port}", name="redis")
        port = int(proxy.listen.rsplit(":", 1)[1])
        assert proxy.enabled is True and port != 0
        assert redis_cli(port, "ping") == "PONG"
        with pytest.raises(ProxyExists):
            server.create(upstream=f"127.0.0.1:{redis_server.port}", name="redis")

        proxy.add_toxic(type="latency", attributes={"latency": 100})
        [toxic] = proxy.toxics().values()
        assert (toxic.name, toxic.type, toxic.stream, toxic.toxicity) == (
            "latency_downstream", "latency", "downstream", 1.0)
        assert toxic.attributes == {"latency": 100, "jitter": 0}
        with pytest.raises(ProxyExists):  # the client's name for a 409
            proxy.add_toxic(type="latency", attributes={"latency": 5})
        with pytest.raises(InvalidToxic):  # a 400
            proxy.add_toxic(type="no_such_toxic")
        proxy.add_toxic(type="bandwidth", stream="upstream", attributes={"rate": 1000})
        assert set(proxy.toxics()) == {"latency_downstream", "bandwidth_upstream"}
        assert proxy.destroy_toxic("latency_downstream")
        assert proxy.get_toxic("latency_downstream") is None
        with pytest.raises(NotFound):
            proxy.destroy_toxic("latency_downstream")

        with proxy.down():
            assert server.get_proxy("redis").enabled is False
            assert "Connection refused" in redis_cli(port, "ping")
        assert server.get_proxy("redis").enabled is True
        assert redis_cli(port, "ping") == "PONG"

        proxy.disable()
        assert server.reset()
        assert server.get_proxy("redis").enabled is True
        assert proxy.toxics() == {}

        other = free_port()
        [made] = server.populate([{"name": "other", "upstream": f"127.0.0.1:{redis_server.port}",
                                   "listen": f"127.0.0.1:{other}"}])
        assert made.listen == f"127.0.0.1:{other}"
        assert redis_cli(other, "ping") == "PONG"
        assert set(server.proxies()) == {"redis", "other"}
        server.destroy_all()
        assert server.proxies() == {}
        assert "Connection refused" in redis_cli(port, "ping")

    yield run(check)


@pytest_twisted.inlineCallbacks
def test_a_latency_toxic_added_through_the_client_is_seen_by_redis_py(redis_server):
    import redis

    def check(api):
        server = Toxiproxy()
        server.update_api_consumer("127.0.0.1", api)
        proxy = server.create(upstream=f"127.0.0.1:{redis_server.port}", name="redis")
        client = redis.Redis(port=int(proxy.listen.rsplit(":", 1)[1]), socket_timeout=10)
        try:
            client.ping()  # the connection's own set-up is not what is timed
            assert max(get_times(client)) < 0.2  # not held (the bound: the latency itself)
            proxy.add_toxic(type="latency", attributes={"latency": 200})
            # every reply waits 200 ms (on the open connection too, as toxiproxy does)
            slowed = get_times(client)
            assert 0.2 <= min(slowed) and max(slowed) < 0.4, slowed
            proxy.destroy_toxic("latency_downstream")
            assert max(get_times(client)) < 0.2
        finally:
            client.close()

    yield run(check)
