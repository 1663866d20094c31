"""Decoding memory: does the proxy's RSS come back after big RESP values go through it?

    .venv/bin/python bench/decode_memory.py [--rounds 4] [--conns 4] [--mib 50]
                                           [--decode auto,resp,none] [--variant unfinished,finished]

Starts a real redis-server and, per ``--decode`` mode, ``twistd -n tcpplay proxy`` in front of it
(default ``--max-value`` and ``--max-frame``; the console view goes to /dev/null). Each round
opens ``--conns`` connections at once; each sends ``SET k <--mib MiB>``: *unfinished* (the
whole value but not its final CRLF, then close) or *finished* (the whole command, wait for
``+OK``, close). After each round, once redis-server counts no client from the proxy any more,
the proxy's RSS (``VmRSS`` of /proc/PID/status) is read. The start is read after one PING
through the proxy (the decoders loaded). Prints each RSS, the worst growth over the start, and
whether it is within ``--target`` MiB (default 20), beside ``--decode none``.

Only loopback traffic; every wait is bounded in time. Exits 2 when redis-server is missing.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from benchsupport import ROOT, TWISTD, free_port, rss_mib, stop, wait_port

MIB = 1024 * 1024


def ask(port: int, command: bytes, timeout: float = 10.0) -> bytes:
    """One inline command's reply (up to the first CRLF-terminated block read)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(command + b"\r\n")
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(b"\r\n") and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        if command.startswith(b"INFO"):  # a bulk: read to its declared length
            head, _, body = data.partition(b"\r\n")
            want = int(head[1:]) + 2
            while len(body) < want and time.monotonic() < deadline:
                body += s.recv(65536)
            return body
        return data


def clients(redis_port: int) -> int:
    info = ask(redis_port, b"INFO clients")
    for line in info.splitlines():
        if line.startswith(b"connected_clients:"):
            return int(line.split(b":")[1])
    raise SystemExit("no connected_clients in INFO")


def send_set(port: int, size: int, finished: bool, errors: list) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % size)
            block = b"v" * MIB
            left = size
            while left:
                n = min(left, MIB)
                s.sendall(block[:n])
                left -= n
            if finished:
                s.sendall(b"\r\n")
                reply = s.recv(16)
                if reply != b"+OK\r\n":
                    errors.append(f"SET replied {reply!r}")
    except OSError as e:
        errors.append(f"sender: {e}")


def run_mode(decode: str, finished: bool, args, redis_port: int) -> list[float]:
    port = free_port()
    cmd = [TWISTD, "-n", "--pidfile=", "tcpplay", "proxy", "--listen",
           f"tcp:{port}:interface=127.0.0.1", "--target", f"tcp:host=127.0.0.1:port={redis_port}",
           "--decode", decode, "--color", "never"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_port(port)
        base_clients = clients(redis_port)
        figures = [rss_mib(proc.pid)]
        if ask(port, b"PING") != b"+PONG\r\n":
            raise SystemExit("PING through the proxy failed")
        figures.append(rss_mib(proc.pid))
        for _ in range(args.rounds):
            errors: list = []
            threads = [threading.Thread(target=send_set,
                                        args=(port, args.mib * MIB, finished, errors))
                       for _ in range(args.conns)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            if errors or any(t.is_alive() for t in threads):
                raise SystemExit(f"round failed: {errors or 'a sender hung'}")
            deadline = time.monotonic() + 60
            while clients(redis_port) > base_clients:
                if time.monotonic() > deadline:
                    raise SystemExit("the proxy's pairs did not close within 60 s")
                time.sleep(0.05)
            time.sleep(0.2)  # the close callbacks of the last pair
            figures.append(rss_mib(proc.pid))
        return figures
    finally:
        stop(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--mib", type=int, default=50, help="size of each SET value, MiB")
    ap.add_argument("--decode", default="auto,none", help="modes to compare (comma-separated)")
    ap.add_argument("--variant", default="unfinished,finished",
                    help="unfinished (close before the final CRLF), finished, or both")
    ap.add_argument("--target", type=float, default=20.0, help="allowed RSS growth, MiB")
    args = ap.parse_args()
    exe = shutil.which("redis-server")
    if exe is None:
        print("redis-server is needed", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="tcpplay-bench-")
    redis_port = free_port()
    redis = subprocess.Popen(
        [exe, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", tmp, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        wait_port(redis_port)
        for variant in args.variant.split(","):
            for decode in args.decode.split(","):
                figures = run_mode(decode, variant == "finished", args, redis_port)
                rows.append((decode, variant, figures))
    finally:
        stop(redis)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"proxy RSS (MiB), {args.rounds} rounds of {args.conns} x {args.mib} MiB SET "
          f"values, each connection closed; start = after one PING through the proxy")
    head = ["decode", "variant", "idle", "start"] + [f"r{i + 1}" for i in range(args.rounds)]
    print(" | ".join(head + ["worst growth", f"target <= {args.target:g} MiB"]))
    ok = True
    for decode, variant, figures in rows:
        start = figures[1]
        growth = max(figures[2:]) - start
        met = growth <= args.target
        ok = ok and (met or decode == "none")
        cells = [decode, variant] + [f"{f:.1f}" for f in figures]
        print(" | ".join(cells + [f"{growth:+.1f}", "met" if met else "NOT met"]))
    print("with decoding: target " + ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
