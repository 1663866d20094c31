"""What every benchmark here needs: the venv's twistd, free loopback ports, waiting for a
listener, a process's resident memory and children, and stopping a process. Benchmarks run as ``python bench/NAME.py``, so this
module is imported by its bare name."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0, what: str = "nothing") -> None:
    """Return once 127.0.0.1:``port`` accepts; exit the benchmark after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{what} listening on 127.0.0.1:{port} after {timeout}s")


def rss_kib(pid: int) -> int:
    """The resident set of process ``pid`` in KiB (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (none once it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def rss_mib(pid: int) -> float:
    return rss_kib(pid) / 1024


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM (a graceful stop), then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
