"""Real sockets on loopback: free ports, waiting for a listener, bounded reads, a RESP exchange,
a CRLF-line client, and a listener that never answers."""

from __future__ import annotations

import socket
import ssl
import time
from typing import NamedTuple

import pytest

PING = b"*1\r\n$4\r\nPING\r\n"
PONG = b"+PONG\r\n"


# The sockets holding the ports free_port handed out, until release_ports (the end of the test).
_held: list[socket.socket] = []


def free_port() -> int:
    """A loopback port nothing listens on, kept for this test until ``release_ports``.

    The port stays bound to a socket with SO_REUSEADDR that never listens: a server binding it
    with SO_REUSEADDR too (twistd, redis-server, nc -l) listens there, while the kernel hands it
    to no one else meanwhile, neither to a bind to port 0 nor as a connect's local port. Closed
    at once, it was free for anyone (another test's listener or client, on this loaded machine)
    between the choice and the server's bind: "Address already in use".
    """
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    _held.append(s)
    return s.getsockname()[1]


def release_ports() -> None:
    """Let go of the ports free_port handed out (their servers keep the ones they listen on)."""
    while _held:
        _held.pop().close()


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def wait_closed(sock: socket.socket, timeout: float) -> tuple[str, float]:
    """Block until the peer ends the connection; return ("eof"|"reset", seconds waited).

    Bytes that arrive first are read and ignored; hitting the deadline fails the test.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"connection still open after {timeout}s")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except (ConnectionResetError, ssl.SSLError):
            return "reset", time.monotonic() - t0
        if not chunk:
            return "eof", time.monotonic() - t0


def read_to_close(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` to ``127.0.0.1:port`` and read until the server closes (a reset or
    ``timeout`` seconds without a byte end the read too)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return got


def recv_exactly(sock: socket.socket, n: int, timeout: float = 10.0) -> bytes:
    """Read until ``n`` bytes have arrived, the peer closes, or the deadline passes; return what
    arrived. Reads whole chunks, so bytes beyond ``n`` that come with the last one are returned
    too (a caller comparing with ``==`` also sees a surplus)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def resp_exchange(port: int, data: bytes, count: int, timeout: float = 10.0) -> list:
    """Send ``data`` to a RESP server on loopback ``port``; read ``count`` replies (fewer if it
    closes first or the deadline passes)."""
    from playground.codec.parser import RespParser

    parser = RespParser()
    values: list = []
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        while len(values) < count and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            values += parser.feed(chunk)
    return values


class RawClient:
    """A blocking CRLF-line client on a real socket (bounded waits)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.raw = b""
        self.lines: list[str] = []

    def send(self, data: bytes):
        self.sock.sendall(data)

    def read_until(self, text: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                self.lines.append(line.decode("utf-8", "replace"))
                if text in self.lines[-1]:
                    return self.lines[-1]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} not received; got {self.lines}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"closed before {text!r}; got {self.lines}")
            self.buf += chunk
            self.raw += chunk

    def read_to_close(self, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        data = self.buf
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk
        raise AssertionError(f"not closed within {timeout}s; got {data!r}")

    def close(self):
        self.sock.close()


SYN_SENT, TIME_WAIT = "02", "06"  # TCP states as /proc/net/tcp writes them


class TcpSocket(NamedTuple):
    state: str  # SYN_SENT, TIME_WAIT...
    local: int  # port
    remote: int
    sending: int  # bytes not yet acknowledged by the peer (its send queue)
    unread: int  # bytes received that the owner has not read (its receive queue)


def tcp_sockets():
    """Every IPv4 TCP socket of this machine, as ``/proc/net/tcp`` lists them: ``TcpSocket``."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            sending, unread = (int(n, 16) for n in fields[4].split(":"))
            yield TcpSocket(fields[3], int(fields[1].rsplit(":", 1)[1], 16),
                            int(fields[2].rsplit(":", 1)[1], 16), sending, unread)


def tcp_socket(local: int, remote: int) -> TcpSocket | None:
    """The IPv4 TCP socket from port ``local`` to port ``remote`` (on loopback), if any."""
    return next((t for t in tcp_sockets() if (t.local, t.remote) == (local, remote)), None)


def connecting_to(port: int) -> int:
    """How many IPv4 loopback sockets of this machine are connecting to ``port`` (SYN_SENT):
    an unanswering listener's waiting connects."""
    return sum(1 for t in tcp_sockets() if t.state == SYN_SENT and t.remote == port)


def unanswering_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A loopback listener whose accept queue is full, so new SYNs get no answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    for _ in range(16):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            probe.connect(("127.0.0.1", port))
        except TimeoutError:
            probe.close()
            return listener, fillers
        fillers.append(probe)
    for s in fillers:
        s.close()
    listener.close()
    pytest.fail("could not fill a loopback accept queue: no way to make an unanswering target")
