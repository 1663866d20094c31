"""``twistd tcpplay proxy --fault ...`` with real peers: latency at the client, bandwidth over a
2 MiB transfer, slicer's segments at the receiver, timeout and half_open leaving the client
waiting, limit_data cutting curl, reset_peer giving ECONNRESET, down refusing redis-cli, and nc's
half-close still answered under latency."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import pytest
import redis

from playground.codec.encoder import encode_command
from tests.support.net import PING, PONG, free_port, recv_exactly, wait_closed
from tests.support.processes import need, start_proxy

pytestmark = pytest.mark.twistd


def close_line(proc, text: str) -> str:
    return proc.wait_for(text, timeout=10)


def test_latency_delays_every_redis_command_by_at_least_the_latency(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--fault", "latency:downstream:200ms")
    client = redis.Redis(port=port, socket_timeout=10)
    try:
        client.ping()  # the connection's own set-up commands are not what is timed
        times = []
        for _ in range(3):
            t0 = time.monotonic()
            assert client.ping()
            times.append(time.monotonic() - t0)
    finally:
        client.close()
    assert min(times) >= 0.2
    assert max(times) < 0.2 * 2, times  # applied once, not twice (a loaded machine's turns vary)
    proc.wait_for("toxic latency_downstream (latency, downstream) acts on this pair")
    cli = need("redis-cli")
    t0 = time.monotonic()
    out = subprocess.run([cli, "-h", "127.0.0.1", "-p", str(port), "ping"], capture_output=True,
                         text=True, timeout=20)
    assert out.stdout.strip() == "PONG" and time.monotonic() - t0 >= 0.2


def test_bandwidth_paces_a_bounded_transfer(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--fault", "bandwidth:downstream:1024",
                             "--quiet")
    size = 2 * 1024 * 1024
    direct = redis.Redis(port=redis_server.port)
    direct.set("faults:bandwidth", b"x" * size)
    client = redis.Redis(port=port, socket_timeout=20)
    try:
        client.ping()
        t0 = time.monotonic()
        assert len(client.get("faults:bandwidth")) == size
        took = time.monotonic() - t0
    finally:
        client.close()
        direct.close()
    # 2 MiB at 1024 KB/s: 2 s; the lower bound is the pacing, the upper one a rate far off
    assert 2.0 * 0.9 <= took <= 2.0 * 1.5, took


def test_slicer_segments_arrive_apart(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port,
                             "--fault", "slicer:downstream:100,delay=20ms", "--quiet")
    redis.Redis(port=redis_server.port).set("faults:slicer", b"y" * 1000)
    expected = len(b"$1000\r\n") + 1000 + 2  # 11 segments of 100 bytes (the last 7), 20 ms apart
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        sent = time.monotonic()
        s.sendall(encode_command("GET", "faults:slicer"))
        reads = []  # (seconds since the GET was sent, bytes received so far)
        while not reads or reads[-1][1] < expected:
            chunk = s.recv(65536)
            assert chunk, "closed early"
            reads.append((time.monotonic() - sent, (reads[-1][1] if reads else 0) + len(chunk)))
    # Segment k leaves the proxy no sooner than 20*k ms after the GET came (a timer never fires
    # early), so by any moment at most one more segment than the 20 ms steps since then can have
    # arrived. A late reader (a loaded machine) finds several segments in one read: that only
    # makes its moment later; whole segments sent at once, or bigger ones, break the bound.
    for at, received in reads:
        assert received <= 100 * (1 + int(at / 0.020)), reads
    assert reads[-1][0] >= 0.2, reads  # the last of 11 segments: 10 steps after the first


@pytest.mark.parametrize("fault", ["timeout:downstream", "half_open:upstream"])
def test_timeout_and_half_open_leave_the_client_waiting(twistd, redis_server, fault):
    proc, port = start_proxy(twistd, redis_server.port, "--fault", fault, "--quiet")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(PING)
        s.settimeout(1.5)
        with pytest.raises(TimeoutError):
            s.recv(100)  # no reply, and no close either: the client waits


def test_limit_data_cuts_curl(twistd):
    curl = need("curl")
    http_port = free_port()
    server = twistd(["http", "--listen", str(http_port)])
    server.wait_for("listening on")
    proc, port = start_proxy(twistd, http_port, "--fault", "limit_data:downstream:100")
    url = f"http://127.0.0.1:{port}/"
    out = subprocess.run([curl, "-sS", "-D", "-", url], capture_output=True, timeout=20)
    # cut inside the headers: curl gets the first 100 bytes and no body
    assert out.stdout.startswith(b"HTTP/1.1 200") and len(out.stdout) <= 100, out
    whole = subprocess.run([curl, "-sS", "-D", "-", f"http://127.0.0.1:{http_port}/"],
                           capture_output=True, timeout=20)
    assert len(whole.stdout) > 100 and whole.stdout.startswith(out.stdout[:60])
    assert "fin by toxic limit_data_downstream" in close_line(proc, " close ")


def test_reset_peer_gives_the_client_econnreset(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--fault", "reset_peer:downstream:300ms")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(PING)
        assert recv_exactly(s, len(PONG)) == PONG
        how, waited = wait_closed(s, 10)
    assert how == "reset" and waited < 1.0
    assert "reset by toxic reset_peer_downstream" in close_line(proc, " close ")


def test_down_refuses_connections_then_listens_again(twistd, redis_server):
    cli = need("redis-cli")
    # a port free_port holds: while the proxy is down, nothing else on the machine can take it
    # (a port 0 the kernel chose would be anyone's for those two seconds)
    proc, port = start_proxy(twistd, redis_server.port, "--fault", "down:2s,after=500ms",
                             listen=f"tcp:{free_port()}:interface=127.0.0.1")

    def ping():
        return subprocess.run([cli, "-h", "127.0.0.1", "-p", str(port), "ping"],
                              capture_output=True, text=True, timeout=20)

    with socket.create_connection(("127.0.0.1", port), timeout=10) as kept:
        proc.wait_for("proxy down (toxic down_downstream)")
        refused = ping()
        assert "Connection refused" in refused.stdout + refused.stderr
        kept.sendall(PING)  # the pair opened before stays
        assert recv_exactly(kept, len(PONG)) == PONG
    proc.wait_for("proxy up again")
    assert ping().stdout.strip() == "PONG"


def test_nc_half_close_under_latency_still_gets_the_reply(twistd, redis_server):
    nc = need("nc")
    proc, port = start_proxy(twistd, redis_server.port, "--fault", "latency:upstream:200ms",
                             "--fault", "latency:downstream:100ms")
    t0 = time.monotonic()
    p = subprocess.run(f"printf 'PING\\r\\n' | {nc} -N 127.0.0.1 {port}", shell=True,
                       capture_output=True, timeout=20)
    assert p.returncode == 0, p.stderr
    assert p.stdout == PONG and time.monotonic() - t0 >= 0.3


def test_sigterm_drains_a_pair_whose_reply_a_toxic_still_holds(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--fault", "latency:downstream:500ms")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(PING)
        proc.wait_for("toxic latency_downstream (latency, downstream) acts on this pair")
        proc.proc.send_signal(signal.SIGTERM)
        proc.signalled = True
        proc.wait_for("proxy draining 1 open pair(s)")
        assert recv_exactly(s, len(PONG)) == PONG  # the held reply still arrives
    assert proc.terminate() == 0
