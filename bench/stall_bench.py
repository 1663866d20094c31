"""Can one client stall the others? PING latency on a second connection under a hostile client.

    .venv/bin/python bench/stall_bench.py [--rounds 5] [--tail 1.5]

Starts an echo upstream (``twistd tcpplay echo``) and, in front of it, the decoding proxy
(``twistd tcpplay proxy --decode resp --metrics PORT``) with its console view written to a
regular file (stdout redirected to a file: the ``block`` slow-sink policy, every record kept).
A PING client on its own connection through the proxy sends ``PING`` and waits for the echo,
one after the other, for the whole of each scenario, while a hostile client (its own process)
does:

* ``ping-flood``: 100,000 pipelined ``PING``s in one write, reading every echo back;
* ``ping-flood-close``: the same write, then close at once (tens of thousands of commands are
  still unanswered when the pair closes: one ``unanswered`` record each);
* ``metrics-flood``: 1,000 pipelined ``GET /metrics.json`` in one write to ``--metrics``,
  reading every response (200 command names are counted first, the most the stats keep, so
  each render has its full size).

Each scenario runs ``--rounds`` times (plus a baseline with no hostile client); the table gives
the WORST p99 and max over the rounds, the target (max < 100 ms) and whether it is met. A round
measures from the hostile client's first byte until ``--tail`` seconds after it is done (the
decoding and the console output may still be running then; a PING in flight is always waited
for). Only loopback traffic; every loop is bounded in count and time. Exits 1 when a target is
missed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from benchsupport import TWISTD, free_port, stop, wait_port

PING = b"*1\r\n$4\r\nPING\r\n"  # the echo upstream sends it back as is
N_PINGS = 100_000
N_GETS = 1_000
TARGET_MAX = 0.100  # seconds


def twistd(args, cwd, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen([TWISTD, "-n", "--pidfile=", "tcpplay", *args], cwd=cwd,
                            stdout=stdout, stderr=subprocess.DEVNULL)


def recv_exactly(sock: socket.socket, n: int, deadline: float) -> bool:
    got = 0
    while got < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(min(1 << 20, n - got))
        except (TimeoutError, OSError):
            return False
        if not chunk:
            return False
        got += len(chunk)
    return True


class Pinger(threading.Thread):
    """PING, wait for the echo, record the round trip, again, until told to stop."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.latencies: list[float] = []
        self.recording = threading.Event()
        self.done = threading.Event()
        self.failed = None

    def run(self):
        try:
            for _ in range(10_000_000):  # bounded; stopped by ``done`` long before
                if self.done.is_set():
                    break
                start = time.perf_counter()
                self.sock.sendall(PING)
                if not recv_exactly(self.sock, len(PING), time.monotonic() + 30):
                    self.failed = "no echo within 30 s"
                    break
                if self.recording.is_set():
                    self.latencies.append(time.perf_counter() - start)
                time.sleep(0.002)
        except OSError as e:
            self.failed = str(e)
        finally:
            self.sock.close()


def hostile_pings(port: int, read_back: bool) -> None:
    data = PING * N_PINGS
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        if read_back:
            reader = threading.Thread(
                target=recv_exactly, args=(s, len(data), time.monotonic() + 60), daemon=True)
            reader.start()
            s.sendall(data)
            reader.join(60)
        else:
            s.sendall(data)


def hostile_gets(port: int) -> None:
    request = b"GET /metrics.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(request * N_GETS)
        deadline = time.monotonic() + 60
        seen = 0
        buf = b""
        while seen < N_GETS and time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(1 << 20)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            buf = buf[-32:] + chunk
            seen += chunk.count(b"HTTP/1.1 200")
        if seen < N_GETS:
            print(f"  (metrics-flood: {seen} of {N_GETS} responses)", file=sys.stderr)


def name_200_commands(port: int) -> None:
    """Make the proxy count 200 command names (the echo answers each with itself)."""
    data = b"".join(b"*1\r\n$6\r\nCMD%03d\r\n" % i for i in range(200))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        if not recv_exactly(s, len(data), time.monotonic() + 30):
            raise SystemExit("the echo did not answer the 200 commands")


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def one_round(proxy_port: int, hostile, tail: float) -> tuple[float, float, int]:
    pinger = Pinger(proxy_port)
    pinger.start()
    time.sleep(0.2)  # the pinger's pair is open and decoded before the round starts
    pinger.recording.set()
    if hostile is not None:
        # its own process: its sends and reads do not compete with the PING client for a GIL
        p = multiprocessing.get_context("fork").Process(target=hostile, daemon=True)
        p.start()
        p.join(120)
        if p.is_alive():
            p.kill()
            raise SystemExit("the hostile client did not finish within 120 s")
    time.sleep(tail)
    pinger.done.set()
    pinger.join(60)
    if pinger.failed:
        raise SystemExit(f"the PING client failed: {pinger.failed}")
    lat = pinger.latencies
    return percentile(lat, 0.99), max(lat, default=float("nan")), len(lat)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tail", type=float, default=1.5,
                    help="seconds measured after the hostile client is done")
    ap.add_argument("--only", default="baseline,ping-flood,ping-flood-close,metrics-flood")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="stall-bench-") as tmp:
        echo_port, proxy_port, metrics_port = free_port(), free_port(), free_port()
        console = open(os.path.join(tmp, "console.txt"), "wb")
        echo = twistd(["echo", "--listen", str(echo_port)], tmp)
        proxy = twistd(["proxy", "--listen", str(proxy_port), "--target", str(echo_port),
                        "--decode", "resp", "--metrics", str(metrics_port)], tmp, stdout=console)
        try:
            wait_port(echo_port)
            wait_port(proxy_port)
            wait_port(metrics_port)
            name_200_commands(proxy_port)
            scenarios = {
                "baseline": None,
                "ping-flood": lambda: hostile_pings(proxy_port, True),
                "ping-flood-close": lambda: hostile_pings(proxy_port, False),
                "metrics-flood": lambda: hostile_gets(metrics_port),
            }
            wanted = [s.strip() for s in args.only.split(",") if s.strip()]
            rows = []
            for name in wanted:
                worst_p99 = worst_max = 0.0
                n = 0
                for r in range(args.rounds):
                    p99, mx, count = one_round(proxy_port, scenarios[name], args.tail)
                    print(f"  {name} round {r + 1}: p99 {p99 * 1000:.1f} ms, "
                          f"max {mx * 1000:.1f} ms ({count} PINGs)", file=sys.stderr)
                    worst_p99, worst_max = max(worst_p99, p99), max(worst_max, mx)
                    n += count
                rows.append((name, worst_p99, worst_max, n))
        finally:
            stop(proxy)
            stop(echo)
            console.close()
        records = sum(1 for _ in open(os.path.join(tmp, "console.txt"), "rb"))
    print(f"\nPING latency on a second connection, worst of {args.rounds} round(s) "
          f"(console to a file: {records} lines written)")
    print(f"| {'hostile client':<18} | {'p99':>9} | {'max':>9} | PINGs | target max < 100 ms |")
    print(f"| {'-' * 18} | {'-' * 9} | {'-' * 9} | ----- | ------------------- |")
    missed = False
    for name, p99, mx, n in rows:
        met = mx < TARGET_MAX
        missed |= not met and name != "baseline"
        print(f"| {name:<18} | {p99 * 1000:6.1f} ms | {mx * 1000:6.1f} ms | {n:5d} | "
              f"{'met' if met else 'MISSED':<19} |")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
