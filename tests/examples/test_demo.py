"""``twistd tcpplay demo`` (what ``make run`` starts): both proxies answer and show decoded traffic."""

from __future__ import annotations

import socket
import subprocess

import pytest
import redis

from tests.support.net import free_port
from tests.support.processes import need

pytestmark = pytest.mark.twistd


def test_demo_proxies_resp_and_http_and_shows_them(twistd):
    rport, hport = free_port(), free_port()
    t = twistd(["demo", "--redis", rport, "--http", hport, "--color", "never"])
    t.wait_for("The decoded traffic appears below")
    assert f"redis-cli -p {rport} set foo bar" in t.output()
    assert f"curl localhost:{hport}/get" in t.output()

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


def test_demo_busy_port_names_the_flag(twistd):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        t = twistd(["demo", "--redis", port, "--http", free_port()])
        code = t.proc.wait(20)
        t.terminate()
    assert code == 1
    assert f"cannot listen on --redis tcp:{port}" in t.output()
