"""Replay rate: ``tcpplay-replay --speed max`` against a real redis-server, beside
redis-benchmark on the same machine.

    .venv/bin/python bench/replay_bench.py [--commands 100000] [--rounds 3]

Records a capture of ``--commands`` commands: ``redis-benchmark -c 1 -P 16 -t set,get`` (half
SETs, half GETs, one connection per test) through ``twistd -n tcpplay proxy --pcap`` in front of
a redis-server. Then, per round, against a second redis-server (FLUSHALL first):
``python -m playground replay CAPTURE --speed max --json`` request by request (send, wait for
the reply, send the next) and ``--pipelined``, and redis-benchmark with the same shape (one
connection, ``-P 1`` and ``-P 16``, the same command count). Prints requests/s per round and the
worst of the rounds; for the replay both the whole command (reading the capture, decoding,
comparing) and the replay alone (the connections' own time, from the ``--json`` report).

Only loopback traffic; every wait is bounded in time. Exits 2 when redis-server, redis-cli or
redis-benchmark is missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time

from benchsupport import ROOT, TWISTD, free_port, stop, wait_port


def redis_server(tmpdir: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", tmpdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, what="redis-server")
    return proc, port


def benchmark(port: int, commands: int, pipeline: int) -> float:
    """redis-benchmark's requests/s over SET then GET (``commands`` in all, one connection)."""
    start = time.perf_counter()
    subprocess.run(["redis-benchmark", "-p", str(port), "-c", "1", "-n", str(commands // 2),
                    "-t", "set,get", "-P", str(pipeline), "-q"], check=True, timeout=600,
                   capture_output=True)
    return commands / (time.perf_counter() - start)


def record(tmpdir: str, redis_port: int, commands: int) -> str:
    pcap = f"{tmpdir}/bench.pcap"
    listen = free_port()
    proxy = subprocess.Popen([TWISTD, "-n", "--pidfile=", "tcpplay", "proxy", "--listen",
                              str(listen), "--target", str(redis_port), "--pcap", pcap,
                              "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_port(listen, what="the proxy")
        subprocess.run(["redis-benchmark", "-p", str(listen), "-c", "1", "-n",
                        str(commands // 2), "-t", "set,get", "-P", "16", "-q"], check=True,
                       timeout=600, capture_output=True)
    finally:
        stop(proxy)  # SIGTERM: the pcap is flushed and closed
    return pcap


def replay(pcap: str, port: int, *extra: str) -> tuple[int, float, float]:
    """(replies compared, requests/s of the whole command, requests/s of the replay alone)."""
    subprocess.run(["redis-cli", "-p", str(port), "FLUSHALL"], check=True, timeout=30,
                   capture_output=True)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "playground", "replay", pcap, "--target",
                          str(port), "--speed", "max", "--json", *extra], cwd=ROOT,
                         capture_output=True, text=True, timeout=1200)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"replay exited {out.returncode}: {out.stdout[-500:]}{out.stderr}")
    report = json.loads(out.stdout)
    n = report["totals"]["requests"]
    alone = sum(c["seconds"] for c in report["connections"])
    return n, n / wall, n / alone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    procs = []
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmpdir:
        try:
            recorded, recorded_port = redis_server(tmpdir)
            procs.append(recorded)
            pcap = record(tmpdir, recorded_port, args.commands)
            target, port = redis_server(tmpdir)
            procs.append(target)
            rows: dict[str, list[float]] = {}
            for r in range(1, args.rounds + 1):
                n, whole, alone = replay(pcap, port)
                rows.setdefault("replay, request by request: whole command", []).append(whole)
                rows.setdefault("replay, request by request: replay alone", []).append(alone)
                _, whole, alone = replay(pcap, port, "--pipelined")
                rows.setdefault("replay --pipelined: whole command", []).append(whole)
                rows.setdefault("replay --pipelined: replay alone", []).append(alone)
                rows.setdefault("redis-benchmark -c 1 -P 1", []).append(
                    benchmark(port, args.commands, 1))
                rows.setdefault("redis-benchmark -c 1 -P 16", []).append(
                    benchmark(port, args.commands, 16))
                print(f"round {r}: {n} replies compared; " + "; ".join(
                    f"{name} {values[-1]:,.0f}/s" for name, values in rows.items()),
                    flush=True)
        finally:
            for p in procs:
                stop(p)
    width = max(map(len, rows))
    print(f"\n{'requests/s (worst of %d rounds)' % args.rounds:<{width}}  rate")
    for name, values in rows.items():
        print(f"{name:<{width}}  {min(values):>9,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
