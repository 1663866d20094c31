"""Round trips with real peers: a redis-cli / redis-py session and a curl session captured by
the proxy's --pcap (and --json), replayed with ``python -m playground replay`` against fresh servers
(identical: exit 0) and against servers whose data changed (the differences, exit 1)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from tests.support.net import free_port
from tests.support.paths import ROOT
from tests.support.processes import need, start_proxy, start_redis, stop_process

pytestmark = pytest.mark.twistd

PASSWORD = "s3cret-pw-77"


def _replay(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "playground", "replay", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def _redis_cli(port: int, *command: str) -> str:
    out = subprocess.run([need("redis-cli"), "-p", str(port), "-a", PASSWORD,
                          "--no-auth-warning", *command], capture_output=True, text=True,
                         timeout=20, check=True)
    return out.stdout.strip()


def _seeded_redis(tmp_path, name: str, mode: str):
    d = tmp_path / name
    d.mkdir()
    server = start_redis(str(d), PASSWORD)
    redis.Redis(port=server.port, password=PASSWORD).set("config:mode", mode)  # not captured
    return server


def test_a_redis_session_replays_identically_then_shows_what_changed(twistd, tmp_path):
    servers = [_seeded_redis(tmp_path, "recorded", "fast")]
    try:
        pcap = tmp_path / "session.pcap"
        events = tmp_path / "session.jsonl"
        proxy, port = start_proxy(twistd, servers[0].port, "--pcap", pcap, "--json", events,
                                  "--quiet")
        assert _redis_cli(port, "SET", "user:1", "alice") == "OK"
        assert _redis_cli(port, "GET", "config:mode") == "fast"
        client = redis.Redis(port=port, password=PASSWORD)
        client.rpush("list", "a", "b")
        assert client.lrange("list", 0, -1) == [b"a", b"b"]
        assert client.incr("counter") == 1
        client.close()
        assert proxy.terminate() == 0

        servers.append(_seeded_redis(tmp_path, "fresh", "fast"))
        same = _replay(pcap, "--target", servers[-1].port, "--auth", PASSWORD, "--speed", "max")
        assert same.returncode == 0, same.stdout + same.stderr
        assert "0 different, 0 without a reply; 0 of 3 connection(s)" in same.stdout

        servers.append(_seeded_redis(tmp_path, "fresh-for-json", "fast"))
        from_json = _replay(events, "--target", servers[-1].port, "--auth", PASSWORD, "--speed",
                            "max")
        assert from_json.returncode == 0, from_json.stdout + from_json.stderr
        assert "0 of 3 connection(s)" in from_json.stdout

        missing = _replay(pcap, "--target", servers[-1].port)
        assert missing.returncode == 2
        assert "the capture masks its password; give --auth" in missing.stderr

        servers.append(_seeded_redis(tmp_path, "changed", "slow"))
        changed = _replay(pcap, "--target", servers[-1].port, "--auth", PASSWORD, "--json")
        assert changed.returncode == 1
        report = __import__("json").loads(changed.stdout)
        lines = [d["line"] for c in report["connections"] for d in c["differences"]]
        assert lines == ['#2 GET config:mode: recorded "fast", now "slow"']
        text = _replay(pcap, "--target", servers[-1].port, "--auth", PASSWORD, "--pipelined",
                       "--speed", "max", "--select", "2")
        assert text.returncode == 1
        assert '  #2 GET config:mode: recorded "fast", now "slow"' in text.stdout.splitlines()
        for out in (same, from_json, missing, changed, text):
            assert PASSWORD not in out.stdout + out.stderr
    finally:
        for server in servers:
            stop_process(server.proc)


def _curl(port: int, *paths: str, header: str = "Authorization: Bearer tok-123") -> None:
    urls = [arg for p in paths for arg in ("-o", "/dev/null", f"http://127.0.0.1:{port}{p}")]
    subprocess.run([need("curl"), "-sS", "-H", header, *urls],
                   timeout=20, check=True)


def test_a_curl_session_replays_against_a_fresh_http_server(twistd, tmp_path):
    http_port = free_port()
    twistd(["http", "--listen", http_port]).wait_for("listening on")
    pcap = tmp_path / "web.pcap"
    proxy, port = start_proxy(twistd, http_port, "--pcap", pcap, "--quiet")
    _curl(port, "/get", "/uuid", "/status/418")  # one keep-alive connection
    assert proxy.terminate() == 0

    fresh = free_port()
    twistd(["http", "--listen", fresh]).wait_for("listening on")
    auth = ("--header", "Authorization: Bearer tok-123")
    same = _replay(pcap, "--target", fresh, *auth, "--ignore", "Date,$.uuid")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "3 replies compared: " in same.stdout and " 0 different, " in same.stdout

    strict = _replay(pcap, "--target", fresh, *auth, "--ignore", "Date")
    assert strict.returncode == 1
    assert any(line.startswith('  #2 GET /uuid: body $.uuid: recorded "')
               for line in strict.stdout.splitlines()), strict.stdout

    moved = _replay(pcap, "--target", fresh, *auth, "--ignore", "Date,$.uuid",
                    "--host", "example.test")
    assert moved.returncode == 1
    assert (f'  #1 GET /get: body $.headers.Host: recorded "127.0.0.1:{port}", '
            f'now "example.test"') in moved.stdout.splitlines(), moved.stdout

    masked = _replay(pcap, "--target", fresh)
    assert masked.returncode == 2 and "tok-123" not in masked.stderr
    assert "masks its Authorization header; give --header 'Authorization: ...'" in masked.stderr
