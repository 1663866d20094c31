"""Captures replayed against a real redis-server: one made by dumpcap (Wireshark's capture
engine, pcapng) on the loopback interface, of redis-cli talking to redis-server directly, and
hand-built ones with reordered, repeated and missing segments."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from playground.codec.encoder import encode_command
from playground.replay.capture import read_capture
from playground.replay.reassembly import CaptureError
from tests.support.paths import BIN, ROOT
from tests.support.pcaps import Conversation, write_pcap
from tests.support.processes import need, start_redis, stop_process
from tests.support.tls import TlsEchoServer, client_pki
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real


def _start_dumpcap(ports: tuple, path) -> subprocess.Popen:
    """dumpcap on ``lo`` for ``ports``, once it says it is capturing; skip where it cannot."""
    exe = shutil.which("dumpcap")
    if exe is None:
        pytest.skip("dumpcap is not installed")
    bpf = " or ".join(f"tcp port {p}" for p in ports)
    proc = subprocess.Popen([exe, "-i", "lo", "-f", bpf, "-w", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = ""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "Capturing on" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    stop_process(proc)
    pytest.skip(f"dumpcap cannot capture on lo here: {seen.strip()[:200]}")


def _closed(path) -> list:
    """The connections of the capture so far that are closed both ways."""
    try:
        conns = read_capture(str(path)).connections
    except CaptureError:  # dumpcap is in the middle of a block
        return []
    return [c for c in conns if c.done]


def _pinged(port: int, path) -> bool:
    subprocess.run([need("redis-cli"), "-p", str(port), "PING"], check=True, timeout=20,
                   capture_output=True)
    return any(c.syn and c.server[1] == port for c in _closed(path))


def test_a_dumpcap_capture_of_redis_cli_replays_identically(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    recorded = start_redis(str(tmp_path / "a"))
    fresh = start_redis(str(tmp_path / "b"))
    path = tmp_path / "lo.pcapng"
    try:
        dumpcap = _start_dumpcap((recorded.port, fresh.port), path)
        # dumpcap may say it captures a moment before it does: PING the other server (left
        # out of the replay by --select) until a whole connection shows
        wait_until(lambda: _pinged(fresh.port, path), what="dumpcap to capture a PING")
        cli = [need("redis-cli"), "-p", str(recorded.port)]
        subprocess.run(cli + ["RPUSH", "q", "x", "y", "z"], check=True, timeout=20,
                       capture_output=True)
        subprocess.run(cli + ["LRANGE", "q", "0", "-1"], check=True, timeout=20,
                       capture_output=True)
        wait_until(lambda: len([c for c in _closed(path) if c.server[1] == recorded.port]) == 2,
                   what="dumpcap to write the session")
        dumpcap.send_signal(signal.SIGINT)
        dumpcap.wait(15)
        out = subprocess.run([str(BIN / "tcpplay-replay"), str(path),  # the console entry
                              "--target", str(fresh.port), "--speed", "max",
                              "--select", f"port:{recorded.port}"],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "2 replies compared: 2 exact" in out.stdout
    finally:
        for server in (recorded, fresh):
            stop_process(server.proc)


def _run_replay(path, port: int, *more: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "tcpplay-replay"), str(path), "--target", str(port),
                           "--speed", "max", *more], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def test_hand_built_captures_reordered_repeated_and_with_a_hole(tmp_path):
    server = start_redis(str(tmp_path))
    try:
        conv = Conversation()
        frames = conv.handshake()
        set_cmd, get_cmd = encode_command("SET", "k", "v"), encode_command("GET", "k")
        first, second = conv.data(True, set_cmd[:10]), conv.data(True, set_cmd[10:])
        frames += [second, first, second]  # out of order, then repeated
        frames += [conv.data(False, b"+OK\r\n"), conv.data(True, get_cmd)]
        reply = conv.data(False, b"$1\r\nv\r\n")
        frames += [reply, reply, conv.fin(True), conv.fin(False)]
        write_pcap(tmp_path / "shuffled.pcap", frames)
        out = _run_replay(tmp_path / "shuffled.pcap", server.port)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "2 replies compared: 2 exact" in out.stdout

        write_pcap(tmp_path / "hole.pcap", [f for f in frames if f != first])  # SET's start
        out = _run_replay(tmp_path / "hole.pcap", server.port)
        assert out.returncode == 1
        assert "not replayed: the capture misses 10 bytes of the client stream at offset 0" \
            in out.stdout
    finally:
        stop_process(server.proc)


@pytest.mark.parametrize("as_json", [False, True])
def test_a_target_that_refuses_is_one_line_naming_it_and_the_reason(tmp_path, as_json):
    """Nothing listens on the port (bound, not listening: refused): one line on stderr naming
    the target and the reason, exit status 2, no report of replies that never were (it was a
    '2 replies, 2 differ; cannot connect: Connection was refused by other side: 111: ...' per
    connection, a table and status 1)."""
    conv = Conversation()
    frames = conv.handshake() + [conv.data(True, encode_command("PING")),
                                 conv.data(False, b"+PONG\r\n"), conv.fin(True), conv.fin(False)]
    write_pcap(tmp_path / "ping.pcap", frames)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        out = _run_replay(tmp_path / "ping.pcap", port, *(["--json"] if as_json else []))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1] == (
        f"tcpplay-replay: cannot connect to tcp:host=127.0.0.1:port={port}: Connection refused")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_replay_reports_what_it_replayed_and_what_it_did_not(tmp_path, sig):
    """Ctrl-C or SIGTERM while connection 2 waits for its recorded start: connection 1's result
    is kept, connection 2 is 'not replayed', exit status 1 (it was every connection 'same'
    with 0 replies, '"same": true' and status 0, connection 1's comparison lost too)."""
    server = start_redis(str(tmp_path))
    try:
        first, second = Conversation(), Conversation(client=("10.0.0.1", 40001))
        frames = first.handshake() + [first.data(True, encode_command("SET", "replayed", "1")),
                                      first.data(False, b"+OK\r\n"), first.fin(True),
                                      first.fin(False)]
        frames += second.handshake() + [second.data(True, encode_command("PING")),
                                        second.data(False, b"+PONG\r\n")]
        write_pcap(tmp_path / "two.pcap", frames)
        # the recorded 5 ms between the connections, times 100,000: connection 2 waits 500 s
        proc = subprocess.Popen([str(BIN / "tcpplay-replay"), str(tmp_path / "two.pcap"),
                                 "--target", str(server.port), "--speed", "0.00001x"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)
        try:
            def first_done() -> bool:  # connection 1 answered, and closed by the replay
                info = subprocess.run([need("redis-cli"), "-p", str(server.port), "INFO"],
                                      capture_output=True, text=True, timeout=20).stdout
                return "db0:keys=1," in info and "connected_clients:1\n" in info

            wait_until(first_done, what="connection 1 replayed")
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=30)
        finally:
            stop_process(proc)
        assert proc.returncode == 1, out + err
        assert "Traceback" not in err
        assert "tcpplay-replay: interrupted: 1 of 2 connection(s) did not finish" in err
        lines = out.splitlines()
        assert lines[0].endswith("(resp): 1 reply, 0 differ")
        assert lines[1].endswith("(resp): not replayed: the replay was interrupted before it "
                                 "sent anything")
    finally:
        stop_process(server.proc)


def _pings(path, n: int) -> None:
    frames = []
    for i in range(n):
        conv = Conversation(client=("10.0.0.1", 20000 + i))
        frames += conv.handshake() + [conv.data(True, encode_command("PING")),
                                      conv.data(False, b"+PONG\r\n"), conv.fin(True),
                                      conv.fin(False)]
    write_pcap(path, frames)


def _limited(soft: int, hard: int):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_concurrency_past_the_open_files_limit_is_refused_or_the_limit_raised(tmp_path):
    """120 connections at once under a hard limit of 100 open files: one line naming
    --concurrency and the limit, exit status 2 (the connections past the limit were reported as
    replies that differ: 'cannot connect: Too many open files', 'recorded +PONG, now (no
    reply)'); under a soft limit of 100 the replay raises it and all 120 are replayed."""
    _pings(tmp_path / "many.pcap", 120)
    server = start_redis(str(tmp_path))
    try:
        args = [str(BIN / "tcpplay-replay"), str(tmp_path / "many.pcap"), "--target",
                str(server.port), "--speed", "max", "--concurrency", "120"]
        out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60,
                             preexec_fn=_limited(100, 100))
        assert out.returncode == 2, out.stdout + out.stderr
        assert out.stdout == "" and out.stderr.splitlines()[-1] == (
            "tcpplay-replay: --concurrency 120: 120 connections at once need about 184 open "
            "files, the limit is 100: lower --concurrency or raise the limit (ulimit -n)")
        out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60,
                             preexec_fn=_limited(100, 1024))
        assert out.returncode == 0, out.stdout + out.stderr
        assert "120 replies compared: 120 exact" in out.stdout
    finally:
        stop_process(server.proc)


def test_requests_a_session_never_sent_are_not_reported_as_unanswered(tmp_path):
    """A target that closes after the first of three requests: the first is 'now (no reply)',
    the two never sent are not (they were, as if sent and unanswered)."""
    conv = Conversation()
    frames = conv.handshake()
    for _ in range(3):
        frames += [conv.data(True, encode_command("PING")), conv.data(False, b"+PONG\r\n")]
    write_pcap(tmp_path / "three.pcap", frames + [conv.fin(True), conv.fin(False)])
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(30)

        def close_after_a_read():
            peer, _ = listener.accept()
            with peer:
                peer.recv(100)

        closer = threading.Thread(target=close_after_a_read, daemon=True)
        closer.start()
        out = _run_replay(tmp_path / "three.pcap", listener.getsockname()[1])
        closer.join(30)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].endswith("(resp): 1 reply, 1 differ; the server closed the connection after "
                             "1 of 3 requests (Connection was closed cleanly.)")
    assert lines[1] == "  #1 PING: recorded +PONG, now (no reply)"
    assert "#2" not in out.stdout and "#3" not in out.stdout


def test_ctrl_c_while_the_capture_is_read_is_one_line(tmp_path):
    """A capture that comes slowly (a FIFO its writer holds open): Ctrl-C while it is read was
    a KeyboardInterrupt traceback; it is one line and exit status 130."""
    fifo = tmp_path / "slow.pcap"
    os.mkfifo(fifo)
    proc = subprocess.Popen([str(BIN / "tcpplay-replay"), str(fifo), "--target", "6379"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        with open(fifo, "wb") as writer:  # opens once the replay opened it to read
            writer.write(b"\xd4\xc3\xb2\xa1\x02\x00")  # half a pcap header: it waits for more
            writer.flush()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
    finally:
        stop_process(proc)
    assert proc.returncode == 130, err
    assert out == "" and err == f"tcpplay-replay: interrupted while reading {fifo}\n"


def test_a_tls_target_whose_certificate_has_no_subject_alt_name_gets_no_request(tmp_path):
    """``--target tls:...`` to a server signed by the CA it trusts, ``CN=127.0.0.1`` and no
    subjectAltName: Twisted's endpoint let it through and the recorded PING reached it (its echo
    came back as the reply); the replay now says why it got nothing."""
    conv = Conversation()
    frames = conv.handshake() + [conv.data(True, encode_command("PING")),
                                 conv.data(False, b"+PONG\r\n"), conv.fin(True), conv.fin(False)]
    write_pcap(tmp_path / "ping.pcap", frames)
    pki = client_pki(tmp_path)
    server = TlsEchoServer(*pki["no-san"])
    try:
        target = f"tls:host=127.0.0.1:port={server.port}:trustRoots={pki['ca'].dir}"
        out = subprocess.run([str(BIN / "tcpplay-replay"), str(tmp_path / "ping.pcap"),
                              "--target", target, "--speed", "max"],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        wait_until(lambda: server.received, 10, "the TLS server to see the close")
    finally:
        server.close()
    assert server.received == [b""], out.stdout + out.stderr
    assert out.returncode != 0 and "certificate not for 127.0.0.1: " in out.stdout + out.stderr
