"""``twistd tcpplay proxy --fault 'http:...'`` in front of ``twistd tcpplay http``, driven by curl:
an injected 503 with Retry-After the server never sees (its access log), a delayed response, a
slow body (timed, bounded), a cut body (curl's transfer error); the injected mark in the console
and the JSON lines for http and resp faults."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from playground.codec.encoder import encode_command
from tests.support.net import free_port, recv_exactly
from tests.support.processes import need, start_proxy

pytestmark = pytest.mark.twistd


def http_proxy(twistd, *faults_and_options):
    http_port = free_port()
    server = twistd(["http", "--listen", str(http_port)])
    server.wait_for("listening on")
    extra = []
    for a in faults_and_options:  # "http:..." is a fault, the rest options as they are
        extra += ["--fault", a] if str(a).startswith("http:") else [a]
    proc, port = start_proxy(twistd, http_port, *extra)
    return server, proc, f"http://127.0.0.1:{port}"


def curl(*args, timeout=30):
    return subprocess.run([need("curl"), "-sS", *args], capture_output=True, timeout=timeout)


def test_503_with_retry_after_never_reaches_the_server(twistd):
    server, proc, url = http_proxy(twistd, "http:GET /status/*:status=503,retry_after=7")
    out = curl("-D", "-", f"{url}/status/200", f"{url}/get?x=1")  # one connection, two requests
    text = out.stdout.decode("latin-1")
    assert text.startswith("HTTP/1.1 503 Service Unavailable\r\n"), text
    assert "Retry-After: 7\r\n" in text
    assert "injected by tcpplay fault http_downstream" in text
    assert "HTTP/1.1 200 OK" in text  # the second request went through
    proc.wait_for("fault http_downstream answered 503 for GET /status/200 on pair 1")
    server.wait_for("GET /get?x=1 ")
    assert "/status/200" not in server.output()


WAITED = "\n%{time_starttransfer} %{time_pretransfer}"


def waited(out) -> float:
    """From what ``curl -w WAITED`` printed last: the seconds from its request sent to the first
    byte of the response (not curl's start nor its connect, which a loaded machine stretches)."""
    first_byte, request_sent = map(float, out.stdout.rsplit(b"\n", 1)[-1].split())
    return first_byte - request_sent


def test_delay_holds_the_response(twistd):
    server, proc, url = http_proxy(twistd, "http:GET /get:delay=400ms")
    fast = curl("-w", WAITED, f"{url}/headers")
    t0 = time.monotonic()
    slow = curl("-w", WAITED, f"{url}/get")
    slow_took = time.monotonic() - t0
    assert fast.returncode == 0 and slow.returncode == 0
    # at least the delay from before curl starts; the upper bounds as curl timed the wait
    fast_waited, slow_waited = waited(fast), waited(slow)
    assert slow_took >= 0.4 and slow_waited < 0.4 * 2, (slow_took, slow_waited)  # once, not twice
    assert fast_waited < 0.4, fast_waited  # not held (the bound: the delay itself)


def test_slow_body_is_paced(twistd, tmp_path):
    server, proc, url = http_proxy(twistd, "http:GET /bytes/*:slow_body=2000")
    body = tmp_path / "body"
    t0 = time.monotonic()
    out = curl("-o", body, "-w", "%{time_starttransfer} %{time_total}", f"{url}/bytes/3000?seed=1")
    took = time.monotonic() - t0
    assert out.returncode == 0 and len(body.read_bytes()) == 3000, out
    # 3000 bytes at 2000 B/s, the head and the first tenth of a second's piece at once: 1.4 s.
    # At least that from before curl started; at most that (with its margin) as curl timed it,
    # from the response's first byte to its last: not curl's start, its connect and the
    # proxy's to the server, which a loaded machine stretched by 1.3 s (2.73 s in all)
    first, last = map(float, out.stdout.split())
    assert 1.3 <= took, took
    assert last - first < 1.4 * 1.1 + 0.3, (first, last)


def test_cut_gives_curl_a_partial_transfer(twistd):
    server, proc, url = http_proxy(twistd, "http:GET /bytes/*:cut=100")
    out = curl(f"{url}/bytes/1000?seed=1")
    assert out.returncode == 18, out  # CURLE_PARTIAL_FILE
    assert len(out.stdout) == 100
    proc.wait_for("closed by toxic http_downstream (fin)")


def test_injected_mark_in_console_and_json_for_http_and_resp(twistd, redis_server, tmp_path):
    json_http = tmp_path / "http.jsonl"
    server, proc, url = http_proxy(twistd, "http:GET /status/*:status=503",
                                   "http:GET /headers:delay=50ms,name=slow", "--json", json_http)
    assert curl(f"{url}/status/200", f"{url}/get", f"{url}/headers").returncode == 0
    line = proc.wait_for("GET /status/200 -> 503")
    assert line.endswith("[injected: http_downstream]"), line
    assert "[injected" not in proc.wait_for("GET /get -> 200")
    assert proc.wait_for("GET /headers -> 200").endswith("[fault: slow]")
    assert proc.terminate() == 0
    records = [json.loads(x) for x in json_http.read_text().splitlines()]
    http = {r["target"]: r for r in records if r["type"] == "http"}
    assert http["/status/200"]["fault"] == "http_downstream"
    assert http["/status/200"]["injected"] is True
    assert "fault" not in http["/get"]
    assert http["/headers"]["fault"] == "slow" and "injected" not in http["/headers"]

    json_resp = tmp_path / "resp.jsonl"
    proc, port = start_proxy(twistd, redis_server.port, "--fault",
                             "resp:GET user:*:error=-LOADING", "--json", json_resp)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(encode_command("GET", "user:1") + encode_command("PING"))
        want = b"-LOADING\r\n+PONG\r\n"
        assert recv_exactly(s, len(want)) == want
    line = proc.wait_for("GET user:1 -> ")
    assert "-LOADING" in line and line.endswith("[injected: resp_downstream]"), line
    assert proc.terminate() == 0
    redis_records = [json.loads(x) for x in json_resp.read_text().splitlines()]
    by_name = {r["command"][0]: r for r in redis_records if r["type"] == "redis"}
    assert by_name["GET"]["command"] == ["GET", "user:1"]
    assert by_name["GET"]["fault"] == "resp_downstream" and by_name["GET"]["injected"] is True
    assert "fault" not in by_name["PING"]
