"""Processes the tests start: real peers found on PATH (``need``), a redis-server, ``twistd -n
tcpplay ...`` with its log lines collected, and stopping them within bounded waits; whether a
process is ``alive``, and a proxy's decoder process (``child_of``)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from tests.support.net import free_port, wait_port
from tests.support.paths import ROOT, TWISTD


def need(tool: str) -> str:
    """The path of a real peer; fail loudly (never skip) when it is missing."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; run 'make test' (it installs the test peers)")
    return path


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie not yet reaped counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def child_of(pid: int) -> int:
    """The one child process of ``pid`` (a proxy's decoder process)."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        children = f.read().split()
    assert len(children) == 1, children
    return int(children[0])


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class RedisServer:
    def __init__(self, port: int, proc: subprocess.Popen, password: str | None):
        self.port = port
        self.proc = proc
        self.password = password


def start_redis(tmpdir: str, password: str | None = None, port: int | None = None,
                extra: tuple[str, ...] = ()) -> RedisServer:
    """A redis-server on ``port`` (a free one unless given: a restart reuses its port), with
    ``extra`` arguments (``--timeout 1``)."""
    exe = need("redis-server")
    port = port or free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", tmpdir, "--daemonize", "no", "--loglevel", "warning"]
    if password:
        args += ["--requirepass", password]
    args += extra
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return RedisServer(port, proc, password)


class Twistd:
    """``twistd -n --pidfile= tcpplay ...`` as a subprocess whose log lines are collected."""

    def __init__(self, args: list[str], cwd: str | None = None, env: dict | None = None,
                 stdin=None, new_session: bool = False, twistd_args=()):
        """``twistd_args``: twistd's own options (``--logfile=...``), before ``tcpplay``."""
        full_env = dict(os.environ, PYTHONUNBUFFERED="1")
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", *twistd_args, "tcpplay", *args], stdin=stdin,
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


def start_proxy(start, target, *extra, listen: str = "tcp:0:interface=127.0.0.1"):
    """``start(["proxy", ...])`` (the ``twistd`` fixture or alike) listening on a kernel-chosen
    loopback port; return the ``Twistd`` and the port it reports."""
    proc = start(["proxy", "--listen", listen, "--target", str(target), *[str(a) for a in extra]])
    line = proc.wait_for("proxy listening on")
    m = re.search(r"proxy listening on 127\.0\.0\.1:(\d+)", line)
    assert m, line
    return proc, int(m.group(1))


def goes_on_after(proc, signum: int, said: str, port: int) -> None:
    """Send ``signum`` to ``proc`` (a started twistd, the ``twistd`` fixture's) twice: each
    time it logs ``said`` and goes on running, still accepting on ``port``."""
    import socket

    from tests.support.waiting import wait_until

    proc.proc.send_signal(signum)
    proc.wait_for(said, timeout=10)
    assert proc.proc.poll() is None
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass
    proc.proc.send_signal(signum)  # again: a line each time, still running
    wait_until(lambda: proc.output().count(said) == 2, 10, f"the second {signum!r}'s line")
