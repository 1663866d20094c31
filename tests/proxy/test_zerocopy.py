"""The zero-copy splice (``playground.proxy.zerocopy``): ``--decode none`` pairs moved with
``splice(2)``, keeping the splice's promises; in memory, which pairs take it.

The real tests run ``twistd tcpplay proxy --decode none`` in front of a listening socket of the
test's own (so each side's bytes, FINs and resets are seen exactly) or a real redis-server.
Every wait has a deadline.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher

from playground.proxy import service, zerocopy
from playground.proxy.splice import ProxyFactory
from tests.support.net import (
    PING,
    PONG,
    TIME_WAIT,
    recv_exactly,
    tcp_socket,
    wait_closed,
)
from tests.support.processes import need, start_proxy
from tests.support.splice import Endpoint, Transport
from tests.support.waiting import wait_until

ON = "kernel to kernel (splice(2)"


class Upstream:
    """A listening socket on 127.0.0.1 standing in for the target; ``accept()`` the proxy."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def accept(self, timeout: float = 10.0) -> socket.socket:
        self.listener.settimeout(timeout)
        conn, _ = self.listener.accept()
        conn.settimeout(timeout)
        return conn

    def pinged(self, port: int) -> tuple[socket.socket, socket.socket, int]:
        """A client through the proxy on ``port`` and the connection the proxy made here, a
        PING already across: (client, server side, the client's port)."""
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = self.accept()
        c.sendall(PING)
        assert recv_exactly(s, len(PING)) == PING
        return c, s, c.getsockname()[1]

    def close(self):
        self.listener.close()


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


def close_line(proc, client_port: int) -> str:
    return proc.wait_for(f"close 127.0.0.1:{client_port} ")


def counts(line: str) -> tuple[int, int, str, str]:
    m = re.search(r"c2s=(\d+) s2c=(\d+) .* first=(\w+) how=([\w-]+)", line)
    assert m, line
    return int(m[1]), int(m[2]), m[3], m[4]


def pipes_open(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
        except OSError:
            pass
    return n


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read())[1])


# --- memory: which pairs take it ----------------------------------------------------------------


@pytest.mark.memory
def test_in_memory_transports_keep_the_python_path():
    """Not plain TCP sockets (here StringTransports): the ordinary forwarding, said once."""
    clock = MemoryReactorClock()
    endpoint = Endpoint()
    factory = ProxyFactory(endpoint, reactor=clock)
    client = factory.buildProtocol(None)
    client.makeConnection(Transport())
    upstream_factory, d = endpoint.attempts[0]
    server = upstream_factory.buildProtocol(None)
    server.makeConnection(Transport(peer=("127.0.0.1", 6379)))
    d.callback(server)
    pair = client.pair
    assert pair.splicer is None
    client.dataReceived(b"PING\r\n")
    assert server.transport.value() == b"PING\r\n"
    assert "transport" in zerocopy._logged


@pytest.mark.pure
@pytest.mark.parametrize("args, zero_copy, toxics", [
    ([], True, False),
    (["--no-zero-copy"], False, False),
    (["--fault", "latency:100ms"], True, True),
])
def test_options_choose_the_path(args, zero_copy, toxics):
    """``--no-zero-copy`` turns it off; a proxy that may get toxics has a ToxicSet (no zero-copy
    for its pairs), one that cannot has none."""
    opts = service.Options()
    opts.parseOptions(["--target", "6379", "--decode", "none", *args])
    proxy = service.make_service(opts, reactor=MemoryReactorClock())
    assert proxy.factory.zero_copy is zero_copy
    assert proxy.factory.observer is None
    assert (proxy.factory.toxics is not None) is toxics


# --- real sockets through twistd --------------------------------------------------------------


@pytest.mark.twistd
def test_bytes_both_ways_half_close_and_counts(twistd, upstream):
    proc, port = start_proxy(twistd, upstream.port, "--decode", "none")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        me = c.getsockname()[1]
        s = upstream.accept()
        with s:
            c.sendall(b"hello")
            assert recv_exactly(s, 5) == b"hello"
            c.shutdown(socket.SHUT_WR)  # the client's FIN reaches the server...
            assert s.recv(10) == b""
            s.sendall(b"still flowing")  # ...and the other direction goes on
            assert recv_exactly(c, 13) == b"still flowing"
            s.shutdown(socket.SHUT_WR)
            assert c.recv(10) == b""
    assert counts(close_line(proc, me)) == (5, 13, "client", "fin")
    assert ON in proc.output()
    assert proc.terminate() == 0


@pytest.mark.twistd
def test_four_pipe_fds_per_pair_and_none_after(twistd, upstream):
    proc, port = start_proxy(twistd, upstream.port, "--decode", "none")
    pid = proc.proc.pid
    base = pipes_open(pid)
    c, s, me = upstream.pinged(port)
    with c:
        assert pipes_open(pid) == base + 4
        s.close()
        wait_closed(c, timeout=5)
    close_line(proc, me)
    wait_until(lambda: pipes_open(pid) == base, 5, "the pipes to be closed")
    assert ON in proc.output()  # the pair took the zero-copy path
    assert proc.terminate() == 0


@pytest.mark.twistd
def test_no_zero_copy_flag_forwards_in_python(twistd, upstream):
    proc, port = start_proxy(twistd, upstream.port, "--decode", "none", "--no-zero-copy")
    base = pipes_open(proc.proc.pid)
    c, s, me = upstream.pinged(port)
    with c:
        assert pipes_open(proc.proc.pid) == base
        s.close()
    close_line(proc, me)
    assert ON not in proc.output()
    assert proc.terminate() == 0


@pytest.mark.twistd
def test_client_reset_aborts_the_server_side(twistd, upstream):
    proc, port = start_proxy(twistd, upstream.port, "--decode", "none")
    c, s, me = upstream.pinged(port)
    with s:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # RST
        how, _ = wait_closed(s, timeout=5)
    assert how == "reset"
    assert counts(close_line(proc, me))[2:] == ("client", "reset")
    assert ON in proc.output()  # the pair took the zero-copy path
    assert proc.terminate() == 0


@pytest.mark.twistd
def test_idle_timeout(twistd, upstream):
    proc, port = start_proxy(twistd, upstream.port, "--decode", "none", "--idle-timeout", "1")
    c, s, me = upstream.pinged(port)
    with c, s:
        how, waited = wait_closed(c, timeout=5)
    assert how == "reset" and 0.9 <= waited < 3, (how, waited)
    assert counts(close_line(proc, me)) == (len(PING), 0, "proxy", "idle-timeout")
    assert ON in proc.output()  # the pair took the zero-copy path
    assert proc.terminate() == 0


@pytest.mark.twistd
def test_slow_reader_holds_the_sender_back_without_growing(twistd, upstream):
    """The server pushes at a client that does not read: the server is held back by TCP (the
    proxy holds at most a pipe's worth, in the kernel) and the proxy's RSS does not grow."""
    proc, port = start_proxy(twistd, upstream.port, "--decode", "none")
    before = rss_kib(proc.proc.pid)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s = upstream.accept()
        with s:
            s.setblocking(False)
            chunk = b"x" * (1 << 20)
            sent = 0
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and sent < (256 << 20):
                try:
                    sent += s.send(chunk)
                except BlockingIOError:
                    time.sleep(0.01)
            assert sent < (64 << 20), f"{sent} bytes taken while nobody reads"
            grown = rss_kib(proc.proc.pid) - before
            assert grown < 4096, f"RSS grew by {grown} KiB"
            c.settimeout(10)  # now read it all: nothing was lost
            got = 0
            while got < sent:
                got += len(c.recv(1 << 20))
    assert got == sent
    assert ON in proc.output()  # the pair took the zero-copy path
    assert proc.terminate() == 0


def push_until_held(s: socket.socket, seconds: float = 1.0, limit: int = 256 << 20) -> int:
    """Send from ``s`` (non-blocking) until it has taken nothing for ``seconds``: the proxy no
    longer reads it (its pipe or copy is full, the client reads nothing). Bytes sent."""
    s.setblocking(False)
    chunk = b"x" * (1 << 20)
    sent = 0
    idle_since = time.monotonic()
    deadline = idle_since + 20
    while time.monotonic() - idle_since < seconds and sent < limit:
        assert time.monotonic() < deadline, "the proxy kept reading"
        try:
            sent += s.send(chunk)
            idle_since = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
    assert sent < limit, f"{sent} bytes taken while nobody reads"
    return sent


@pytest.mark.twistd
@pytest.mark.parametrize("decode", ["none", "auto"])  # spliced; by copy (observed)
def test_a_reset_of_a_side_no_longer_read_is_seen_at_once(twistd, upstream, decode):
    """The client reads nothing, so the proxy stops reading the server (which it watches for
    nothing else): the server's reset still closes the pair at once, by reset both ways, not
    at --idle-timeout (none here: never)."""
    proc, port = start_proxy(twistd, upstream.port, "--decode", decode)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        me = c.getsockname()[1]
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s = upstream.accept()
        push_until_held(s)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST
        line = close_line(proc, me)
        if decode == "none":
            assert counts(line)[2:] == ("server", "reset"), line
        else:  # the console's line
            assert line.endswith("(reset by server)"), line
        how, _ = wait_closed(c, timeout=5)
    assert how == "reset"
    assert (ON if decode == "none" else "by copy in the zero-copy dispatcher") in proc.output()
    assert proc.terminate() == 0


@pytest.mark.twistd
def test_a_fin_both_ways_while_the_client_lags_is_no_reset(twistd, upstream):
    """The client half-closes and reads nothing yet; the server answers more than the proxy
    holds, then closes: the proxy's socket to it is shut both ways (a hang-up) while it is not
    read; that is no reset: the client gets every byte and the FIN.

    The server's FIN reaches the proxy only once everything it sent before is in the proxy's
    socket, and with room in its window: the client reads until the server has nothing left to
    send, then 256 KiB more (the proxy, held by its full pipe, takes that much from its socket
    and leaves the rest unread). The FIN is then in (the proxy's socket in TIME_WAIT), and a
    second pair's PING crossing the proxy is a turn of its reactor with that hang-up ready: the
    0.5 s this test slept instead passed before the FIN could come at all."""
    proc, port = start_proxy(twistd, upstream.port, "--decode", "none")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        me = c.getsockname()[1]
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s = upstream.accept()
        c.sendall(PING)
        c.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        assert recv_exactly(s, len(PING)) == PING
        assert s.recv(1) == b""  # the FIN came through: the proxy shut its side for writing
        sent = push_until_held(s)
        proxy_end = s.getpeername()[1], upstream.port
        c.settimeout(10)
        got = 0
        while tcp_socket(upstream.port, proxy_end[0]).sending:  # the server's queue to empty
            got += len(c.recv(64 << 10))
        more = got + (256 << 10)
        while got < more:
            got += len(c.recv(more - got))
        assert tcp_socket(*proxy_end).unread > 0  # what the proxy, held, does not read
        s.close()  # FIN: the proxy's socket to the server is now shut both ways
        wait_until(lambda: tcp_socket(*proxy_end).state == TIME_WAIT, 10, "the FIN in")
        c2, s2, _ = upstream.pinged(port)  # a hang-up taken for a reset closes the pair now
        c2.close()
        s2.close()
        while True:
            data = c.recv(1 << 20)
            if not data:
                break
            got += len(data)
    assert got == sent
    assert counts(close_line(proc, me)) == (len(PING), sent, "client", "fin")
    assert proc.terminate() == 0


@pytest.mark.twistd
def test_256_mib_bulk_in_bounded_time(twistd, upstream):
    size = 256 << 20
    proc, port = start_proxy(twistd, upstream.port, "--decode", "none")
    received: list[int] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        me = c.getsockname()[1]
        s = upstream.accept(timeout=30)

        def sink():
            n = 0
            with s:
                while chunk := s.recv(1 << 20):
                    n += len(chunk)
            received.append(n)

        reader = threading.Thread(target=sink, daemon=True)
        reader.start()
        t0 = time.monotonic()
        chunk = memoryview(b"\xa5" * (1 << 20))
        for _ in range(size >> 20):
            c.sendall(chunk)
        c.shutdown(socket.SHUT_WR)
        reader.join(60)
        took = time.monotonic() - t0
    assert received == [size]
    assert took < 60, f"256 MiB took {took:.1f}s"
    assert counts(close_line(proc, me))[:2] == (size, 0)
    assert ON in proc.output()  # the pair took the zero-copy path
    assert proc.terminate() == 0


@pytest.mark.twistd
def test_redis_clients_and_nc_half_close(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--decode", "none")
    bench = need("redis-benchmark")
    p = subprocess.run([bench, "-h", "127.0.0.1", "-p", str(port), "-q", "-n", "20000",
                        "-P", "16", "-t", "set,get"], capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "error" not in out.lower(), out
    assert re.search(r"GET: [\d.]+ requests per second", out), out
    nc = need("nc")
    p = subprocess.run(f"printf 'PING\\r\\n' | {nc} -N 127.0.0.1 {port}", shell=True,
                       capture_output=True, timeout=20)
    assert p.stdout == PONG
    assert ON in proc.output()
    assert proc.terminate() == 0


@pytest.mark.twistd
def test_sigterm_drains_an_open_pair_then_exits_0(twistd, upstream):
    proc, port = start_proxy(twistd, upstream.port, "--decode", "none", "--drain-timeout", "10")
    c, s, me = upstream.pinged(port)
    with c:
        with s:
            proc.proc.send_signal(signal.SIGTERM)
            proc.wait_for("proxy draining 1 open pair(s)")
            s.sendall(PONG)  # the open pair is still served during the drain
            assert recv_exactly(c, len(PONG)) == PONG
            c.sendall(PING)
            assert recv_exactly(s, len(PING)) == PING
            c.shutdown(socket.SHUT_WR)
            assert s.recv(10) == b""
        assert c.recv(10) == b""
    assert proc.proc.wait(10) == 0
    assert ON in proc.output()
    proc.terminate()
    assert counts(close_line(proc, me)) == (2 * len(PING), len(PONG), "client", "fin")


@pytest.mark.pure
def test_reserve_fds_raises_the_soft_limit_to_six_per_pair():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    seen: list[dict] = []
    globalLogPublisher.addObserver(seen.append)
    zerocopy._logged.discard("budget")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
        zerocopy.reserve_fds(100)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 100 * 6 + 64
        assert not [e for e in seen if "covers about" in e.get("log_format", "")]
        if hard != resource.RLIM_INFINITY:  # past the hard limit: as far as it goes, and said
            zerocopy.reserve_fds(hard)
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
            assert [e for e in seen if "covers about" in e.get("log_format", "")]
    finally:
        globalLogPublisher.removeObserver(seen.append)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
