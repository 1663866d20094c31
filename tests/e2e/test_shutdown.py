"""Stopping with idle clients connected: the drain timeout of proxy, demo and chat, and the second
Ctrl-C that ends the drain at once (real twistd processes, real clients)."""

from __future__ import annotations

import os
import pty
import signal
import socket
import subprocess
import time

import pytest

from tests.support.net import PING, PONG, free_port, recv_exactly, wait_closed
from tests.support.paths import ROOT, TWISTD
from tests.support.processes import Twistd


class Foreground(Twistd):
    """``twistd -n tcpplay ...`` with a terminal as stdin (as when run by hand), output kept."""

    def __init__(self, args):
        self.master, slave = pty.openpty()
        super().__init__([str(a) for a in args], stdin=slave, new_session=True)
        os.close(slave)

    def output(self) -> str:
        self._reader.join(5)
        return super().output()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master)


@pytest.fixture
def foreground():
    started: list[Foreground] = []

    def start(args) -> Foreground:
        started.append(Foreground(args))
        return started[-1]

    yield start
    for f in started:
        f.close()


def _twice(fg: Foreground, drain_line: str, first=signal.SIGINT) -> float:
    """Ctrl-C, wait for the drain line, Ctrl-C again: the seconds until the process is gone."""
    fg.proc.send_signal(first)
    line = fg.wait_for(drain_line)
    assert line.endswith("; Ctrl-C again to stop now"), line
    t0 = time.monotonic()
    fg.proc.send_signal(signal.SIGINT)
    code = fg.proc.wait(10)
    assert code == 0, fg.output()
    return time.monotonic() - t0


@pytest.mark.twistd
@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_second_ctrl_c_aborts_the_proxy_drain_at_once(foreground, redis_server, first):
    port = free_port()
    fg = foreground(["proxy", "--listen", port, "--target", redis_server.port])
    fg.wait_for("proxy listening on")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        idle.sendall(PING)
        assert recv_exactly(idle, len(PONG)) == PONG
        took = _twice(fg, "proxy draining 1 open pair(s) for up to 10s", first)
        how, _ = wait_closed(idle, timeout=2)
    assert took < 2, f"exit {took:.2f}s after the second Ctrl-C"
    assert how == "reset"
    out = fg.output()
    assert "proxy stopping now: aborting 1 pair(s)" in out
    assert "(shutdown by proxy)" in out
    assert "Traceback" not in out and "ReactorNotRunning" not in out


@pytest.mark.twistd
def test_second_ctrl_c_ends_the_chat_goodbye_at_once(foreground):
    port = free_port()
    fg = foreground(["chat", "--listen", port, "--drain-timeout", 30])
    fg.wait_for("chat listening on")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        assert idle.recv(4096)  # the greeting; the client then stays, reading nothing more
        took = _twice(fg, "chat closing 1 connection(s) for up to 30s")
    assert took < 2, f"exit {took:.2f}s after the second Ctrl-C"
    out = fg.output()
    assert "Traceback" not in out and "ReactorNotRunning" not in out


@pytest.mark.twistd
@pytest.mark.parametrize("kind", ["demo", "chat"])
def test_drain_timeout_of_demo_and_chat(foreground, kind):
    port = free_port()
    if kind == "demo":
        args = ["demo", "--redis", port, "--http", free_port(), "--web", free_port(),
                "--drain-timeout", 1]
        ready = "proxy redis listening on"
    else:
        args = ["chat", "--listen", port, "--drain-timeout", 1]
        ready = "chat listening on"
    fg = foreground(args)
    fg.wait_for(ready)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        if kind == "demo":
            idle.sendall(PING)
            assert recv_exactly(idle, len(PONG)) == PONG
        else:
            assert idle.recv(4096)  # the greeting: the server has the connection
        t0 = time.monotonic()
        fg.proc.send_signal(signal.SIGTERM)
        code = fg.proc.wait(15)
        took = time.monotonic() - t0
    assert code == 0, fg.output()
    assert 0.9 <= took < 4, f"exit after {took:.2f}s with --drain-timeout 1"
    assert "Traceback" not in fg.output()


@pytest.mark.real
def test_signals_are_ignored_once_the_services_stopped_on_a_signal():
    """After a signal-started stop has drained everything, further Ctrl-Cs are ignored (not
    handled by Python, whose finalization puts the default action back: a Ctrl-C landing then
    killed the process with status -2 instead of letting it exit 0)."""
    from twisted.internet import reactor

    from playground.tap import TcpplayService

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    top = TcpplayService()
    top.startService()
    reactor._exitSignal = signal.SIGINT
    try:
        top.stopService()
        assert reactor._exitSignal is None  # reported as an orderly stop: exit status 0
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        reactor._exitSignal = None
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@pytest.mark.twistd
def test_signal_sent_on_seeing_the_listening_line_stops_in_order():
    """"listening on" is logged once the reactor runs, with its signal handlers in place: a
    SIGINT sent on seeing it (as scripts and tests do) is an orderly stop, not a
    KeyboardInterrupt traceback in start-up code and exit status -2."""
    for _ in range(5):
        proc = subprocess.Popen([TWISTD, "-n", "--pidfile=", "tcpplay", "echo", "--listen", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(ROOT))
        try:
            out = b""
            for line in proc.stdout:  # ends at EOF if it dies before the line
                out += line
                if b"listening on" in line:
                    proc.send_signal(signal.SIGINT)
                    break
            rest, _ = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        text = (out + rest).decode("utf-8", "replace")
        assert proc.returncode == 0 and "Traceback" not in text, text
        assert "Server Shut Down." in text, text
