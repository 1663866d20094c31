"""End to end through ``twistd``: start, serve, SIGTERM; start-up and usage errors; --help texts."""

from __future__ import annotations

import importlib
import os
import re
import socket
import subprocess

import pytest
from twisted.python import usage

from playground.tap import SUBCOMMANDS
from tests.support.net import free_port
from tests.support.paths import ROOT, TWISTD


def run_twistd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TWISTD, "-n", "--pidfile=", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
    )


def echo_roundtrip(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        for _ in range(10_000):  # bounded; every recv has a 10 s timeout
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


@pytest.mark.twistd
def test_echo_serves_and_exits_cleanly_on_sigterm(twistd):
    port = free_port()
    t = twistd(["echo", "--listen", port])
    line = t.wait_for("echo listening on")
    assert f"127.0.0.1:{port}" in line
    data = b"hello from the end-to-end test\n" * 1000
    assert echo_roundtrip(port, data) == data
    closed = t.wait_for("echo close")
    assert f"in={len(data)} out={len(data)}" in closed
    assert "half-close" in closed
    code = t.terminate()
    out = t.output()
    # A SIGTERM is an orderly stop: tcpplay's root service drains and reports exit status 0.
    assert code == 0, out
    assert "echo stopped listening" in out
    assert "Main loop terminated." in out and "Server Shut Down." in out
    assert "Traceback" not in out


@pytest.mark.twistd
def test_busy_port_is_a_one_line_error(twistd):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        t = twistd(["echo", "--listen", port])
        code = t.proc.wait(30)
        t.terminate()  # already exited: only collects the rest of its output
    out = t.output()
    assert code == 1, out
    errors = [line for line in out.splitlines() if "cannot listen" in line]
    assert len(errors) == 1, out
    assert "--listen" in errors[0] and "in use" in errors[0]
    assert "Traceback" not in out


@pytest.mark.twistd
@pytest.mark.parametrize("value", ["abc", "99999", "tcp:notaport"])
def test_bad_listen_is_a_usage_error_naming_the_flag(value):
    result = run_twistd("tcpplay", "echo", "--listen", value)
    assert result.returncode == 1
    text = result.stdout + result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("twistd tcpplay echo: --listen: "), text
    assert value in first
    assert "Traceback" not in text


@pytest.mark.twistd
@pytest.mark.parametrize("args, command, error", [
    (["echo", "--bogus"], "twistd tcpplay echo", "option --bogus not recognized"),
    (["proxy", "--listen", "7000"], "twistd tcpplay proxy", "--target is required"),
    ([], "twistd tcpplay", "choose a subcommand: demo, proxy"),
    (["nosuch"], "twistd tcpplay", "Unknown command: nosuch"),
    (["proxy", "--listen", "6479", "6379"], "twistd tcpplay proxy",
     "unexpected argument '6379'"),
    (["echo", "extra"], "twistd tcpplay echo", "unexpected argument 'extra'"),
])
def test_usage_error_is_one_line_and_a_hint_not_the_whole_help(args, command, error):
    result = run_twistd("tcpplay", *args)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"{command}: {error}"), result.stderr
    assert lines[1] == f"Run '{command} --help' for the options."


@pytest.mark.twistd
@pytest.mark.parametrize("args, command, error", [
    (["proxy", "--targte", "6379"], "twistd tcpplay proxy",
     "option --targte not recognized (did you mean --target?)"),
    (["proxy", "--pcap=out.pcap", "--jsn", "x"], "twistd tcpplay proxy",
     "option --jsn not recognized (did you mean --json?)"),
    (["prxy", "--target", "6379"], "twistd tcpplay",
     "Unknown command: prxy (did you mean proxy?)"),
])
def test_typo_is_answered_with_the_closest_name(args, command, error):
    result = run_twistd("tcpplay", *args)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines == [f"{command}: {error}", f"Run '{command} --help' for the options."], result.stderr


@pytest.mark.twistd
@pytest.mark.parametrize("args", [["--version"], ["proxy", "--version"], ["serve", "--version"],
                                  ["demo", "--version"]])
def test_version_is_tcpplays(args):
    from importlib.metadata import version

    result = run_twistd("tcpplay", *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"tcpplay {version('tcpplay')}\n"


@pytest.mark.twistd
def test_no_subcommand_is_a_usage_error():
    result = run_twistd("tcpplay")
    assert result.returncode != 0
    assert "choose a subcommand" in result.stdout + result.stderr


@pytest.mark.twistd
def test_tcpplay_help_lists_every_subcommand():
    result = run_twistd("tcpplay", "--help")
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^ {2,}(\S+) {2,}\S", result.stdout.split("Commands:")[1], re.M))
    assert {name for name, _, _ in SUBCOMMANDS} <= listed


@pytest.mark.twistd
@pytest.mark.parametrize("args", [["--help"], ["proxy", "--help"], ["demo", "-h"]])
def test_help_into_a_pipe_its_reader_left_is_no_traceback(args):
    """``twistd -n tcpplay proxy --help | head``: head leaves after its lines; the help's
    write fails (EPIPE) and twistd exits 0, quietly. The reader is gone before the write here."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([TWISTD, "-n", "--pidfile=", "tcpplay", *args], stdout=write,
                                stderr=subprocess.PIPE, text=True, timeout=60, cwd=str(ROOT))
    finally:
        os.close(write)
    assert (result.returncode, result.stderr) == (0, "")


_OPTION_LINE = re.compile(r"^ +(?:-\w, )?--(?P<name>[\w-]+)=?(?P<help>.*)$")


@pytest.mark.twistd
@pytest.mark.parametrize("name, module", [(name, module) for name, module, _ in SUBCOMMANDS])
def test_subcommand_help_describes_every_option(name, module):
    result = run_twistd("tcpplay", name, "--help")
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    options = importlib.import_module(module).Options()
    documented = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _OPTION_LINE.match(line)
        if m:
            # a long option name may push its help text to the next, deeper-indented line
            follow = lines[i + 1] if i + 1 < len(lines) else ""
            wrapped = follow.startswith(" " * 20) and not _OPTION_LINE.match(follow)
            documented[m.group("name")] = m.group("help").strip() or (
                follow.strip() if wrapped else ""
            )
    for long_name in options.longOpt:
        opt = long_name.rstrip("=")
        assert opt in documented, f"{name}: --{opt} missing from --help:\n{text}"
        assert documented[opt], f"{name}: --{opt} has no help text:\n{text}"
        if opt not in ("help", "version"):
            assert (options.docs.get(opt) or "").strip(), f"{name}: --{opt} has no docstring"
    # One style for defaults: usage.Options' "[default: X]" closing the option's help, shown
    # for every parameter that has one (opt_ methods included), never written by hand.
    assert not re.search(r"\(default|default \d|default:", text.replace("[default:", "")), text
    # an option's line is indented a few spaces; a wrapped help line that starts with a flag
    # ("--only, --skip ...") is indented to the help column and starts no block
    blocks = re.split(r"\n(?= {1,8}(?:-\w, )?--)", text.split("Options:")[1])
    for opt in options.longOpt:
        if opt.endswith("=") and options.get(opt[:-1]) not in (None, "", []):
            block = next(b for b in blocks if re.match(rf" +(?:-\w, )?--{opt[:-1]}=", b))
            assert re.search(r"\[default: [^]]+\]$", " ".join(block.split())), block


@pytest.mark.twistd
def test_foreground_writes_no_pidfile_so_two_servers_share_a_directory(tmp_path):
    """``twistd -n tcpplay ...`` without --pidfile writes no twistd.pid (two terminals, one
    directory); an explicit --pidfile is still honoured."""
    import subprocess as sp

    from tests.support.net import free_port
    from tests.support.paths import TWISTD
    from tests.support.waiting import wait_until

    procs = []

    def start(*args) -> None:
        """twistd ... echo, its output in a file; back once it says it is listening (the
        reactor runs then, its SIGTERM handler in place: the port accepts earlier, when a
        SIGTERM still kills it with -15)."""
        out = tmp_path / f"out{len(procs)}.log"
        with open(out, "wb") as f:
            procs.append(sp.Popen([TWISTD, "-n", *args], cwd=tmp_path, stdout=f,
                                  stderr=sp.STDOUT))
        wait_until(lambda: "echo listening on" in out.read_text(errors="replace"), 30,
                   f"{out.name}: echo listening on")

    try:
        for _ in range(2):
            start("tcpplay", "echo", "--listen", str(free_port()))
        assert not (tmp_path / "twistd.pid").exists()
        start("--pidfile=mine.pid", "tcpplay", "echo", "--listen", str(free_port()))
        assert (tmp_path / "mine.pid").read_text().strip() == str(procs[-1].pid)
    finally:
        for p in procs:
            p.terminate()
            assert p.wait(20) == 0


@pytest.mark.twistd
def test_subcommand_usage_line_names_the_subcommand_once():
    import subprocess as sp

    from tests.support.paths import TWISTD

    out = sp.run([TWISTD, "-n", "tcpplay", "echo", "--help"], capture_output=True, text=True,
                 timeout=60).stdout
    assert out.splitlines()[0] == "Usage: twistd [options] tcpplay echo [options]"


@pytest.mark.twistd
@pytest.mark.parametrize("flag", ["--json", "--pcap"])
@pytest.mark.parametrize("where", ["missing-dir", "directory"])
def test_unwritable_output_file_is_a_usage_error_before_listening(tmp_path, flag, where):
    path = tmp_path / "no" / "such" / "out" if where == "missing-dir" else tmp_path
    port = free_port()
    result = run_twistd("tcpplay", "proxy", "--listen", str(port), "--target", "6379",
                        flag, str(path), timeout=30)
    assert result.returncode == 1
    text = result.stdout + result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"twistd tcpplay proxy: {flag}: cannot write {path}: "), text
    assert "listening" not in text and "Traceback" not in text


@pytest.mark.twistd
@pytest.mark.parametrize("args", [[], ["--json", "-"]])
def test_closed_stdout_is_a_usage_error_before_listening(tmp_path, args):
    """``twistd ... tcpplay proxy ... >&-``: the console (or ``--json -``) has nowhere to
    write; one line saying so, not a traceback."""
    port = free_port()
    command = [TWISTD, "-n", "--pidfile=", "tcpplay", "proxy", "--listen", str(port),
               "--target", "6379", *args]
    result = subprocess.run(["bash", "-c", 'exec "$@" >&-', "bash", *command],
                            stderr=subprocess.PIPE, text=True, timeout=30, cwd=str(tmp_path))
    assert result.returncode == 1, result.stderr
    line = result.stderr.splitlines()[0]
    assert line.startswith("twistd tcpplay proxy: standard output is closed: "), line
    assert "Traceback" not in result.stderr
    assert ("--json -" in line) == bool(args)


@pytest.mark.pure
def test_output_file_check_leaves_no_file_behind(tmp_path):
    from playground.proxy import service

    opts = service.Options()
    out = tmp_path / "later.json"
    opts.parseOptions(["--target", "6379", "--json", str(out), "--pcap", str(tmp_path / "p")])
    assert list(tmp_path.iterdir()) == []  # the sinks create them when the proxy starts


@pytest.mark.pure
@pytest.mark.parametrize("spelling", ["dot-slash", "symlink", "existing"])
def test_json_and_pcap_naming_one_file_is_a_usage_error(tmp_path, spelling):
    """Not only the same string: ``out`` and ``./out``, or a link to it, are one file too
    (the pcap and the JSON lines would be written into each other)."""
    from playground.proxy import service

    out = tmp_path / "out"
    other = f"{tmp_path}/./out"  # pathlib would drop the "."
    if spelling == "symlink":
        other = str(tmp_path / "link")
        (tmp_path / "link").symlink_to(out)
    if spelling == "existing":
        out.write_bytes(b"")
    with pytest.raises(usage.UsageError, match="--json and --pcap must be different files"):
        service.Options().parseOptions(["--target", "6379", "--json", str(out), "--pcap", other])


@pytest.mark.pure
def test_pcap_to_stdout_by_any_name_is_refused():
    from playground.proxy import service

    for name in ("-", "/dev/stdout", "/dev/fd/1"):
        with pytest.raises(usage.UsageError, match="--pcap: write to a file, not stdout"):
            service.Options().parseOptions(["--target", "6379", "--pcap", name])


@pytest.mark.pure
@pytest.mark.parametrize("module", ["proxy", "demo"])
def test_json_to_dev_stdout_is_json_to_stdout(module):
    """So the console steps aside and twistd's log goes to stderr, as with ``--json -``."""
    opts = importlib.import_module(dict((n, m) for n, m, _ in SUBCOMMANDS)[module]).Options()
    opts.parseOptions((["--target", "6379"] if module == "proxy" else []) +
                      ["--json", "/dev/stdout"])
    assert opts["json"] == "-"


@pytest.mark.twistd
def test_demo_checks_its_json_file_too(tmp_path):
    result = run_twistd("tcpplay", "demo", "--json", str(tmp_path / "no" / "x.json"))
    assert result.returncode == 1
    assert result.stderr.startswith("twistd tcpplay demo: --json: cannot write "), result.stderr


class _Streams:
    """A foreground twistd with stdout and stderr read apart (each line kept)."""

    def __init__(self, argv, cwd):
        import os
        import threading

        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(s, lines), daemon=True)
                        for s, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for r in self.readers:
            r.start()

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.append(line.rstrip("\n"))

    def stop(self) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            for r in self.readers:
                r.join(5)


@pytest.mark.twistd
@pytest.mark.parametrize("kind", ["proxy", "serve", "dev-stdout"])
def test_json_to_stdout_keeps_twistds_log_on_stderr(redis_server, tmp_path, kind):
    """``--json -`` owns stdout: every stdout line is JSON (``| jq .`` works); the log is on
    stderr. ``--json /dev/stdout`` is the same."""
    import json

    from tests.support.processes import need
    from tests.support.waiting import wait_until

    port = free_port()
    out = "/dev/stdout" if kind == "dev-stdout" else "-"
    args = ["proxy", "--listen", str(port), "--target", str(redis_server.port), "--json", out]
    if kind == "serve":
        config = tmp_path / "j.toml"
        config.write_text(f'[proxy.r]\nlisten = {port}\ntarget = {redis_server.port}\n'
                          'json = "-"\n')
        args = ["serve", "--config", str(config)]
    t = _Streams([TWISTD, "-n", "--pidfile=", "tcpplay", *args], str(tmp_path))
    try:
        wait_until(lambda: any("proxy listening on" in line for line in t.err), 15,
                   "the listening line on stderr")
        cli = need("redis-cli")
        for cmd in (["SET", "jq-key", "v"], ["GET", "jq-key"]):
            done = subprocess.run([cli, "-p", str(port), *cmd], capture_output=True, text=True,
                                  timeout=10)
            assert done.returncode == 0, done.stderr
        wait_until(lambda: sum('"GET"' in line for line in t.out), 10, "the GET event")
    finally:
        code = t.stop()
    assert code == 0, "\n".join(t.err)
    events = [json.loads(line) for line in t.out]  # every stdout line is one JSON object
    assert any("jq-key" in json.dumps(e) for e in events)
    err = "\n".join(t.err)
    assert "Server Shut Down." in err and "Traceback" not in err


@pytest.mark.twistd
def test_logfile_dev_stderr_is_written_without_rotation(tmp_path):
    from tests.support.waiting import wait_until

    port = free_port()
    t = _Streams([TWISTD, "-n", "--pidfile=", "--logfile=/dev/stderr", "tcpplay", "echo",
                  "--listen", str(port)], str(tmp_path))
    try:
        wait_until(lambda: any("echo listening on" in line for line in t.err), 15,
                   "the listening line on stderr")
    finally:
        code = t.stop()
    err = "\n".join(t.err)
    assert code == 0, err
    assert t.out == [] and "Server Shut Down." in err and "Traceback" not in err


@pytest.mark.twistd
def test_json_to_a_fifo_reaches_its_reader(twistd, redis_server, tmp_path):
    """``--json FIFO`` (``mkfifo f; jq . < f``): the option check does not open the FIFO (that
    blocked with no reader, and its close ended the reader's input before any event)."""
    import os
    import threading

    from tests.support.waiting import wait_until

    fifo = tmp_path / "events"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def reader():
        with open(fifo, "rb") as f:
            got.append(f.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    port = free_port()
    t = twistd(["proxy", "--listen", port, "--target", redis_server.port, "--quiet",
                "--json", fifo])
    try:
        t.wait_for("proxy listening on")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            assert s.recv(100) == b"+PONG\r\n"
        t.wait_for("proxy #1 close")
    finally:
        code = t.terminate()
        if thread.is_alive():  # never opened for writing: let the reader go
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
    assert code == 0, t.output()
    wait_until(lambda: got, 5, "the reader's input")
    assert b'"PING"' in got[0], got


@pytest.mark.twistd
@pytest.mark.parametrize("where", ["missing-dir", "directory"])
def test_unwritable_logfile_is_one_line_not_twistds_traceback(tmp_path, where):
    path = tmp_path / "no" / "x.log" if where == "missing-dir" else tmp_path
    result = run_twistd(f"--logfile={path}", "tcpplay", "echo", "--listen", str(free_port()),
                        timeout=30)
    assert result.returncode == 1
    assert result.stderr.startswith(f"twistd tcpplay echo: --logfile: cannot write {path}: "), \
        result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.twistd
@pytest.mark.parametrize("daemon", [False, True])
def test_unwritable_pidfile_is_one_line_not_twistds_traceback(tmp_path, daemon):
    path = tmp_path / "no" / "x.pid"
    argv = [TWISTD, *([] if daemon else ["-n"]), f"--pidfile={path}",
            f"--logfile={tmp_path / 'x.log'}", "tcpplay", "echo", "--listen", str(free_port())]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    if result.returncode == 0 and daemon:  # a daemon started after all: stop it
        import os
        import signal

        from tests.support.waiting import wait_until

        log = tmp_path / "x.log"
        wait_until(lambda: log.exists() and "listening on" in log.read_text(), 10, "the log")
        pids = subprocess.run(["pgrep", "-f", f"--logfile={log}"], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            os.kill(int(pid), signal.SIGTERM)
    assert result.returncode == 1
    assert result.stderr.startswith(f"twistd tcpplay echo: --pidfile: cannot write {path}: "), \
        result.stderr
    assert "Traceback" not in result.stdout + result.stderr
