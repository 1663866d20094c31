"""toxiproxy's HTTP API over real sockets on 127.0.0.1: every route with toxiproxy's shapes and
status codes, the errors (400, 401, 403, 404, 405, 409, 413, 500), populate and reset, and the
proxies it creates forwarding to a real redis-server (enabled false: connection refused).
The API and its registry run on the test's reactor; the clients (http.client, sockets) run in
threads."""

from __future__ import annotations

import socket

import pytest
import pytest_twisted

from playground.faults.api import MAX_BODY
from tests.support.faultsapi import call, listen_port, ping, refused, run
from tests.support.net import PING, PONG, free_port, recv_exactly
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real

TOKEN = "s3cret-token-4711"


def proxy_body(name: str, upstream: int, **more) -> dict:
    return {"name": name, "upstream": f"127.0.0.1:{upstream}", **more}


@pytest_twisted.inlineCallbacks
def test_version_and_unknown_routes():
    def check(api):
        status, body, response = call(api, "GET", "/version")
        assert status == 200 and body["version"].startswith("tcpplay ")
        assert response.getheader("content-type").startswith("application/json")
        assert call(api, "GET", "/nothing")[:2] == (404, {"error": "not found", "status": 404})
        assert call(api, "GET", "/proxies/a/toxics/b/c")[0] == 404
        status, body, _ = call(api, "PUT", "/proxies")
        assert status == 405 and body["status"] == 405 and "GET, POST" in body["error"]
        assert call(api, "GET", "/reset")[0] == 405
        # toxiproxy refuses browsers: a page cannot drive the API
        status, body, _ = call(api, "GET", "/proxies", headers={"User-Agent": "Mozilla/5.0"})
        assert (status, body) == (403, {"error": "User agent not allowed", "status": 403})

    yield run(check)


@pytest_twisted.inlineCallbacks
def test_create_show_list_and_forward(redis_server):
    def check(api):
        status, body, _ = call(api, "POST", "/proxies", proxy_body("redis", redis_server.port))
        assert status == 201
        port = listen_port(body)
        assert port != 0  # 127.0.0.1:0 by default: the real port is reported
        assert body == {"name": "redis", "listen": f"127.0.0.1:{port}",
                        "upstream": f"127.0.0.1:{redis_server.port}", "enabled": True,
                        "toxics": []}
        assert ping(port) == PONG
        status, listing, _ = call(api, "GET", "/proxies")
        assert status == 200 and list(listing) == ["redis"]
        assert listing["redis"]["listen"] == f"127.0.0.1:{port}"
        assert call(api, "GET", "/proxies/redis")[1] == listing["redis"]
        assert call(api, "GET", "/proxies/redis/")[1] == listing["redis"]  # a trailing slash
        assert call(api, "GET", "/proxies/nope")[:2] == (
            404, {"error": "proxy not found", "status": 404})
        assert call(api, "POST", "/proxies", proxy_body("redis", redis_server.port))[:2] == (
            409, {"error": "proxy already exists", "status": 409})

    yield run(check)


@pytest_twisted.inlineCallbacks
def test_create_errors():
    def check(api):
        cases = [
            ({"upstream": "127.0.0.1:1"}, "missing required field: name"),
            ({"name": "a"}, "missing required field: upstream"),
            ({"name": "a b", "upstream": "127.0.0.1:1"}, "name: 1-64 letters"),
            ({"name": "a", "upstream": "127.0.0.1:1", "listen": "nowhere"}, "listen: expected"),
            ({"name": "a", "upstream": "127.0.0.1:1", "listen": "127.0.0.1:70000"}, "out of range"),
            ({"name": "a", "upstream": "no port"}, "upstream: cannot read"),
            # an endpoint type tcpplay reads but cannot connect with (it once hung the request)
            ({"name": "a", "upstream": "stdio:"}, "upstream: 'stdio:': Unknown endpoint type"),
            ({"name": "a", "upstream": "127.0.0.1:1", "enabled": "yes"}, "enabled: expected"),
            ([1, 2], "bad request body: expected a JSON object"),
        ]
        for body, error in cases:
            status, answer, _ = call(api, "POST", "/proxies", body)
            assert status == 400 and answer["status"] == 400, (body, answer)
            assert error in answer["error"], (body, answer)
        status, answer, _ = call(api, "POST", "/proxies", raw=b'{"name": ')
        assert status == 400 and answer["error"].startswith("bad request body: ")
        status, answer, _ = call(api, "POST", "/proxies", raw=b"[" * 50_000)
        assert status == 400 and answer["error"].startswith("bad request body: ")
        # refused from its Content-Length, before it is read: the site's plain 413, as its 431
        status, _, response = call(api, "POST", "/proxies", raw=b"x" * (MAX_BODY + 1))
        assert status == 413 and response.getheader("Connection") == "close"
        assert call(api, "GET", "/proxies")[1] == {}  # nothing was created
        call(api, "POST", "/proxies", {"name": "a", "upstream": "127.0.0.1:1"})
        status, answer, _ = call(api, "POST", "/proxies/a", {"upstream": "stdio:"})
        assert status == 400 and "Unknown endpoint type" in answer["error"]
        assert call(api, "GET", "/proxies/a")[1]["enabled"]  # left as it was, still listening

    yield run(check)


@pytest_twisted.inlineCallbacks
def test_a_port_that_cannot_be_bound_is_a_500_and_no_proxy():
    def check(api):
        status, body, _ = call(api, "POST", "/proxies",
                               proxy_body("busy", 1, listen=f"127.0.0.1:{api}"))
        assert status == 500 and body["error"].startswith(f"listen 127.0.0.1:{api}: ")
        assert call(api, "GET", "/proxies")[1] == {}

    yield run(check)


@pytest_twisted.inlineCallbacks
def test_disable_refuses_and_closes_enable_listens_again(redis_server):
    def check(api):
        _, body, _ = call(api, "POST", "/proxies", proxy_body("redis", redis_server.port))
        port = listen_port(body)
        held = socket.create_connection(("127.0.0.1", port), timeout=10)
        held.sendall(PING)
        assert held.recv(100) == PONG
        status, body, _ = call(api, "POST", "/proxies/redis", {"enabled": False})
        assert status == 200 and body["enabled"] is False
        assert body["listen"] == f"127.0.0.1:{port}"
        assert held.recv(100) == b""  # the open connection is closed
        held.close()
        assert refused(port)
        status, body, _ = call(api, "PATCH", "/proxies/redis", {"enabled": True})
        assert status == 200 and body["enabled"] is True
        assert ping(port) == PONG
        # a new upstream restarts it, on the same listen address, with its toxics
        call(api, "POST", "/proxies/redis/toxics", {"type": "latency"})
        status, body, _ = call(api, "POST", "/proxies/redis", {"upstream": "127.0.0.1:1"})
        assert status == 200 and body["upstream"] == "127.0.0.1:1" and body["enabled"] is True
        assert body["listen"] == f"127.0.0.1:{port}"
        assert [t["name"] for t in body["toxics"]] == ["latency_downstream"]
        call(api, "DELETE", "/proxies/redis/toxics/latency_downstream")
        status, body, _ = call(api, "POST", "/proxies/redis",
                               {"upstream": f"127.0.0.1:{redis_server.port}"})
        assert ping(port) == PONG
        assert call(api, "POST", "/proxies/redis", {"enabled": 1})[0] == 400
        assert call(api, "POST", "/proxies/nope", {"enabled": False})[0] == 404
        # DELETE: gone, and its port with it
        assert call(api, "DELETE", "/proxies/redis")[:2] == (204, None)
        assert refused(port)
        assert call(api, "DELETE", "/proxies/redis")[0] == 404

    yield run(check)


@pytest_twisted.inlineCallbacks
def test_created_disabled_does_not_listen():
    def check(api):
        port = free_port()
        status, body, _ = call(api, "POST", "/proxies",
                               proxy_body("off", 1, listen=f"127.0.0.1:{port}", enabled=False))
        assert status == 201 and body["enabled"] is False
        assert refused(port)

    yield run(check)


@pytest_twisted.inlineCallbacks
def test_toxics_routes(redis_server):
    def check(api):
        call(api, "POST", "/proxies", proxy_body("redis", redis_server.port))
        status, toxic, _ = call(api, "POST", "/proxies/redis/toxics",
                                {"type": "latency", "attributes": {"latency": 100}})
        # toxiproxy's defaults: name <type>_<stream>, downstream, toxicity 1
        assert status == 200
        assert toxic == {"name": "latency_downstream", "type": "latency",
                         "stream": "downstream", "toxicity": 1.0,
                         "attributes": {"latency": 100, "jitter": 0}}
        assert call(api, "POST", "/proxies/redis/toxics", {"type": "latency"})[:2] == (
            409, {"error": "toxic already exists", "status": 409})
        status, other, _ = call(api, "POST", "/proxies/redis/toxics", {
            "name": "cut", "type": "limit_data", "stream": "upstream", "toxicity": 0.5,
            "attributes": {"bytes": 10}})
        assert status == 200 and other["stream"] == "upstream" and other["toxicity"] == 0.5
        assert call(api, "GET", "/proxies/redis/toxics")[1] == [toxic, other]
        assert call(api, "GET", "/proxies/redis")[1]["toxics"] == [toxic, other]
        assert call(api, "GET", "/proxies/redis/toxics/cut")[1] == other
        # update: attributes merged, toxicity replaced; POST and PATCH alike
        status, updated, _ = call(api, "PATCH", "/proxies/redis/toxics/latency_downstream",
                                  {"attributes": {"jitter": 10}})
        assert status == 200 and updated["attributes"] == {"latency": 100, "jitter": 10}
        status, updated, _ = call(api, "POST", "/proxies/redis/toxics/latency_downstream",
                                  {"toxicity": 0.25})
        assert updated["toxicity"] == 0.25 and updated["attributes"]["jitter"] == 10
        assert call(api, "DELETE", "/proxies/redis/toxics/cut")[:2] == (204, None)
        assert call(api, "GET", "/proxies/redis/toxics/cut")[:2] == (
            404, {"error": "toxic not found", "status": 404})
        assert call(api, "DELETE", "/proxies/redis/toxics/cut")[0] == 404
        assert call(api, "GET", "/proxies/nope/toxics")[0] == 404
        assert call(api, "POST", "/proxies/nope/toxics", {"type": "latency"})[0] == 404

    yield run(check)


@pytest_twisted.inlineCallbacks
def test_toxic_errors_name_the_field(redis_server):
    def check(api):
        call(api, "POST", "/proxies", proxy_body("redis", redis_server.port))
        cases = [
            ({"type": "nope"}, "type: unknown toxic 'nope'"),
            ({"type": "latency", "stream": "sideways"}, "stream: expected upstream or downstream"),
            ({"type": "latency", "toxicity": 2}, "toxicity: expected a number from 0 to 1"),
            ({"type": "latency", "attributes": {"latency": -1}}, "latency.latency: must be >= 0"),
            ({"type": "latency", "attributes": {"colour": 1}}, "unknown attribute 'colour'"),
            ({"type": "reset_peer", "attributes": {"timeout": 10**400}},
             "reset_peer.timeout: at most"),
            ({"attributes": {}}, "type: missing"),
            ("latency", "expected a JSON object"),
        ]
        for body, error in cases:
            status, answer, _ = call(api, "POST", "/proxies/redis/toxics", body)
            assert (status, answer["status"]) == (400, 400), (body, answer)
            assert error in answer["error"], (body, answer)
        call(api, "POST", "/proxies/redis/toxics", {"type": "latency"})
        status, answer, _ = call(api, "POST", "/proxies/redis/toxics/latency_downstream",
                                 {"attributes": {"latency": "soon"}})
        assert status == 400 and "latency.latency" in answer["error"]
        assert call(api, "POST", "/proxies/redis/toxics/latency_downstream", raw=b"{")[0] == 400
        assert call(api, "GET", "/proxies/redis/toxics")[1][0]["attributes"]["latency"] == 0

    yield run(check)


@pytest_twisted.inlineCallbacks
def test_populate_creates_keeps_and_replaces(redis_server):
    def check(api):
        a, b = free_port(), free_port()
        wanted = [proxy_body("a", redis_server.port, listen=f"127.0.0.1:{a}"),
                  proxy_body("b", redis_server.port, listen=f"127.0.0.1:{b}", enabled=False)]
        status, body, _ = call(api, "POST", "/populate", wanted)
        assert status == 201
        assert [(p["name"], p["enabled"]) for p in body["proxies"]] == [("a", True), ("b", False)]
        assert ping(a) == PONG and refused(b)
        call(api, "POST", "/proxies/a/toxics", {"type": "latency"})
        # again, unchanged: left alone (its toxic stays); b with another upstream: replaced
        wanted[1]["upstream"] = "127.0.0.1:1"
        status, body, _ = call(api, "POST", "/populate", wanted)
        assert status == 201
        assert body["proxies"][0]["toxics"][0]["name"] == "latency_downstream"
        assert body["proxies"][1]["upstream"] == "127.0.0.1:1"
        # every entry is checked before any is made
        status, body, _ = call(api, "POST", "/populate",
                               [proxy_body("c", 1), {"name": "d"}])
        assert (status, body["error"]) == (400, "missing required field: upstream at proxy 2")
        assert "c" not in call(api, "GET", "/proxies")[1]
        assert call(api, "POST", "/populate", {"name": "x"})[0] == 400
        # a failure part way: its status, with the proxies done before it
        status, body, _ = call(api, "POST", "/populate", [
            proxy_body("e", 1), proxy_body("f", 1, listen=f"127.0.0.1:{api}")])
        assert status == 500 and body["status"] == 500 and body["error"].startswith("listen ")
        assert [p["name"] for p in body["proxies"]] == ["e"]

    yield run(check)


@pytest_twisted.inlineCallbacks
def test_reset_enables_every_proxy_and_removes_every_toxic(redis_server):
    def check(api):
        for name in ("a", "b"):
            call(api, "POST", "/proxies", proxy_body(name, redis_server.port))
            call(api, "POST", f"/proxies/{name}/toxics", {"type": "latency"})
        call(api, "POST", "/proxies/b", {"enabled": False})
        assert call(api, "POST", "/reset")[:2] == (204, None)
        listing = call(api, "GET", "/proxies")[1]
        assert [(p["enabled"], p["toxics"]) for p in listing.values()] == [(True, [])] * 2
        port = listen_port(listing["b"])
        assert ping(port) == PONG

    yield run(check)


@pytest_twisted.inlineCallbacks
def test_without_a_token_only_a_loopback_host_is_answered(redis_server):
    # DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 drives the API same-origin
    # (Firefox lets a script set User-Agent), e.g. a proxy on 0.0.0.0 in front of local Redis
    def check(api):
        rebound = {"Host": f"evil.example:{api}", "User-Agent": "curl/8"}
        status, body, _ = call(api, "POST", "/proxies",
                               proxy_body("open", redis_server.port, listen="0.0.0.0:0"),
                               headers=rebound)
        assert status == 403 and "DNS rebinding" in body["error"]
        assert call(api, "GET", "/proxies", headers=rebound)[:2] == (403, {
            "error": body["error"], "status": 403})
        for host in (f"127.0.0.1:{api}", f"localhost:{api}", "127.0.0.2", "LOCALHOST."):
            assert call(api, "GET", "/proxies", headers={"Host": host})[:2] == (200, {}), host

    yield run(check)


@pytest_twisted.inlineCallbacks
def test_a_token_lets_any_host_in():
    def check(api):
        headers = {"Host": "toxiproxy.internal:8474", "Authorization": f"Bearer {TOKEN}"}
        assert call(api, "GET", "/proxies", headers=headers)[0] == 200

    yield run(check, token=TOKEN)


@pytest_twisted.inlineCallbacks
def test_a_proxys_connections_are_bounded(redis_server):
    # the toxiproxy subcommand's proxies took any number of connections (the proxy
    # subcommand's stop at --max-connections, 10000): clients, or a proxy whose upstream is
    # itself, took every file descriptor, the API's too
    def check(api):
        status, proxy, _ = call(api, "POST", "/proxies", proxy_body("r", redis_server.port))
        assert status == 201
        port = listen_port(proxy)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as first, \
                socket.create_connection(("127.0.0.1", port), timeout=5) as second:
            first.sendall(PING)
            assert recv_exactly(first, len(PONG)) == PONG
            assert second.recv(100) == b""  # refused: closed at once

    yield run(check, max_connections=1)


@pytest_twisted.inlineCallbacks
def test_an_upstream_that_is_the_proxy_itself_is_refused(redis_server):
    def check(api):
        status, proxy, _ = call(api, "POST", "/proxies", proxy_body("r", redis_server.port))
        assert status == 201
        status, body, _ = call(api, "POST", "/proxies/r", {"upstream": proxy["listen"]})
        assert status == 400 and "own listen address" in body["error"]
        assert call(api, "GET", "/proxies/r")[1]["upstream"] == f"127.0.0.1:{redis_server.port}"

    yield run(check)


def test_toxiproxy_max_connections_option():
    from playground.faults.toxiproxy import Options, make_service

    opts = Options()
    opts.parseOptions(["--quiet"])
    assert opts["max-connections"] == 10000
    opts.parseOptions(["--quiet", "--max-connections", "3"])
    assert make_service(opts).registry.max_connections == 3


@pytest_twisted.inlineCallbacks
def test_token_beyond_loopback():
    def check(api):
        status, body, _ = call(api, "GET", "/proxies")
        assert status == 401 and body["status"] == 401 and "token" in body["error"]
        assert call(api, "GET", "/proxies?token=wrong")[0] == 401
        assert call(api, "GET", f"/proxies?token={TOKEN}")[0] == 200
        assert call(api, "GET", "/proxies", headers={"X-Tcpplay-Token": TOKEN})[0] == 200
        assert call(api, "GET", "/proxies",
                    headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200

    yield run(check, token=TOKEN)


@pytest_twisted.inlineCallbacks
def test_down_toxic_refuses_a_created_proxys_clients_until_removed(redis_server):
    def check(api):
        _, body, _ = call(api, "POST", "/proxies", proxy_body("redis", redis_server.port))
        port = listen_port(body)
        held = socket.create_connection(("127.0.0.1", port), timeout=10)
        assert call(api, "POST", "/proxies/redis/toxics", {"type": "down"})[0] == 200
        wait_until(lambda: refused(port), 10, "the proxy refusing new clients")
        held.sendall(PING)
        assert recv_exactly(held, len(PONG)) == PONG  # open pairs go on
        held.close()
        assert call(api, "DELETE", "/proxies/redis/toxics/down_downstream")[0] == 204
        wait_until(lambda: not refused(port), 10, "the proxy listening again")
        assert ping(port) == PONG

    yield run(check)


@pytest.mark.memory
def test_a_pipelined_flood_is_answered_a_few_requests_per_turn():
    # 2,000 pipelined GET /proxies were answered in one go: another client's request waited
    # 1.9 s behind them
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from playground.faults.api import make_site
    from playground.faults.registry import Registry
    from tests.support.waiting import reactor_turn

    clock = MemoryReactorClock()
    site = make_site(Registry(reactor=clock))
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 100)

    def answered():
        return transport.value().count(b"HTTP/1.1 200 OK")

    per_turn = 8  # playground.common.limits.MAX_PER_TURN
    assert answered() == per_turn
    for _ in range(100):
        if answered() == 100:
            break
        before = answered()
        reactor_turn(clock)
        assert answered() - before <= per_turn
    assert answered() == 100
