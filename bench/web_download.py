"""What a big download from the web view costs the other clients: their worst round trip.

    python bench/web_download.py [--requests 800000] [--rounds 3] [--kind jsonl|pcap]

A real redis-server behind ``twistd tcpplay proxy --web`` (``--quiet``); ``redis-benchmark -c 1
-P 16 -t set`` fills one connection (800,000 SETs: the view's 64 MiB hold most of them); then,
each round, ``curl`` downloads that connection's ``.jsonl`` (or ``.pcap``) while another client
sends ``PING`` through the proxy every 2 ms. Printed per round: the file's size and time, and
the worst and median ``PING`` round trip before the download and during it (a download made
in one reactor turn held every client for its whole making). The worst round is the figure.
Only loopback traffic; every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchsupport import TWISTD, free_port, wait_port
from proxy_bench import Proc

PING = b"*1\r\n$4\r\nPING\r\n"


class Pinger:
    """A client sending PING through the proxy every 2 ms, its round trips kept."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.times: list[float] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            start = time.perf_counter()
            self.sock.sendall(PING)
            got = b""
            while not got.endswith(b"\r\n"):
                more = self.sock.recv(64)
                if not more:  # the proxy closed it: no more pings (the round says so)
                    self.running = False
                    return
                got += more
            self.times.append(time.perf_counter() - start)
            time.sleep(0.002)

    def take(self) -> list[float]:
        times, self.times = self.times, []
        return times

    def stop(self):
        self.running = False
        self.thread.join(30)
        self.sock.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=800_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kind", choices=("jsonl", "pcap"), default="jsonl")
    args = ap.parse_args()
    missing = [t for t in ("redis-server", "redis-benchmark", "curl") if not shutil.which(t)]
    if missing:
        print(f"missing: {', '.join(missing)} (Debian: redis-server redis-tools curl)",
              file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="web-download-")
    rport, port, web = free_port(), free_port(), free_port()
    redis = Proc(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no"], rport, cwd=tmp)
    proxy = Proc([TWISTD, "-n", "--pidfile=", "tcpplay", "proxy", "--listen", str(port),
                  "--target", str(rport), "--quiet", "--web", str(web)], port, cwd=tmp)
    pinger = None
    try:
        wait_port(web, what="the web view")
        subprocess.run(["redis-benchmark", "-p", str(port), "-c", "1", "-P", "16", "-t", "set",
                        "-n", str(args.requests), "-q"], capture_output=True, timeout=600,
                       check=True)
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/connections", timeout=30) as r:
            listed = json.load(r)["connections"]
        big = max(listed, key=lambda c: c["exchanges"])
        print(f"connection #{big['id']}: {big['exchanges']:,} exchanges kept; "
              f"downloading its .{args.kind} while a client PINGs every 2 ms")
        pinger = Pinger(port)
        worst = []
        for n in range(1, args.rounds + 1):
            time.sleep(0.5)
            before = pinger.take()
            start = time.perf_counter()
            out = subprocess.run(
                ["curl", "-sS", "-o", f"{tmp}/file", "-w", "%{http_code} %{size_download}",
                 f"http://127.0.0.1:{web}/api/connections/{big['id']}.{args.kind}"],
                capture_output=True, text=True, timeout=600).stdout.split()
            took = time.perf_counter() - start
            during = pinger.take()
            if out[0] != "200" or not during:
                print(f"round {n}: HTTP {out[0]}, {len(during)} pings", file=sys.stderr)
                return 1
            worst.append(max(during))
            print(f"round {n}: {int(out[1]) / 1e6:,.1f} MB in {took:.2f} s; PING before: worst "
                  f"{max(before) * 1e3:.1f} ms; during: worst {max(during) * 1e3:.1f} ms, "
                  f"median {statistics.median(during) * 1e3:.2f} ms ({len(during)} pings)")
        print(f"worst PING during a download, worst of {args.rounds} rounds: "
              f"{max(worst) * 1e3:.1f} ms")
        return 0
    finally:
        if pinger is not None:
            pinger.stop()
        proxy.stop()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
