"""toxiproxy's API in the test's reactor (``run``: the registry and the API on loopback, a check
in a thread against its port), plain HTTP calls to it, and what a client of a proxy sees."""

from __future__ import annotations

import http.client
import json
import socket

from tests.support.net import PING, PONG, recv_exactly


def call(port: int, method: str, path: str, body=None, raw: bytes | None = None,
         headers: dict | None = None):
    """One request: (status, parsed JSON body or None (none, or not JSON), the response)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers=headers or {})
        response = conn.getresponse()
        text = response.read()
    finally:
        conn.close()
    json_body = response.getheader("Content-Type", "").startswith("application/json")
    return response.status, (json.loads(text) if text and json_body else None), response


def ping(port: int) -> bytes:
    """PING through a proxy on ``port``: what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(PING)
        return recv_exactly(s, len(PONG))


def refused(port: int) -> bool:
    """Whether a connect to ``port`` is refused (nothing listens)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def listen_port(proxy: dict) -> int:
    """The port of a proxy's ``listen`` as the API shows it."""
    return int(proxy["listen"].rsplit(":", 1)[1])


def run(check, token: str | None = None, **registry_options):
    """Start a registry and its API on loopback, run ``check(api_port)`` in a thread, stop both;
    a Deferred (yield it from a ``pytest_twisted.inlineCallbacks`` test)."""
    from twisted.internet import defer, threads

    from playground.faults.api import ApiListening
    from playground.faults.registry import Registry

    registry = Registry(drain_timeout=1.0, **registry_options)
    api = ApiListening(registry, "tcp:0:interface=127.0.0.1", token=token)
    registry.startService()
    api.privilegedStartService()
    api.startService()

    @defer.inlineCallbacks
    def running():
        try:
            return (yield threads.deferToThread(check, api.address.port))
        finally:
            yield api.stopService()
            yield registry.stopService()

    return running()
