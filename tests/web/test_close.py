"""Closing a connection from the web view's API, on real sockets: ``twistd tcpplay proxy --web``
in front of redis-server, a raw socket client idle on its pair; ``rst`` resets it, ``fin`` ends
it with EOF after the bytes in flight; the API's errors; the close named in the capture, the
console and the log."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from tests.support.processes import need, start_proxy
from tests.support.waiting import wait_until
from tests.support.web import ACTION, api_get, api_post, web_url

pytestmark = pytest.mark.twistd


@pytest.fixture(params=["--decode-process", "--decode-inline"])
def proxy(request, twistd, redis_server, tmp_path):
    """The view in the decoder child (the default on more than one core) or in the proxy."""
    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--color", "never", "--json", tmp_path / "events.jsonl",
                             request.param)
    base = web_url(proc).split("?")[0].rstrip("/")
    yield proc, port, base
    assert proc.terminate() == 0, proc.output()[-2000:]


def json_closes(proc, tmp_path) -> list[dict]:
    """The JSON lines sink's close records (flushed when the proxy stops)."""
    assert proc.terminate() == 0, proc.output()[-2000:]
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "close"]


def idle_client(port: int, base: str) -> tuple[socket.socket, int]:
    """A raw client that sent a PING, got its PONG and now sits idle; its pair id."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    assert sock.recv(100) == b"+PONG\r\n"

    def open_pair():
        rows = api_get(base + "/api/connections")["connections"]
        mine = [c for c in rows if c["client"] == "%s:%d" % sock.getsockname()]
        return mine[0]["id"] if mine and mine[0]["exchanges"] else None

    return sock, wait_until(open_pair, 10, "the pair in the capture", interval=0.05)


def closed_row(base: str, pair: int) -> dict:
    return wait_until(lambda: (c := api_get(f"{base}/api/connections/{pair}")["connection"])
                      ["state"] == "closed" and c, 10, "the closed row", interval=0.05)


def test_rst_resets_the_client_and_is_recorded_as_the_web_views(proxy, tmp_path):
    proc, port, base = proxy
    sock, pair = idle_client(port, base)
    with sock:
        status, answer = api_post(f"{base}/api/connections/{pair}/close", '{"how": "rst"}', *ACTION)
        assert (status, answer) == (202, {"id": pair, "how": "rst", "closing": True})
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
    row = closed_row(base, pair)
    assert (row["closed_by"], row["how"]) == ("web view", "reset")
    proc.wait_for(f"proxy #{pair} closed by web view (rst)")
    proc.wait_for("(reset by web view)")  # the console's close line
    # now closed: a second close is a 404
    status, answer = api_post(f"{base}/api/connections/{pair}/close", '{"how": "rst"}', *ACTION)
    assert status == 404 and answer["error"] == f"no open connection {pair}"
    closes = [r for r in json_closes(proc, tmp_path) if r["pair"] == pair]
    assert [(r["closed_by"], r["how"]) for r in closes] == [("web view", "reset")]


def test_fin_ends_the_client_with_eof_after_the_bytes_in_flight(proxy, tmp_path):
    proc, port, base = proxy
    sock, pair = idle_client(port, base)
    with sock:
        status, _ = api_post(f"{base}/api/connections/{pair}/close", '{"how": "fin"}', *ACTION)
        assert status == 202
        assert sock.recv(100) == b""
    row = closed_row(base, pair)
    assert (row["closed_by"], row["how"]) == ("web view", "fin")
    proc.wait_for(f"proxy #{pair} closed by web view (fin)")
    proc.wait_for("(fin by web view)")
    stream = api_get(f"{base}/api/connections/{pair}/stream")
    assert [ch["mark"] for ch in stream["chunks"] if "mark" in ch][-1] == "close"
    closes = [r for r in json_closes(proc, tmp_path) if r["pair"] == pair]
    assert [(r["closed_by"], r["how"]) for r in closes] == [("web view", "fin")]


def test_close_errors(proxy):
    proc, port, base = proxy
    sock, pair = idle_client(port, base)
    url = f"{base}/api/connections/{pair}/close"
    with sock:
        status, answer = api_post(url, '{"how": "rst"}')  # no action header: a plain form could
        assert status == 403 and "X-Tcpplay-Action" in answer["error"]
        status, answer = api_post(url, '{"how": "rst"}', *ACTION, "-H", "Origin: http://evil.example")
        assert status == 403 and "origin" in answer["error"]
        status, answer = api_post(url, '{"how": "rst"}', *ACTION, "-H", "Origin: null")
        assert status == 403
        for body in ('{"how": "kill"}', "not json", "[]", '{"why": "fin"}', None,
                     '{"how": "' + "x" * 2000 + '"}'):
            status, answer = api_post(url, body, *ACTION)
            assert status == 400 and answer["status"] == 400, body
        status, answer = api_post(f"{base}/api/connections/99999/close", '{"how": "fin"}', *ACTION)
        assert (status, answer) == (404, {"error": "no open connection 99999", "status": 404})
        status, answer = api_post(f"{base}/api/connections/abc/close", '{"how": "fin"}', *ACTION)
        assert status == 404
        out = subprocess.run([need("curl"), "-sS", "-o", "/dev/null", "-D", "-", url],
                             capture_output=True, timeout=20, check=True, text=True).stdout
        assert out.startswith("HTTP/1.1 405") and "Allow: POST" in out.replace("allow", "Allow")
        # a same-origin request (what the page sends) is fine; the client was left alone so far
        host = base.split("://")[1]
        status, _ = api_post(url, '{"how": "fin"}', *ACTION, "-H", f"Origin: http://{host}")
        assert status == 202
        assert sock.recv(100) == b""


def test_off_loopback_closing_needs_the_token_too(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0", "--quiet")
    url = web_url(proc)
    base, _, query = url.partition("?")
    base = base.rstrip("/")
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert sock.recv(100) == b"+PONG\r\n"
        status, _ = api_post(f"{base}/api/connections/1/close", '{"how": "fin"}', *ACTION)
        assert status == 401
        status, _ = api_post(f"{base}/api/connections/1/close?{query}", '{"how": "fin"}', *ACTION)
        assert status == 202
        assert sock.recv(100) == b""
    assert proc.terminate() == 0
