"""Shared test fixtures: free loopback ports, a real redis-server, twistd subprocesses, and the
helpers several test modules use (socket reads, RESP exchanges, tshark, the proxy command)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import settings

# `make test` is repeatable: hypothesis draws the same examples on every run and has no
# per-example deadline (a loaded 2-core machine is slow, not wrong). To search further:
# HYPOTHESIS_PROFILE=explore make test
settings.register_profile("tcpplay", deadline=None, derandomize=True)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tcpplay"))

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(tool: str) -> str:
    """The path of a real peer; fail loudly (never skip) when it is missing."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; run 'make test' (it installs the test peers)")
    return path


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def wait_until(predicate, timeout: float = 15.0, what: str = "condition",
               interval: float = 0.02):
    """Poll ``predicate`` until it returns something true (returned); fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def until(predicate, what: str, timeout: float = 15.0):
    """``wait_until`` for code on the reactor thread (``yield until(...)`` in inlineCallbacks):
    polls ``predicate`` every 10 ms without blocking the reactor; fails at the deadline."""
    from twisted.internet import defer, reactor, task

    @defer.inlineCallbacks
    def poll():
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            yield task.deferLater(reactor, 0.01, lambda: None)

    return poll()


def reactor_turn(clock) -> int:
    """Run the calls of a ``MemoryReactorClock`` due now, but not those they schedule with
    ``callLater(0)`` (``advance(0)`` runs those too): one reactor turn. Returns how many ran."""
    due = [c for c in clock.calls if c.getTime() <= clock.seconds()]
    for c in due:
        if c in clock.calls:  # not cancelled by an earlier one
            clock.calls.remove(c)
            c.called = 1
            c.func(*c.args, **c.kw)
    return len(due)


def wait_closed(sock: socket.socket, timeout: float) -> tuple[str, float]:
    """Block until the peer ends the connection; return ("eof"|"reset", seconds waited).

    Bytes that arrive first are read and ignored; hitting the deadline fails the test.
    """
    import ssl

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


PING = b"*1\r\n$4\r\nPING\r\n"
PONG = b"+PONG\r\n"


def start_proxy(start, target, *extra, listen: str = "tcp:0:interface=127.0.0.1"):
    """``start(["proxy", ...])`` (the ``twistd`` fixture or alike) listening on a kernel-chosen
    loopback port; return the ``Twistd`` and the port it reports."""
    proc = start(["proxy", "--listen", listen, "--target", str(target), *[str(a) for a in extra]])
    line = proc.wait_for("proxy listening on")
    m = re.search(r"proxy listening on 127\.0\.0\.1:(\d+)", line)
    assert m, line
    return proc, int(m.group(1))


def tshark(path, *args) -> str:
    """``tshark -r path *args``'s output; a non-zero exit fails the test."""
    exe = need("tshark")
    out = subprocess.run(
        [exe, "-r", str(path), *args], capture_output=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


def rows(text: str) -> list[str]:
    """The non-blank lines of ``text``."""
    return [line for line in text.splitlines() if line.strip()]


def redis_commands(path, port=6379, *extra) -> int:
    """Client commands tshark's RESP dissector finds in a pcap: arrays in frames to ``port``,
    minus the partial array of a frame whose command is completed (and shown again) in a later
    frame. ``extra``: more tshark options (``-d tcp.port==N,resp``)."""
    out = tshark(
        path,
        *extra,
        "-Y",
        f"resp && tcp.dstport == {port}",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-e",
        "resp.array.length",
        "-e",
        "resp.reassembled_in_next_frame",
    )
    total = 0
    for line in out.splitlines():
        arrays, partial = (line.split("\t") + [""])[:2]
        total += len([a for a in arrays.split("|") if a]) - len(
            [p for p in partial.split("|") if p]
        )
    return total


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


@pytest.fixture
def logged():
    """Every ``twisted.logger`` event emitted during the test (observer removed afterwards)."""
    from twisted.logger import globalLogPublisher

    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


class RedisServer:
    def __init__(self, port: int, proc: subprocess.Popen, password: str | None):
        self.port = port
        self.proc = proc
        self.password = password


def start_redis(tmpdir: str, password: str | None = None) -> RedisServer:
    exe = need("redis-server")
    port = free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", tmpdir, "--daemonize", "no", "--loglevel", "warning"]
    if password:
        args += ["--requirepass", password]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return RedisServer(port, proc, password)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a free loopback port, shared by the session (tests FLUSHALL as needed)."""
    tmp = tempfile.mkdtemp(prefix="tcpplay-redis-")
    server = start_redis(tmp)
    yield server
    stop_process(server.proc)
    shutil.rmtree(tmp, ignore_errors=True)


class Twistd:
    """``twistd -n --pidfile= tcpplay ...`` as a subprocess whose log lines are collected."""

    def __init__(self, args: list[str], cwd: str | None = None, env: dict | None = None,
                 stdin=None, new_session: bool = False):
        full_env = dict(os.environ, PYTHONUNBUFFERED="1")
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "tcpplay", *args], stdin=stdin,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd or str(ROOT), env=full_env,
            start_new_session=new_session,
        )
        self.lines: list[str] = []
        self.signalled = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = 15.0, start: int = 0) -> str:
        """Block until a log line containing ``text`` appears; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"{text!r} not seen in twistd output:\n" + "\n".join(self.lines[-40:])
                    )
                self._cond.wait(min(left, 0.2))

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM (once: a second one during the drain would cut it short) and the exit code."""
        if self.proc.poll() is None and not self.signalled:
            self.signalled = True
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        self._reader.join(5)
        return code


@pytest.fixture
def twistd():
    """Factory fixture: ``twistd(["echo", "--listen", str(port)])``; every process is stopped."""
    started: list[Twistd] = []

    def start(args, **kw) -> Twistd:
        t = Twistd([str(a) for a in args], **kw)
        started.append(t)
        return t

    yield start
    for t in started:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait(5)
