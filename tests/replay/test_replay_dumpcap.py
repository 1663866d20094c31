"""A capture made by dumpcap (Wireshark's capture engine, pcapng) on the loopback interface, of
redis-cli talking to redis-server directly, replays identically against a fresh server."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest

from playground.replay.capture import read_capture
from playground.replay.reassembly import CaptureError
from tests.support.paths import BIN, ROOT
from tests.support.processes import need, start_redis, stop_process
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real


def _start_dumpcap(port: int, path) -> subprocess.Popen:
    """dumpcap on ``lo`` for ``port``, once it says it is capturing; skip where it cannot."""
    exe = shutil.which("dumpcap")
    if exe is None:
        pytest.skip("dumpcap is not installed")
    proc = subprocess.Popen([exe, "-i", "lo", "-f", f"tcp port {port}", "-w", str(path)],
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


def _both_closed(path) -> bool:
    try:
        conns = read_capture(str(path)).connections
    except CaptureError:  # dumpcap is in the middle of a block
        return False
    return len(conns) == 2 and all(c.done for c in conns)


def test_a_dumpcap_capture_of_redis_cli_replays_identically(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    recorded = start_redis(str(tmp_path / "a"))
    fresh = start_redis(str(tmp_path / "b"))
    path = tmp_path / "lo.pcapng"
    try:
        dumpcap = _start_dumpcap(recorded.port, path)
        cli = [need("redis-cli"), "-p", str(recorded.port)]
        subprocess.run(cli + ["RPUSH", "q", "x", "y", "z"], check=True, timeout=20,
                       capture_output=True)
        subprocess.run(cli + ["LRANGE", "q", "0", "-1"], check=True, timeout=20,
                       capture_output=True)
        wait_until(lambda: _both_closed(path), what="dumpcap to write both connections")
        dumpcap.send_signal(signal.SIGINT)
        dumpcap.wait(15)
        out = subprocess.run([str(BIN / "tcpplay-replay"), str(path),  # the console entry
                              "--target", str(fresh.port), "--speed", "max"],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "2 replies compared: 2 exact" in out.stdout
    finally:
        for server in (recorded, fresh):
            stop_process(server.proc)
