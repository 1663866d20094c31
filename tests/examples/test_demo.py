"""``twistd tcpplay demo`` (what ``make run`` starts): both proxies answer and show decoded
traffic, on the console and in one web view (on by default, ``--no-web`` turns it off)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request

import pytest
import redis
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from playground.examples import demo
from tests.support.net import free_port
from tests.support.processes import need
from tests.support.waiting import wait_until


@pytest.mark.pure
def test_web_view_is_on_at_8478_unless_turned_off():
    def parsed(*argv):
        opts = demo.Options()
        opts.parseOptions(list(argv))
        return opts

    assert parsed()["web"] == "tcp:8478:interface=127.0.0.1:backlog=1024"
    assert parsed()["web-token"] is None  # loopback: no token
    assert parsed("--web", "9000")["web"] == "tcp:9000:interface=127.0.0.1:backlog=1024"
    assert parsed("--no-web")["web"] is None
    assert parsed("--web", "")["web"] is None  # as for the proxy
    assert len(parsed("--web", "0.0.0.0:9000")["web-token"]) >= 8  # printed at start
    for argv, message in [(["--no-web", "--web", "9000"], "--web and --no-web: give one"),
                          (["--web", "6479"], "--web must differ from --redis and --http"),
                          (["--web", "abc"], "--web: cannot read 'abc' as an address")]:
        with pytest.raises(usage.UsageError, match=message):
            parsed(*argv)


@pytest.mark.pure
def test_web_token_and_limits_as_on_the_proxy():
    def parsed(*argv):
        opts = demo.Options()
        opts.parseOptions(list(argv))
        return opts

    opts = parsed("--web-token", "letmein-42", "--web-connections", "5", "--web-memory", "2")
    assert (opts["web-token"], opts["web-connections"], opts["web-memory"]) == (
        "letmein-42", 5, 2)
    assert parsed("--web", "0.0.0.0:9000", "--web-token", "letmein-42")["web-token"] == \
        "letmein-42"  # given, not a random one
    assert (parsed()["web-connections"], parsed()["web-memory"]) == (1000, 64)
    for argv, message in [(["--web-token", "short"], "--web-token: at least 8 printable"),
                          (["--no-web", "--web-token", "letmein-42"], "--web-token needs --web"),
                          (["--web-connections", "0"], "--web-connections: must be at least 1"),
                          (["--web-memory", "lots"], "--web-memory: expected a whole number")]:
        with pytest.raises(usage.UsageError, match=message):
            parsed(*argv)


class _Reactor(MemoryReactorClock):
    """Gives port 0 (the demo's internal servers) a port of its own, as the system would."""

    def __init__(self):
        super().__init__()
        self._chosen = iter(range(40000, 41000))

    def listenTCP(self, port, factory, backlog=50, interface=""):
        return super().listenTCP(port or next(self._chosen), factory, backlog, interface)


def _started(*argv):
    opts = demo.Options()
    opts.parseOptions(list(argv))
    reactor = _Reactor()
    svc = demo.make_service(opts, reactor)
    svc.privilegedStartService()
    svc.startService()
    return svc, reactor


@pytest.mark.memory
def test_one_web_view_for_both_proxies_and_its_url_in_the_banner(logged):
    svc, reactor = _started()
    try:
        assert sorted(p[0] for p in reactor.tcpServers) == [6479, 8081, 8478, 40000, 40001]
        assert svc.web is not None and svc.web in svc.sinks
        # its close/reset buttons reach the pairs of both proxies
        assert svc.web.proxies == [p.factory for p in svc.proxies]
        banner = [e["line"] for e in logged if "line" in e]
        assert "  redis-cli -p 6479 set foo bar" in banner
        assert any(line.startswith("  open http://127.0.0.1:8478/ ") for line in banner)
    finally:
        svc.stopService()


@pytest.mark.memory
def test_the_view_takes_the_token_and_limits(logged):
    svc, reactor = _started("--web-token", "letmein-42", "--web-connections", "3",
                            "--web-memory", "1")
    try:
        assert svc.web.token == "letmein-42"
        assert (svc.web.capture.max_connections, svc.web.capture.max_bytes) == (3, 1 << 20)
        banner = [e["line"] for e in logged if "line" in e]
        assert any(line.startswith("  open http://127.0.0.1:8478/?token=letmein-42 ")
                   for line in banner)
    finally:
        svc.stopService()


@pytest.mark.memory
def test_no_web_serves_no_view(logged):
    svc, reactor = _started("--no-web")
    try:
        assert sorted(p[0] for p in reactor.tcpServers) == [6479, 8081, 40000, 40001]
        assert svc.web is None
        assert not any("open http" in e.get("line", "") for e in logged)
    finally:
        svc.stopService()


@pytest.mark.twistd
def test_demo_proxies_resp_and_http_and_shows_them(twistd):
    rport, hport = free_port(), free_port()
    t = twistd(["demo", "--redis", rport, "--http", hport, "--color", "never", "--no-web"])
    t.wait_for("The decoded traffic appears below")
    assert f"redis-cli -p {rport} set foo bar" in t.output()
    assert f"curl localhost:{hport}/get" in t.output()
    assert "open http" not in t.output() and "web listening" not in t.output()

    client = redis.Redis(port=rport, socket_timeout=10)
    assert client.set("foo", "bar") is True
    assert client.get("foo") == b"bar"
    client.close()
    t.wait_for('GET foo -> "bar"')
    out = subprocess.run([need("redis-cli"), "-p", str(rport), "ping"], capture_output=True,
                         text=True, timeout=20)
    assert out.stdout.strip() == "PONG"
    t.wait_for("ping -> +PONG")  # shown as the client typed it

    body = subprocess.run([need("curl"), "-s", f"http://127.0.0.1:{hport}/get"],
                          capture_output=True, text=True, timeout=20).stdout
    assert '"url": "http://127.0.0.1:' in body
    t.wait_for("GET /get -> 200 OK application/json")
    assert t.terminate() == 0
    assert "Traceback" not in t.output()


@pytest.mark.pure
def test_port_0_twice_is_two_ports_not_one_address():
    opts = demo.Options()
    opts.parseOptions(["--redis", "0", "--http", "0", "--web", "0"])
    assert opts["redis"] == opts["http"] == "tcp:0:interface=127.0.0.1:backlog=1024"
    for argv in (["--redis", "7000", "--http", "7000"], ["--web", "6479"]):
        with pytest.raises(usage.UsageError, match="must differ"):
            demo.Options().parseOptions(argv)


@pytest.mark.twistd
def test_the_banner_of_port_0_names_the_ports_bound(twistd):
    """``--redis 0``: the banner's commands name the port the system chose (they said
    ``redis-cli -p 0``) and reach the proxies (``--http 0 --web 0`` too: the pure test above)."""
    t = twistd(["demo", "--redis", "0", "--http", free_port(), "--web", free_port(),
                "--color", "never"])
    t.wait_for("The decoded traffic appears below")
    rport = int(re.search(r"proxy redis listening on 127\.0\.0\.1:(\d+)",
                          t.wait_for("proxy redis listening on")).group(1))
    hport = int(re.search(r"proxy http listening on 127\.0\.0\.1:(\d+)",
                          t.wait_for("proxy http listening on")).group(1))
    wport = int(re.search(r"web listening on 127\.0\.0\.1:(\d+)",
                          t.wait_for("web listening on")).group(1))
    assert 0 not in (rport, hport, wport)
    banner = re.search(r"  redis-cli (-p \d+) set foo bar", t.output())
    assert banner and banner.group(1) == f"-p {rport}", t.output()
    assert f"curl localhost:{hport}/get" in t.output()
    assert f"open http://127.0.0.1:{wport}/ " in t.output()
    out = subprocess.run([need("redis-cli"), *banner.group(1).split(), "ping"],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == "PONG"
    body = subprocess.run([need("curl"), "-s", f"localhost:{hport}/get"],
                          capture_output=True, text=True, timeout=20).stdout
    assert '"url": "http://localhost:' in body
    assert t.terminate() == 0


@pytest.mark.twistd
def test_web_view_lists_the_redis_and_http_pairs(twistd):
    rport, hport, wport = free_port(), free_port(), free_port()
    t = twistd(["demo", "--redis", rport, "--http", hport, "--web", wport, "--color", "never"])
    t.wait_for("The decoded traffic appears below")
    assert f"  open http://127.0.0.1:{wport}/ " in t.output()
    out = subprocess.run([need("redis-cli"), "-p", str(rport), "set", "foo", "bar"],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == "OK"
    t.wait_for('set foo "bar" -> +OK')  # the redis pair is #1 before curl opens #2
    body = subprocess.run([need("curl"), "-s", f"http://127.0.0.1:{hport}/get"],
                          capture_output=True, text=True, timeout=20).stdout
    assert '"url": "http://127.0.0.1:' in body

    def both_closed():
        with urllib.request.urlopen(f"http://127.0.0.1:{wport}/api/connections", timeout=10) as r:
            rows = json.load(r)["connections"]
        return rows if len(rows) == 2 and all(c["state"] == "closed" for c in rows) else None

    rows = wait_until(both_closed, 10, "both pairs closed in the web view")
    by_id = {c["id"]: c for c in rows}
    assert sorted(by_id) == [1, 2]  # one numbering for both proxies, as on the console
    assert (by_id[1]["protocol"], by_id[1]["listen"]) == ("resp", f"127.0.0.1:{rport}")
    assert (by_id[2]["protocol"], by_id[2]["listen"]) == ("http", f"127.0.0.1:{hport}")
    with urllib.request.urlopen(f"http://127.0.0.1:{wport}/api/connections/1", timeout=10) as r:
        [exchange] = json.load(r)["exchanges"]
    assert (exchange["request"], exchange["reply"]) == ('set foo "bar"', "+OK")
    with urllib.request.urlopen(f"http://127.0.0.1:{wport}/api/connections/2", timeout=10) as r:
        [exchange] = json.load(r)["exchanges"]
    assert exchange["request"].startswith("GET /get") and exchange["reply"].startswith("200 OK")
    assert t.terminate() == 0
    assert "Traceback" not in t.output()


@pytest.mark.twistd
def test_web_view_with_a_token_and_a_connection_limit(twistd):
    rport, hport, wport = free_port(), free_port(), free_port()
    t = twistd(["demo", "--redis", rport, "--http", hport, "--web", wport, "--color", "never",
                "--web-token", "letmein-42", "--web-connections", "1"])
    t.wait_for("The decoded traffic appears below")
    assert f"  open http://127.0.0.1:{wport}/?token=letmein-42 " in t.output()
    for key in ("a", "b"):
        out = subprocess.run([need("redis-cli"), "-p", str(rport), "set", key, "v"],
                             capture_output=True, text=True, timeout=20)
        assert out.stdout.strip() == "OK"
    t.wait_for('set b "v" -> +OK')
    api = f"http://127.0.0.1:{wport}/api/connections"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(api, timeout=10)
    assert refused.value.code == 401

    def listing():
        with urllib.request.urlopen(api + "?token=letmein-42", timeout=10) as r:
            out = json.load(r)
        return out if out["capture"]["evicted_connections"] == 1 else None

    out = wait_until(listing, 10, "the first pair evicted")
    assert [c["id"] for c in out["connections"]] == [2]  # the last one only
    assert out["capture"]["max_connections"] == 1
    assert t.terminate() == 0


@pytest.mark.twistd
@pytest.mark.parametrize("flag", ["--redis", "--web"])
def test_demo_busy_port_names_the_flag(twistd, flag):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        ports = {"--redis": free_port(), "--http": free_port(), "--web": free_port(), flag: port}
        t = twistd(["demo"] + [str(w) for pair in ports.items() for w in pair])
        code = t.proc.wait(20)
        t.terminate()
    assert code == 1
    assert f"cannot listen on {flag} tcp:{port}" in t.output()


@pytest.mark.pure
@pytest.mark.parametrize("redis_at, http_at, redis_cli, curl", [
    ("6479", "8081", "redis-cli -p 6479 set foo bar", "curl localhost:8081/get"),
    # these said "redis-cli -p unix:/tmp/d.sock:backlog=1024" and "redis-cli -p 7000" (which
    # goes to 127.0.0.1, not ::1): commands that do not reach the proxy
    ("unix:/tmp/d.sock", "unix:/tmp/h.sock", "redis-cli -s /tmp/d.sock set foo bar",
     "curl --unix-socket /tmp/h.sock http://localhost/get"),
    ("tcp:7000:interface=::1", "[::1]:8081", "redis-cli -h ::1 -p 7000 set foo bar",
     "curl http://[::1]:8081/get"),
    ("0.0.0.0:7000", "127.0.0.2:8081", "redis-cli -p 7000 set foo bar",
     "curl http://127.0.0.2:8081/get"),
])
def test_the_banner_reaches_the_proxy_where_it_listens(redis_at, http_at, redis_cli, curl):
    if not (shutil.which("redis-cli") and shutil.which("curl")):
        pytest.skip("the banner names redis-cli and curl only when they are installed")
    opts = demo.Options()
    opts.parseOptions(["--redis", redis_at, "--http", http_at, "--no-web"])
    lines = demo.hints(opts["redis"], opts["http"])
    assert f"  {redis_cli}" in lines and f"  {curl}" in lines, lines
