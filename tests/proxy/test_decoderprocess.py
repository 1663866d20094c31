"""``--decode-process``: the pipe's format (pure), the hand-over and its backpressure (memory, on
a virtual clock), and the proxy with its decoder process in front of a real redis-server, driven
by redis-cli and redis-benchmark (twistd)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import pytest_twisted
import twisted.test
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import error, task
from twisted.internet.testing import StringTransport
from twisted.logger import eventAsJSON, formatEvent
from twisted.python import failure, usage

from playground.proxy import decoderwire
from playground.proxy.decoderprocess import SEND_DELAY, DecoderProcess, _Child
from playground.proxy.observer import Endpoint, PairInfo
from playground.proxy.service import Options
from playground.proxy.splice import ProxyFactory
from tests.support.processes import alive, child_of, need, start_proxy
from tests.support.waiting import until, wait_until

PAIR = PairInfo(7, Endpoint("127.0.0.1", 50000), Endpoint("127.0.0.1", 6479),
                "tcp:host=127.0.0.1:port=6379", Endpoint("127.0.0.1", 6379),
                Endpoint("127.0.0.1", 50001))
MESSAGES = [
    decoderwire.pair_message(PAIR, 1.5),
    (decoderwire.DATA, 7, "c2s", b"*1\r\n$4\r\nPING\r\n", 1.25),
    (decoderwire.DATA, 7, "s2c", b"+PONG\r\n", 1.5),
    (decoderwire.HALF_CLOSED, 7, "c2s", 2.0),
    (decoderwire.CLOSED, 7, {"closed_by": "client", "how": "fin", "bytes_c2s": 14,
                             "duration": 0.5}, 2.5),
]


class Recorder:
    """An observer that notes its calls."""

    def __init__(self):
        self.calls = []

    def pair_opened(self, pair, now):
        self.calls.append(("opened", pair, now))

    def data(self, pair_id, direction, data, now):
        self.calls.append(("data", pair_id, direction, data, now))

    def half_closed(self, pair_id, direction, now):
        self.calls.append(("half_closed", pair_id, direction, now))

    def pair_closed(self, pair_id, summary, now):
        self.calls.append(("closed", pair_id, summary, now))


# -- the pipe's format ------------------------------------------------------------------------
@pytest.mark.pure
@given(st.lists(st.integers(0, 600), max_size=6))
def test_batches_come_back_whole_whatever_the_split(cuts):
    wire = decoderwire.encode_batch(MESSAGES[:2]) + decoderwire.encode_batch(MESSAGES[2:])
    reader = decoderwire.BatchReader()
    got = []
    at = 0
    for cut in sorted(set(min(c, len(wire)) for c in cuts)) + [len(wire)]:
        got += reader.feed(wire[at:cut])
        at = cut
    assert got == MESSAGES
    assert reader.buffered == 0


@pytest.mark.pure
@given(st.binary(max_size=200))
def test_garbage_on_the_pipe_is_a_wire_error(data):
    reader = decoderwire.BatchReader(max_batch=1 << 16)
    try:
        got = reader.feed(data)
    except decoderwire.WireError:
        return
    assert isinstance(got, list)


@pytest.mark.pure
def test_messages_call_the_observer_as_the_proxy_would():
    recorder = Recorder()
    for message in MESSAGES:
        decoderwire.deliver(recorder, message)
    assert recorder.calls == [
        ("opened", PAIR, 1.5),
        ("data", 7, "c2s", b"*1\r\n$4\r\nPING\r\n", 1.25),
        ("data", 7, "s2c", b"+PONG\r\n", 1.5),
        ("half_closed", 7, "c2s", 2.0),
        ("closed", 7, MESSAGES[4][2], 2.5),
    ]
    with pytest.raises(decoderwire.WireError):
        decoderwire.deliver(recorder, (99, 1))


# -- the options ------------------------------------------------------------------------------
SERVER_PEM = Path(twisted.test.__file__).with_name("server.pem")  # Twisted's test key and cert


@pytest.mark.pure
@pytest.mark.parametrize("extra, flag", [
    (["--web", f"ssl:0:privateKey={SERVER_PEM}"], "--web"),  # TCP and UNIX go to the child
    (["--fault", "latency:10ms"], "--fault"),
    (["--metrics", "0"], "--metrics"),
    (["--stats-interval", "5"], "--stats-interval"),
])
def test_what_needs_the_decoder_here_is_refused(extra, flag):
    with pytest.raises(usage.UsageError, match=f"--decode-process.*{flag}|{flag}.*--decode-process"):
        Options().parseOptions(["--target", "6379", "--decode-process", *extra])


@pytest.mark.pure
def test_the_help_says_a_tcp_or_unix_web_view_goes_to_the_child():
    """``--help``: the flags ``--decode-process`` refuses, which ``--decode-inline`` defaults
    for, are those ``reads_decoder_here`` names: a web view only on ``ssl:``."""
    helps = {row[0]: " ".join(row[2].split()) for row in Options.optFlags}
    for flag in ("decode-process", "decode-inline"):
        assert "--web," not in helps[flag], helps[flag]
        assert "an ssl: --web" in helps[flag], helps[flag]
    for extra in (["--web", "0"], ["--web", "unix:/tmp/web.sock"]):  # accepted
        Options().parseOptions(["--target", "6379", "--decode-process", *extra])


@pytest.mark.memory
@pytest.mark.parametrize("extra", [
    ["--quiet"], ["--decode", "none"], ["--decode", "none", "--quiet"], [], ["--json", "-"],
    ["--quiet", "--json", "J"], ["--quiet", "--pcap", "P"], ["--decode", "none", "--pcap", "P"],
])
def test_a_child_starts_only_where_the_proxy_would_observe(extra, tmp_path):
    """Nothing to write (``--quiet`` alone, ``--decode none`` alone): no child, and the pairs
    splice kernel to kernel as without the flag."""
    from twisted.internet.testing import MemoryReactorClock

    from playground.proxy import decoding

    extra = [str(tmp_path / a) if a in ("J", "P") else a for a in extra]
    observers = []
    for flag in ([], ["--decode-process"]):
        opts = Options()
        opts.parseOptions(["--target", "6379", *flag, *extra])
        services, observer = decoding.build(opts, MemoryReactorClock())
        observers.append(observer)
        if flag:
            assert services == ([observer] if observer else [])
    assert (observers[0] is None) == (observers[1] is None)


@pytest.mark.memory
def test_stats_a_child_would_not_feed_start_no_child():
    """``serve`` hands every proxy a stats sink (its shared registry): with ``--decode-process``
    the child's records never reach it, so ``--quiet`` alone still starts nothing."""
    from twisted.internet.testing import MemoryReactorClock

    from playground.proxy import decoding
    from playground.sinks.statssink import StatsSink

    opts = Options()
    opts.parseOptions(["--target", "6379", "--decode-process", "--quiet"])
    assert decoding.build(opts, MemoryReactorClock(), stats=StatsSink()) == ([], None)


@pytest.mark.pure
def test_only_the_proxy_takes_the_flag():
    """toxiproxy's proxies are all toxics, set at runtime: their injected replies would reach a
    child as the server's (it has no ``faulted``), as --fault's and --api's would."""
    from playground.faults.toxiproxy import Options as ToxiproxyOptions

    with pytest.raises(usage.UsageError, match="decode-process"):
        ToxiproxyOptions().parseOptions(["--api", "8474", "--decode-process"])
    assert "--decode-process" in str(Options())


# -- the hand-over, on a virtual clock ----------------------------------------------------------
def _handing_over():
    """A factory whose observer is a DecoderProcess writing into a StringTransport."""
    clock = task.Clock()
    opts = Options()
    opts.parseOptions(["--target", "6379", "--decode-process"])
    process = DecoderProcess(opts, reactor=clock)
    process._child = types.SimpleNamespace(transport=StringTransport())
    factory = ProxyFactory("tcp:host=127.0.0.1:port=6379", observer=process, reactor=clock)
    return clock, process, factory


def _sent(process) -> list:
    return decoderwire.BatchReader().feed(process._child.transport.value())


@pytest.mark.memory
def test_a_turns_events_go_down_the_pipe_as_one_batch():
    clock, process, factory = _handing_over()
    assert process.factories == [factory]
    factory.notify("half_closed", 3, "c2s", 1.0)
    factory.notify("pair_closed", 3, {"how": "fin"}, 2.0)
    assert not factory._queued  # it only queues: told at once, no turn of the factory's
    assert _sent(process) == []  # gathered for SEND_DELAY
    clock.advance(SEND_DELAY)
    assert _sent(process) == [(decoderwire.HALF_CLOSED, 3, "c2s", 1.0),
                              (decoderwire.CLOSED, 3, {"how": "fin"}, 2.0)]


@pytest.mark.memory
def test_a_full_pipe_stops_the_hand_over_until_it_drains():
    clock, process, factory = _handing_over()
    process.pauseProducing()  # the pipe's buffer is full
    factory.notify("half_closed", 3, "c2s", 1.0)
    clock.advance(0)
    clock.advance(SEND_DELAY)
    assert _sent(process) == [] and factory._queued  # kept in the factory's bounded queue
    # and nothing spins meanwhile (but the one check that says a long stall)
    assert [c.func for c in clock.getDelayedCalls()] == [process._check_stall]
    process.resumeProducing()
    factory.notify("pair_closed", 3, {}, 2.0)  # after what waits: queued behind it, in order
    assert len(factory._queued) == 2
    clock.advance(0)
    assert not factory._queued
    factory.notify("half_closed", 4, "s2c", 3.0)  # nothing waits: at once again
    assert not factory._queued
    clock.advance(SEND_DELAY)
    assert _sent(process) == [(decoderwire.HALF_CLOSED, 3, "c2s", 1.0),
                              (decoderwire.CLOSED, 3, {}, 2.0),
                              (decoderwire.HALF_CLOSED, 4, "s2c", 3.0)]


@pytest.mark.memory
def test_a_child_that_takes_nothing_for_a_while_is_said_once_and_its_return_too(logged):
    """A child stopped (SIGSTOP) or far behind: its pipe stays full and the clients that send
    are paused for it; the log says why, once, and says when it takes bytes again. A pipe
    that is full for less than STALL_SAID_AFTER (every busy second) says nothing."""
    from playground.proxy.decoderprocess import STALL_SAID_AFTER

    clock, process, factory = _handing_over()

    def said():
        return [formatEvent(e) for e in logged if "decoder process" in formatEvent(e)]

    process.pauseProducing()
    clock.advance(STALL_SAID_AFTER / 2)
    process.resumeProducing()
    process.pauseProducing()
    clock.advance(STALL_SAID_AFTER / 2 + 0.1)
    process.resumeProducing()
    assert said() == []
    process.pauseProducing()
    for _ in range(10):
        clock.advance(STALL_SAID_AFTER)
    assert said() == [f"decoder process has taken nothing for {STALL_SAID_AFTER:g}s (stopped, "
                      "or slower than the traffic): clients that send more than the proxy "
                      "holds for it are paused until it takes bytes again"]
    process.resumeProducing()
    assert said()[1:] == [f"decoder process takes bytes again after {10 * STALL_SAID_AFTER:g}s"]
    assert not clock.getDelayedCalls()


@pytest.mark.memory
def test_a_child_that_dies_is_detached_and_the_proxy_forwards_on(logged):
    clock, process, factory = _handing_over()
    factory.log_connections = False  # the child's console view says each pair
    factory.notify("half_closed", 3, "c2s", 1.0)
    process._ended(failure.Failure(error.ProcessTerminated(signal=9)))
    assert factory.observer is None and not factory._queued
    assert factory.log_connections  # the console went with it: the log says them
    assert any("decoder process exited" in e.get("log_format", "") for e in logged)
    process.data(3, "c2s", b"x", 2.0)  # a late hand-over goes nowhere
    assert process._batch == []


@pytest.mark.memory
def test_the_childs_log_lines_are_logged_here_whatever_the_split(logged):
    record = ("\x1e" + eventAsJSON({"log_format": "from the child: {n}", "n": 5,
                                   "log_level": None, "log_namespace": "child"}) + "\n").encode()
    child = _Child(types.SimpleNamespace())
    for at in range(0, len(record), 7):
        child.childDataReceived(3, record[at:at + 7])
    child.childDataReceived(3, record)
    mine = [e for e in logged if e.get("log_format") == "from the child: {n}"]
    assert [e["n"] for e in mine] == [5, 5]


# -- the proxy with its decoder process ---------------------------------------------------------
def _with_child(start, target, *extra):
    """A proxy with ``--decode-process`` and ``extra`` in front of ``target``, once its child is
    spawned: ``(proc, port, the child's pid)``."""
    proc, port = start_proxy(start, target, "--decode-process", *extra)
    proc.wait_for("decoding in a child process")
    return proc, port, child_of(proc.proc.pid)


@pytest.mark.twistd
def test_the_decoder_process_writes_the_console_and_json(redis_server, twistd, tmp_path):
    cli = need("redis-cli")
    out = tmp_path / "out.jsonl"
    proc, port = start_proxy(twistd, redis_server.port, "--decode-process", "--json", out,
                             "--color", "never")
    line = proc.wait_for("decoding in a child process")
    child = child_of(proc.proc.pid)
    assert f"pid {child}" in line
    assert subprocess.run([cli, "-p", str(port), "set", "dpfoo", "bar"], capture_output=True,
                          timeout=10).stdout == b"OK\n"
    proc.wait_for('set dpfoo "bar" -> +OK')  # the child's console, on the proxy's stdout
    assert proc.terminate() == 0
    assert not alive(child)
    records = [json.loads(x) for x in out.read_text().splitlines()]
    sets = [r for r in records if r["type"] == "redis" and r["command"][:2] == ["set", "dpfoo"]]
    assert [r["reply"] for r in sets] == [{"simple": "OK"}]


@pytest.mark.twistd
def test_ctrl_c_reaches_the_child_too_and_every_exchange_is_still_written(
        redis_server, twistd, tmp_path):
    bench = need("redis-benchmark")
    out = tmp_path / "out.jsonl"
    proc = None

    def start(args):
        return twistd(args, new_session=True)  # its own process group, as a shell's job

    proc, port, child = _with_child(start, redis_server.port, "--quiet", "--json", out)
    wait_until(lambda: os.getpgid(child) == child, what="the child in a process group of its own")
    subprocess.run([bench, "-p", str(port), "-q", "-t", "set,get", "-n", "4000", "-P", "16",
                    "-c", "4"], capture_output=True, timeout=60, check=True)
    proc.signalled = True
    os.killpg(proc.proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole group
    assert proc.terminate() == 0, proc.output()
    kinds = [json.loads(x)["type"] for x in out.read_text().splitlines()]
    assert kinds.count("redis") >= 8000  # redis-benchmark's own CONFIG GET too
    assert kinds.count("close") == kinds.count("open") >= 5


@pytest.mark.twistd
def test_a_killed_decoder_process_leaves_the_proxy_forwarding(redis_server, twistd, tmp_path):
    cli = need("redis-cli")
    proc, port, child = _with_child(twistd, redis_server.port, "--json",
                                    tmp_path / "out.jsonl", "--quiet")
    os.kill(child, signal.SIGKILL)
    proc.wait_for("decoder process exited")
    wait_until(lambda: not alive(child), what="the child reaped")
    for _ in range(3):
        assert subprocess.run([cli, "-p", str(port), "ping"], capture_output=True,
                              timeout=10).stdout == b"PONG\n"
    assert proc.terminate() == 0


@pytest.mark.twistd
def test_a_console_pipe_nobody_reads_stalls_the_child_not_the_forwarding(tmp_path, redis_server):
    """``--slow-sink block`` with stdout a pipe nobody reads: the child's console write blocks;
    the proxy pauses the client that floods it but forwards the others; SIGTERM still ends both
    processes (status 0, about the drain timeout later) and the log says what was dropped."""
    import socket
    import time

    from tests.support.net import free_port
    from tests.support.paths import TWISTD

    port = free_port()
    log = tmp_path / "twistd.log"
    r, w = os.pipe()
    proc = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", f"--logfile={log}", "tcpplay", "proxy", "--listen", str(port),
         "--target", str(redis_server.port), "--decode", "resp", "--color", "never",
         "--decode-process", "--slow-sink", "block", "--drain-timeout", "1"],
        stdout=w, stderr=subprocess.DEVNULL, cwd=str(tmp_path))
    os.close(w)
    try:
        wait_until(lambda: log.exists() and "proxy listening on" in log.read_text(), 20,
                   "the proxy's listening line")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as flood:
            try:
                flood.sendall(b"*1\r\n$4\r\nPING\r\n" * 200_000)  # far more than the pipe holds
            except TimeoutError:
                pass  # paused: the proxy's queue for the child is full
            with socket.create_connection(("127.0.0.1", port), timeout=5) as other:
                other.sendall(b"*1\r\n$4\r\nPING\r\n")
                assert other.recv(7) == b"+PONG\r\n"  # forwarding goes on
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                status = proc.wait(20)
            except subprocess.TimeoutExpired:
                status = "still running 20 s after SIGTERM"
            elapsed = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(r)
    text = log.read_text()
    assert status == 0, text[-2000:]
    assert elapsed < 8, text[-2000:]  # drain 1 s, then the child's poke (0.5 s) and its exit
    assert "a stop was asked for during a write to stdout" in text
    assert "records dropped in all" in text


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler of its own for SIGTERM (its SigCgt mask)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & 1 << (signal.SIGTERM - 1))


@pytest.mark.real
def test_a_child_poked_while_it_exits_ends_with_status_0_not_by_the_signal(tmp_path):
    """The proxy's stop sends the child SIGTERM every POKE_EVERY until it exits. One that came
    after its work, while Python shut down (which puts a signal with a Python handler back to
    its default action), ended it by the signal: at a normal stop the proxy's log warned
    'decoder process: ... process ended by signal 15'."""
    from playground.proxy.decoderprocess import BOOT

    opts = Options()
    opts.parseOptions(["--target", "6379", "--decode-process", "--quiet", "--json",
                       str(tmp_path / "out.jsonl")])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env[decoderwire.OPTIONS_ENV] = json.dumps(DecoderProcess(opts).options)
    log = os.open(tmp_path / "child.log", os.O_WRONLY | os.O_CREAT)
    child = subprocess.Popen([sys.executable, "-P", "-c", BOOT], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, env=env, close_fds=False,
                             preexec_fn=lambda: os.dup2(log, 3))  # its log's fd, as the proxy's
    os.close(log)
    try:
        wait_until(lambda: _catches_sigterm(child.pid), what="the child's SIGTERM handler")
        child.stdin.close()  # the proxy's stop: the pipe ends
        for _ in range(20000):  # poked until it exits (at most 20 s)
            if child.poll() is not None:
                break
            child.send_signal(signal.SIGTERM)
            time.sleep(0.001)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.wait(10) == 0, (tmp_path / "child.log").read_text()[-2000:]


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_child_whose_sinks_cannot_start_says_why_and_the_proxy_forwards_on(tmp_path, logged):
    """``--json`` checked writable at option time, gone before the child opens it: the child's
    reason is in the proxy's log (not only a traceback on its stderr), the factory detached."""
    from twisted.internet import reactor

    opts = Options()
    opts.parseOptions(["--target", "6379", "--decode-process", "--quiet", "--json",
                       str(tmp_path / "out.jsonl")])
    opts["json"] = str(tmp_path / "gone" / "out.jsonl")
    process = DecoderProcess(opts, reactor=reactor)
    factory = ProxyFactory("tcp:host=127.0.0.1:port=6379", observer=process, reactor=reactor)
    process.startService()
    exited = process.exited
    yield exited.addTimeout(20, reactor)
    text = [formatEvent(e) for e in logged]
    assert any("cannot start" in t and "gone/out.jsonl" in t for t in text), text
    assert any("decoder process exited" in t for t in text), text
    assert factory.observer is None


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_child_that_cannot_be_spawned_is_said_and_the_proxy_forwards_on(tmp_path, logged):
    """The interpreter cannot be run (twistd's --uid dropped to a user who may not read it): the
    start does not end in a traceback; the log says why, the factory is detached, the web view's
    socket closed, as when the child exits."""
    from twisted.internet import reactor

    python = tmp_path / "python"
    python.write_text("")  # not executable
    opts = Options()
    opts.parseOptions(["--target", "6379", "--decode-process", "--quiet", "--web",
                       "tcp:0:interface=127.0.0.1"])
    process = DecoderProcess(opts, reactor=reactor, python=str(python))
    factory = ProxyFactory("tcp:host=127.0.0.1:port=6379", observer=process, reactor=reactor)
    process.privilegedStartService()
    web_port = process.web_listening.port.getHost().port
    process.startService()  # no traceback: said once the view's socket is closed

    def said():
        return [t for t in map(formatEvent, logged) if "decoder process cannot start" in t]

    yield until(said, "the log line")
    assert "Permission denied" in said()[0] and "without decoding" in said()[0]
    assert factory.observer is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", web_port), timeout=5).close()


@pytest.mark.twistd
def test_a_second_sigterm_while_the_child_finishes_stops_now(redis_server, twistd, tmp_path):
    """The child cannot finish (stopped): the first SIGTERM waits for it (up to STOP_TIMEOUT),
    a second one kills it and the proxy exits 0 at once, without a traceback."""
    import time

    cli = need("redis-cli")
    proc, port, child = _with_child(twistd, redis_server.port, "--quiet", "--json",
                                    tmp_path / "out.jsonl")
    subprocess.run([cli, "-p", str(port), "ping"], capture_output=True, timeout=10, check=True)
    os.kill(child, signal.SIGSTOP)
    try:
        proc.signalled = True
        proc.proc.send_signal(signal.SIGTERM)
        line = proc.wait_for("decoder process still writing")
        assert "again to stop now" in line
        start = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        status = proc.terminate(timeout=20)
        elapsed = time.monotonic() - start
    finally:
        if alive(child):
            os.kill(child, signal.SIGCONT)
    assert status == 0
    assert elapsed < 10, proc.output()[-2000:]  # not STOP_TIMEOUT
    assert "Traceback" not in proc.output()
    proc.wait_for("decoder process stopped now")
    assert "ended by signal 9" not in proc.output()  # the kill said once, not again as an error
    wait_until(lambda: not alive(child), what="the child gone")


@pytest.mark.twistd
def test_sigterm_in_a_flood_writes_a_record_for_every_forwarded_command(
        redis_server, twistd, tmp_path):
    """redis-benchmark still sending when SIGTERM comes, the drain cut short: each pair's
    records are its forwarded commands, every one (the child finishes the queue), exit 0."""
    bench = need("redis-benchmark")
    out = tmp_path / "out.jsonl"
    proc, port, child = _with_child(twistd, redis_server.port, "--quiet", "--json", out,
                                    "--drain-timeout", "0.5")
    flood = subprocess.Popen([bench, "-p", str(port), "-q", "-t", "set", "-n", "100000000",
                              "-P", "100", "-c", "4"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: out.exists() and out.stat().st_size > 4_000_000, 30,
                   "the flood's records coming")
        assert proc.terminate() == 0, proc.output()[-2000:]
    finally:
        flood.kill()
        flood.wait(10)
    wait_until(lambda: not alive(child), what="the child gone")
    records = [json.loads(x) for x in out.read_text().splitlines()]
    closes = {r["pair"]: r for r in records if r["type"] == "close"}
    sets = [r["pair"] for r in records if r["type"] in ("redis", "redis_unanswered")
            and r["command"][0] == "SET"]
    aborted = [c for c in closes.values() if c["how"] == "shutdown"]
    assert len(aborted) == 4  # the flood was in flight
    for close in aborted:  # SET key:__rand_int__ xxx: 45 bytes a command
        assert sets.count(close["pair"]) == close["bytes_c2s"] // 45 > 0


@pytest.mark.twistd
def test_the_working_directorys_files_are_not_the_childs_modules(redis_server, twistd, tmp_path):
    """``python -c`` puts the working directory first on sys.path: a ``json.py`` where the proxy
    was started (a shared directory, anyone's file) would be the child's ``json``, run as the
    proxy's user. The child's path is the proxy's own."""
    cli = need("redis-cli")
    (tmp_path / "json.py").write_text("raise SystemExit('the json.py of the working directory')\n")
    out = tmp_path / "out.jsonl"
    proc, port = start_proxy(lambda args: twistd(args, cwd=str(tmp_path)), redis_server.port,
                             "--decode-process", "--quiet", "--json", out)
    assert subprocess.run([cli, "-p", str(port), "set", "dpcwd", "1"], capture_output=True,
                          timeout=10).stdout == b"OK\n"
    assert proc.terminate() == 0
    assert "working directory" not in proc.output()
    assert "decoder process exited" not in proc.output()
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["command"] for r in records if r["type"] == "redis"] == [["set", "dpcwd", "1"]]


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


class _SetFlood:
    """A client pipelining SETs of a 200-byte value at the proxy, its replies read by a thread.
    Fat commands: what a flood puts in flight (the proxy's queue, the pipe, the sockets' buffers,
    a few MB) stays far below the RESP decoder's bound on unanswered commands (``max_pending``,
    100,000), which 1.4 MB of PINGs reaches: past it the decoder rightly gives up."""

    COMMAND = b"*3\r\n$3\r\nSET\r\n$5\r\nflood\r\n$200\r\n" + b"v" * 200 + b"\r\n"
    REPLY = b"+OK\r\n"
    CHUNK = COMMAND * 2_000

    def __init__(self, port: int):
        import socket
        import threading

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sent = 0
        self.replies = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while (data := self.sock.recv(1 << 20)):
            self.replies += len(data)

    def until_paused(self, most: int = 64_000_000) -> int:
        """Send until the proxy stops reading (a second without room); the bytes sent."""
        import select
        import socket

        while self.sent < most:
            if not select.select([], [self.sock], [], 1.0)[1]:
                return self.sent
            try:
                self.sent += self.sock.send(self.CHUNK[self.sent % len(self.CHUNK):],
                                            socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
        raise AssertionError(f"the proxy never paused the client ({most} bytes taken)")

    def finish(self) -> int:
        """Send the last command whole, wait for every reply, close; the commands sent."""
        import socket

        self.sock.sendall(self.CHUNK[self.sent % len(self.CHUNK):])
        self.sent += len(self.CHUNK) - self.sent % len(self.CHUNK)
        commands = self.sent // len(self.COMMAND)
        wait_until(lambda: self.replies == commands * len(self.REPLY), 60, "every reply")
        self.sock.shutdown(socket.SHUT_WR)
        self.reader.join(10)  # the proxy's FIN
        self.sock.close()
        return commands


@pytest.mark.twistd
def test_a_stopped_child_bounds_the_proxys_memory_and_loses_nothing(
        redis_server, twistd, tmp_path):
    """The child stopped (SIGSTOP) while a client floods: the proxy's queue for it fills, the
    client is paused, the proxy's memory stays put; SIGCONT and every command is recorded."""
    out = tmp_path / "out.jsonl"
    proc, port, child = _with_child(twistd, redis_server.port, "--quiet", "--json", out)
    before = _rss_kib(proc.proc.pid)
    os.kill(child, signal.SIGSTOP)
    try:
        flood = _SetFlood(port)
        sent = flood.until_paused()
        grown = _rss_kib(proc.proc.pid) - before
    finally:
        os.kill(child, signal.SIGCONT)
    assert sent > 1_000_000  # past what the proxy queues for one client (SIDE_BACKLOG)
    assert grown < 48 * 1024, f"{grown} KiB more for {sent} bytes held back"
    commands = flood.finish()
    assert proc.terminate() == 0
    sets = sum(1 for x in out.read_text().splitlines() if '"command":["SET","flood"' in x)
    assert sets == commands


@pytest.mark.twistd
def test_a_child_killed_while_it_holds_a_client_back_lets_it_go(redis_server, twistd, tmp_path):
    """The client paused for a stopped child; the child killed: the proxy detaches it, says so
    once, and the client's commands all go through (the pause ends with the queue)."""
    proc, port, child = _with_child(twistd, redis_server.port, "--quiet", "--json",
                                    tmp_path / "out.jsonl")
    os.kill(child, signal.SIGSTOP)
    flood = _SetFlood(port)
    flood.until_paused()
    os.kill(child, signal.SIGKILL)
    proc.wait_for("decoder process exited")
    flood.finish()
    assert proc.terminate() == 0
    out = proc.output()
    assert out.count("decoder process exited") == 1 and "Traceback" not in out


@pytest.mark.twistd
@pytest.mark.parametrize("signum, said, key", [
    # ``systemctl kill -s USR1`` (a logrotate postrotate): the child's log is the proxy's
    (signal.SIGUSR1, "SIGUSR1: no log file to rotate", "dpusr1"),
    # ``systemctl kill -s HUP`` (an operator's "reload"): the proxy says it reloads nothing
    (signal.SIGHUP, "SIGHUP: tcpplay does not reload its config", "dphup"),
])
def test_a_signal_to_the_whole_service_leaves_the_child_decoding(redis_server, twistd, tmp_path,
                                                                 signum, said, key):
    """A signal sent to every process of the service (systemd's ``kill``) reaches the child
    too, whose default action for SIGUSR1 and SIGHUP would end it (and the proxy would decode
    no more): the proxy says its line, and the child goes on."""
    cli = need("redis-cli")
    out = tmp_path / "out.jsonl"
    proc, port, child = _with_child(twistd, redis_server.port, "--quiet", "--json", out)
    wait_until(out.exists, what="the child started (its --json file open)")
    os.kill(child, signum)
    os.kill(proc.proc.pid, signum)
    proc.wait_for(said)  # the proxy's, after the child's signal
    assert subprocess.run([cli, "-p", str(port), "set", key, "1"], capture_output=True,
                          timeout=10).stdout == b"OK\n"
    assert proc.terminate() == 0
    assert "decoder process exited" not in proc.output()
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["command"] for r in records if r["type"] == "redis"] == [["set", key, "1"]]


@pytest.mark.twistd
def test_a_daemon_starts_its_child_logs_it_and_stops_it(redis_server, tmp_path):
    """twistd without -n (--pidfile, --logfile): the daemon's child decodes into --json, its
    lines are in the log file, and SIGTERM ends both, the pid file gone."""
    from tests.support.net import free_port
    from tests.support.paths import TWISTD

    cli = need("redis-cli")
    port, pidfile, logfile = free_port(), tmp_path / "tcpplay.pid", tmp_path / "tcpplay.log"
    out = tmp_path / "out.jsonl"
    started = subprocess.run(
        [TWISTD, f"--pidfile={pidfile}", f"--logfile={logfile}", "tcpplay", "proxy", "--listen",
         str(port), "--target", str(redis_server.port), "--decode-process", "--json", str(out)],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(),
                         what="the pid file"))
    try:
        wait_until(lambda: "proxy listening on" in logfile.read_text(), what="listening")
        child = child_of(pid)
        assert f"decoding in a child process (pid {child})" in logfile.read_text()
        assert subprocess.run([cli, "-p", str(port), "set", "dpdaemon", "1"],
                              capture_output=True, timeout=10).stdout == b"OK\n"
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not alive(pid) and not pidfile.exists(), 20, "the daemon's exit")
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(child), what="the child gone")
    log = logfile.read_text()
    assert "Server Shut Down." in log and "Traceback" not in log
    assert "decoder process exited" not in log and "decoder process: " not in log
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["command"] for r in records if r["type"] == "redis"] == [["set", "dpdaemon", "1"]]


@pytest.mark.twistd
def test_clients_connecting_again_and_again_to_a_stopped_child_bound_the_proxys_memory(
        redis_server, twistd, tmp_path):
    """No pause bounds a client that connects, PINGs and leaves, again and again: each adds an
    open and a close (and the pair they keep) to the queue for a stopped child. Past its bound
    the proxy stops accepting (they wait in the listen backlog); after SIGCONT all are served
    and recorded."""
    import socket
    import threading

    out = tmp_path / "out.jsonl"
    proc, port, child = _with_child(twistd, redis_server.port, "--quiet", "--json", out)
    before = _rss_kib(proc.proc.pid)
    total = 30_000
    done = [0]

    def churn():
        for _ in range(total):
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                assert s.recv(7) == b"+PONG\r\n"
            done[0] += 1

    os.kill(child, signal.SIGSTOP)
    clients = threading.Thread(target=churn, daemon=True)
    try:
        clients.start()
        proc.wait_for("new clients wait in the listen backlog", timeout=60)
        grown = _rss_kib(proc.proc.pid) - before
    finally:
        os.kill(child, signal.SIGCONT)
    assert done[0] < total, "the proxy took every client while its child was stopped"
    assert grown < 48 * 1024, f"{grown} KiB more for {done[0]} clients"
    clients.join(120)
    assert done[0] == total
    assert proc.terminate() == 0
    kinds = [json.loads(x)["type"] for x in out.read_text().splitlines()]
    assert kinds.count("open") == kinds.count("close") == total


@pytest.mark.twistd
def test_the_childs_console_shows_http_as_the_proxys_would(twistd):
    """The options the child gets are those given: no -v is no count (it was None, and the
    console dropped every HTTP record it could not format)."""
    from tests.support.net import free_port

    curl = need("curl")
    http_port = free_port()
    twistd(["http", "--listen", str(http_port)]).wait_for("listening on")
    proc, port = start_proxy(twistd, http_port, "--decode-process", "--color", "never")
    subprocess.run([curl, "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/get"], check=True,
                   timeout=30)
    proc.wait_for("GET /get -> 200 OK application/json")
    assert proc.terminate() == 0
    assert "cannot format" not in proc.output()


@pytest.mark.pure
def test_a_child_decodes_by_default_where_nothing_needs_the_decoder_here(monkeypatch):
    from playground.proxy import decoding

    def parsed(*extra):
        opts = Options()
        opts.parseOptions(["--target", "6379", *extra])
        return opts

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert decoding.child_by_default(parsed())
    assert not decoding.child_by_default(parsed("--decode-inline"))
    assert not decoding.child_by_default(parsed("--decode-process"))  # said already
    assert decoding.child_by_default(parsed("--web", "0"))  # the child serves it
    assert decoding.child_by_default(parsed("--web", "unix:/tmp/web.sock"))
    assert not decoding.child_by_default(parsed("--web", f"ssl:0:privateKey={SERVER_PEM}"))
    assert not decoding.child_by_default(parsed("--fault", "latency:10ms"))
    assert not decoding.child_by_default(parsed(), stats=object())  # --metrics' command counts
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert not decoding.child_by_default(parsed())  # no other core to decode on
    with pytest.raises(usage.UsageError, match="--decode-process and --decode-inline"):
        parsed("--decode-process", "--decode-inline")


@pytest.mark.twistd
def test_the_proxy_decodes_in_a_child_unless_told_not_to(redis_server, twistd, tmp_path):
    if (os.cpu_count() or 1) < 2:
        pytest.fail("this test needs a machine with two cores or more")
    proc, port = start_proxy(twistd, redis_server.port, "--color", "never")
    proc.wait_for("decoding in a child process")
    assert proc.terminate() == 0
    proc, port = start_proxy(twistd, redis_server.port, "--color", "never", "--decode-inline")
    assert subprocess.run([need("redis-cli"), "-p", str(port), "ping"], capture_output=True,
                          timeout=10).stdout == b"PONG\n"
    proc.wait_for("ping -> +PONG")
    assert proc.terminate() == 0
    assert "decoding in a child process" not in proc.output()


@pytest.mark.pure
def test_a_failure_in_the_child_reaches_the_proxys_log_with_its_message():
    """JSON keeps a failure's traceback, not its exception's value: the child sends it as text."""
    import io

    from twisted.logger import (
        Logger,
        eventFromJSON,
        formatEventAsClassicLogText,
        jsonFileLogObserver,
    )

    from playground.proxy.decoderworker import failures_as_text

    out = io.StringIO()
    log = Logger(observer=failures_as_text(jsonFileLogObserver(out)))
    try:
        {}["the-missing-key"]
    except KeyError:
        log.failure("decoder process: the decoder raised")
    event = eventFromJSON(out.getvalue().strip("\x1e\n"))
    text = formatEventAsClassicLogText(event)
    assert "decoder process: the decoder raised" in text
    assert "KeyError: 'the-missing-key'" in text and "unpersistable" not in text
    assert event["log_level"].name == "critical"
