"""twistd daemon mode: pidfile, logfile, SIGUSR1 rotation, SIGTERM drain, one instance, JSON logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from playground.daemon import jsonlog
from tests.support.net import free_port
from tests.support.paths import TWISTD
from tests.support.processes import alive
from tests.support.waiting import wait_until


def read(path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


class Daemon:
    def __init__(self, cwd, args, logger: str | None = None, twistd_args=()):
        self.cwd = cwd
        self.pidfile = cwd / "tcpplay.pid"
        self.logfile = cwd / "tcpplay.log"
        self.argv = [TWISTD, f"--pidfile={self.pidfile}", f"--logfile={self.logfile}",
                     *twistd_args]
        if logger:
            self.argv.append(f"--logger={logger}")
        self.argv += ["tcpplay", *map(str, args)]
        self.pid = None

    def start(self) -> subprocess.CompletedProcess:
        # The parent returns once the daemon has forked off; stdio of the daemon is /dev/null.
        return subprocess.run(self.argv, cwd=self.cwd, capture_output=True, text=True,
                              timeout=60)

    def wait_started(self, text: str = "listening on") -> int:
        self.pid = int(wait_until(lambda: read(self.pidfile).strip(), what="the pid file"))
        wait_until(lambda: text in read(self.logfile), what=f"{text!r} in the log")
        return self.pid

    def wait_log(self, text: str, path=None) -> str:
        return wait_until(lambda: text in read(path or self.logfile) and read(path or
                                                                              self.logfile),
                          what=f"{text!r} in {path or self.logfile}")

    def stop(self):
        if self.pid and alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
            wait_until(lambda: not alive(self.pid), 5, "the daemon to die")


@pytest.fixture
def daemons():
    started: list[Daemon] = []

    def make(cwd, args, **kw) -> Daemon:
        d = Daemon(cwd, args, **kw)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


def ping(sock) -> bytes:
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    buf = b""
    deadline = time.monotonic() + 10
    while not buf.endswith(b"\r\n") and time.monotonic() < deadline:
        chunk = sock.recv(100)
        if not chunk:
            break
        buf += chunk
    return buf


@pytest.mark.twistd
def test_daemon_pidfile_log_rotation_drain_and_single_instance(daemons, redis_server, tmp_path):
    port = free_port()
    d = daemons(tmp_path, ["proxy", "--listen", port, "--target", redis_server.port,
                           "--drain-timeout", 20])
    first = d.start()
    assert first.returncode == 0, first.stdout + first.stderr
    pid = d.wait_started("proxy listening on")
    assert pid != os.getpid() and alive(pid)

    # a second instance with the same pid file refuses to start, naming the running one
    again = daemons(tmp_path, ["proxy", "--listen", free_port(), "--target", redis_server.port])
    refused = again.start()
    assert refused.returncode == 1
    assert f"Another twistd server is running, PID {pid}" in refused.stdout + refused.stderr
    assert read(d.pidfile).strip() == str(pid)

    # traffic is logged to the file
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert ping(s) == b"+PONG\r\n"
    d.wait_log("proxy #1 close")

    # SIGUSR1: twistd's LogFile.rotate: the log moves to .1 and a new file starts
    os.kill(pid, signal.SIGUSR1)
    rotated = tmp_path / "tcpplay.log.1"
    wait_until(rotated.exists, what="tcpplay.log.1")
    assert "proxy #1 close" in rotated.read_text()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert ping(s) == b"+PONG\r\n"
    d.wait_log("proxy #2 close")
    assert "proxy #1 close" not in read(d.logfile)

    # SIGTERM with a client connected: stop listening, drain (the client still gets answers),
    # finish when it leaves; the pid file goes, the log says so
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        assert ping(client) == b"+PONG\r\n"
        os.kill(pid, signal.SIGTERM)
        d.wait_log("proxy draining 1 open pair(s)")
        assert ping(client) == b"+PONG\r\n"
        assert alive(pid) and d.pidfile.exists()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        client.close()
    wait_until(lambda: not d.pidfile.exists(), what="the pid file to be removed")
    wait_until(lambda: not alive(pid), what="the daemon to exit")
    log = read(d.logfile)
    assert "Received SIGTERM, shutting down." in log
    assert "proxy stopped listening" in log
    assert "Server Shut Down." in log
    assert "Traceback" not in log + rotated.read_text()


@pytest.mark.twistd
def test_stale_pidfile_is_replaced(daemons, tmp_path):
    port = free_port()
    d = daemons(tmp_path, ["echo", "--listen", port])
    dead = subprocess.Popen(["true"])
    dead.wait()
    d.pidfile.write_text(str(dead.pid))  # a pid that no longer runs
    assert d.start().returncode == 0
    pid = d.wait_started("echo listening on")
    assert pid != dead.pid and read(d.pidfile).strip() == str(pid)
    echo_once(port)  # served: the reactor runs (and handles SIGTERM)
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not d.pidfile.exists(), what="the pid file to be removed")


def echo_once(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"hello\n")
        s.shutdown(socket.SHUT_WR)
        assert s.recv(100) == b"hello\n"


def json_lines(path) -> list[dict]:
    return [json.loads(line) for line in read(path).splitlines() if line.strip()]


@pytest.mark.twistd
def test_json_logger_in_daemon_mode(daemons, tmp_path):
    port = free_port()
    d = daemons(tmp_path, ["echo", "--listen", port], logger="playground.daemon.jsonlog.observer")
    assert d.start().returncode == 0
    pid = d.wait_started("echo listening on")
    events = json_lines(d.logfile)  # every line is one JSON object
    listening = [e for e in events if e["message"].startswith("echo listening on")]
    assert listening and listening[0]["level"] == "info"
    assert listening[0]["namespace"] == "playground.common.listening.ListeningService"
    assert listening[0]["address"] == f"127.0.0.1:{port}"
    assert "T" in listening[0]["time"] and listening[0]["time"].endswith("Z")

    echo_once(port)
    d.wait_log('"bytes_in":6')
    close = [e for e in json_lines(d.logfile) if e["message"].startswith("echo close")]
    assert close[0]["bytes_in"] == 6 and close[0]["bytes_out"] == 6

    os.kill(pid, signal.SIGUSR1)  # the JSON log rotates too
    rotated = tmp_path / "tcpplay.log.1"
    wait_until(rotated.exists, what="tcpplay.log.1")
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not d.pidfile.exists(), what="the pid file to be removed")
    wait_until(lambda: not alive(pid), what="the daemon to exit")
    messages = [e["message"] for e in json_lines(d.logfile)]
    assert "Received SIGTERM, shutting down." in messages
    assert "Server Shut Down." in messages
    assert any(e["message"].startswith("echo close") for e in json_lines(rotated))


@pytest.mark.twistd
def test_json_logger_in_the_foreground_writes_stdout(tmp_path):
    port = free_port()
    proc = subprocess.Popen([TWISTD, "-n", "--pidfile=", "--logger=playground.daemon.jsonlog.observer",
                             "tcpplay", "echo", "--listen", str(port)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["message"].startswith("twistd ")
        while True:
            event = json.loads(proc.stdout.readline())
            if event["message"].startswith("echo listening on"):
                break
        echo_once(port)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0
    assert [json.loads(line)["message"] for line in rest.splitlines()][-1] == "Server Shut Down."


@pytest.mark.pure
def test_twistd_destination_reads_twistds_own_options():
    assert jsonlog.twistd_destination(
        ["--pidfile=x", "--logfile=/tmp/a.log", "tcpplay", "echo", "--logfile=no"]
    ) == ("/tmp/a.log", False)
    assert jsonlog.twistd_destination(["-n", "-l", "b.log", "tcpplay"]) == ("b.log", True)
    assert jsonlog.twistd_destination(["-nl", "c.log", "tcpplay"]) == ("c.log", True)
    assert jsonlog.twistd_destination(["--nodaemon", "tcpplay", "-l", "x"]) == (None, True)


@pytest.mark.pure
@pytest.mark.parametrize("name, value, error", [
    # int() took ' 5', '+5' and '1_0', and 'abc' was its traceback at start-up
    ("TCPPLAY_LOG_ROTATE_BYTES", "abc", "expected a whole number (digits 0-9 only), got 'abc'"),
    ("TCPPLAY_LOG_ROTATE_BYTES", " 5", "expected a whole number (digits 0-9 only), got ' 5'"),
    ("TCPPLAY_LOG_ROTATE_BYTES", str(1 << 40), "must be at most 68719476736 bytes (64 GiB)"),
    ("TCPPLAY_LOG_KEEP", "+3", "expected a whole number (digits 0-9 only), got '+3'"),
    ("TCPPLAY_LOG_KEEP", "1_0", "expected a whole number (digits 0-9 only), got '1_0'"),
])
def test_a_bad_rotation_setting_is_one_line_naming_it(name, value, error, monkeypatch, capsys,
                                                     tmp_path):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as e:
        jsonlog.open_destination(str(tmp_path / "t.log"), nodaemon=False)
    assert e.value.code == 1
    assert capsys.readouterr().err.startswith(f"twistd: {name}: {error}")
    assert not (tmp_path / "t.log").exists()


@pytest.mark.pure
def test_event_as_json_fields_and_failures():
    failure = Failure(ZeroDivisionError("division by zero"))
    event = {"log_format": "pair {pair} from {peer}", "pair": 3, "peer": b"\xff1.2.3.4",
             "message": "clash", "obj": object(), "log_level": LogLevel.warn,
             "log_namespace": "playground.x", "log_time": 0.0, "log_failure": failure}
    line = jsonlog.format_event(event)
    assert line.endswith("\n") and line.count("\n") == 1
    out = json.loads(line)
    assert out["time"] == "1970-01-01T00:00:00.000Z"
    assert out["level"] == "warn" and out["namespace"] == "playground.x"
    assert out["pair"] == 3 and out["peer"] == "\ufffd1.2.3.4"
    assert out["obj"].startswith("<object object")
    assert "ZeroDivisionError" in out["traceback"]
    assert "log_format" not in out


def _config(tmp_path, port: int) -> str:
    path = tmp_path / "busy.toml"
    path.write_text(f"[echo.first]\nlisten = {free_port()}\n\n[echo.second]\nlisten = {port}\n")
    return str(path)


@pytest.mark.twistd
@pytest.mark.parametrize("kind", ["echo", "serve"])
def test_daemon_with_a_busy_port_fails_at_once_on_the_terminal(daemons, tmp_path, kind):
    """The launcher reports the bind failure itself (before it forks the daemon): exit status 1,
    the one-line reason on its stderr, no pid file, no daemon left running."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["echo", "--listen", port] if kind == "echo" else [
            "serve", "--config", _config(tmp_path, port)]
        d = daemons(tmp_path, args)
        started = time.monotonic()
        result = subprocess.run(d.argv, cwd=d.cwd, capture_output=True, text=True, timeout=20)
        assert time.monotonic() - started < 10
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, out
    where = "" if kind == "echo" else f"{tmp_path / 'busy.toml'}:4: [echo.second] "
    assert lines[0].startswith(f"{where}tcpplay echo: cannot listen on --listen"), out
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], out
    assert not d.pidfile.exists()
    assert "Traceback" not in out + read(d.logfile)


@pytest.mark.twistd
def test_daemon_with_rundir_and_a_busy_port_fails_at_once(daemons, tmp_path):
    """--rundir too: the launcher binds (in the run directory) and reports a busy port, rather
    than waiting forever on a daemon that died, leaving its pid file."""
    rundir = tmp_path / "run"
    rundir.mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        d = daemons(tmp_path, ["echo", "--listen", port], twistd_args=[f"--rundir={rundir}"])
        try:
            result = subprocess.run(d.argv, cwd=d.cwd, capture_output=True, text=True,
                                    timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("the launcher hung on a busy port with --rundir")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot listen on --listen" in lines[0], result.stderr
    assert not d.pidfile.exists()


@pytest.mark.twistd
def test_daemon_with_rundir_binds_unix_paths_there_serves_and_stops(daemons, tmp_path):
    rundir = tmp_path / "run"
    rundir.mkdir()
    d = daemons(tmp_path, ["echo", "--listen", "unix:echo.sock"],
                twistd_args=[f"--rundir={rundir}"])
    started = d.start()
    assert started.returncode == 0, started.stdout + started.stderr
    pid = d.wait_started("echo listening on")
    sock_path = rundir / "echo.sock"
    assert sock_path.exists() and not (tmp_path / "echo.sock").exists()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock_path))
        s.sendall(b"hi\n")
        s.shutdown(socket.SHUT_WR)
        assert s.recv(100) == b"hi\n"
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not d.pidfile.exists(), what="the pid file to be removed")
    wait_until(lambda: not alive(pid), what="the daemon to exit")
    assert "Traceback" not in read(d.logfile)
    # the socket's lock, taken by the launcher that bound it, went with the daemon's stop (a
    # lock left naming the launcher's pid fails a later start whose process has that pid)
    assert sorted(os.listdir(rundir)) == []
    assert "echo stopped listening" in read(d.logfile)


@pytest.mark.twistd
@pytest.mark.parametrize("kind", ["proxy", "serve"])
def test_json_to_stdout_in_daemon_mode_is_a_usage_error(daemons, tmp_path, kind):
    """A daemon's stdout is /dev/null: ``--json -`` would lose every event without a word."""
    args = ["proxy", "--listen", free_port(), "--target", "6379", "--json", "-"]
    if kind == "serve":
        config = tmp_path / "j.toml"
        config.write_text(f'[proxy.r]\nlisten = {free_port()}\ntarget = 6379\njson = "-"\n')
        args = ["serve", "--config", config]
    d = daemons(tmp_path, args)
    result = d.start()
    if result.returncode == 0:  # a daemon started after all: the fixture stops it
        d.wait_started()
    assert result.returncode == 1, result.stdout + result.stderr
    first = result.stderr.splitlines()[0]
    assert "a daemon has no stdout" in first, result.stderr
    assert (f"{config}:1: [proxy.r] json:" if kind == "serve" else "--json -:") in first
    assert not d.pidfile.exists()


@pytest.mark.twistd
def test_missing_rundir_is_one_line_on_the_terminal(daemons, tmp_path):
    d = daemons(tmp_path, ["echo", "--listen", free_port()],
                twistd_args=[f"--rundir={tmp_path / 'nope'}"])
    result = d.start()
    assert result.returncode == 1
    assert result.stderr.startswith(f"twistd tcpplay echo: --rundir: cannot change to "
                                    f"{tmp_path / 'nope'}: no such directory"), result.stderr
    assert "Traceback" not in read(d.logfile)


def _json_args(kind: str, tmp_path, listen: int) -> list:
    if kind == "proxy":
        return ["proxy", "--listen", listen, "--target", free_port(), "--json", "out/x.jsonl"]
    path = tmp_path / "rel.toml"
    path.write_text(f'[proxy.p]\nlisten = {listen}\ntarget = {free_port()}\n'
                    f'json = "out/x.jsonl"\n')
    return ["serve", "--config", path]


@pytest.mark.twistd
@pytest.mark.parametrize("kind", ["proxy", "serve"])
def test_a_relative_output_path_is_checked_where_the_daemon_writes_it(daemons, tmp_path, kind):
    """The daemon opens a relative --json in --rundir, but it was checked from the launching
    directory: an out/ only in the run directory was refused ('cannot write out/x.jsonl: No
    such file or directory'), and one only in the launching directory passed the check, the
    daemon then decoding nothing (its sinks could not start)."""
    rundir = tmp_path / "run"
    (rundir / "out").mkdir(parents=True)
    d = daemons(tmp_path, _json_args(kind, tmp_path, free_port()),
                twistd_args=[f"--rundir={rundir}"])
    result = d.start()
    assert result.returncode == 0, result.stdout + result.stderr
    d.wait_started("proxy listening on")
    wait_until(lambda: (rundir / "out" / "x.jsonl").exists(), what="the JSON file in --rundir")
    os.kill(d.pid, signal.SIGTERM)
    wait_until(lambda: not alive(d.pid), 15, "the daemon to stop")

    (rundir / "out" / "x.jsonl").unlink()
    (rundir / "out").rmdir()
    (tmp_path / "out").mkdir()
    d = daemons(tmp_path, _json_args(kind, tmp_path, free_port()),
                twistd_args=[f"--rundir={rundir}"])
    result = d.start()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot write out/x.jsonl" in result.stderr and "No such file" in result.stderr
    assert not d.pidfile.exists()


@pytest.mark.twistd
@pytest.mark.skipif(os.geteuid() != 0, reason="--uid needs root")
def test_a_daemon_under_uid_rotates_its_log(daemons):
    """twistd opens --logfile as root, then runs as --uid, which could not rename the root's
    file: SIGUSR1 (and the 1 MB size limit) rotated nothing, in silence, and the log grew
    without bound. The file is the user's now."""
    import pwd
    import shutil
    import tempfile
    from pathlib import Path

    nobody = pwd.getpwnam("nobody")
    home = Path(tempfile.mkdtemp(prefix="tcpplay-uid-"))  # /tmp: the user can reach it
    try:
        os.chmod(home, 0o755)
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        d = daemons(home, ["echo", "--listen", free_port()],
                    twistd_args=["--uid=nobody", f"--gid={nobody.pw_gid}"])
        result = d.start()
        assert result.returncode == 0, result.stdout + result.stderr
        pid = d.wait_started("echo listening on")
        os.kill(pid, signal.SIGUSR1)
        wait_until(lambda: (home / "tcpplay.log.1").exists(), 10, "the rotated log")
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not alive(pid), 15, "the daemon to stop")
        assert "Server Shut Down." in read(d.logfile)
        assert not d.pidfile.exists()
    finally:
        shutil.rmtree(home)
