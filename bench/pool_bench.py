"""Connection pool benchmark, side by side in one run: a pool vs a new connection per request,
direct to a redis-server and through the tcpplay proxy (plain, and decoding RESP).

    python bench/pool_bench.py [--requests 2000] [--concurrency 20] [--pool-size 8] [--rounds 3]

Each cell is one ``python -m playground pool --json`` run (GET/SET alternately); the rounds are
interleaved (every cell once, then again), and the table gives each cell's worst round:
the lowest requests/s and the highest p99 latency, and the TCP connections the client opened
(through the proxy, the proxy opens as many again to the server). The decoding proxy writes its
console view to a file (every record kept). Exits 2 when redis-server is missing. Only loopback
traffic; each run is bounded by ``--requests`` and a timeout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile

from benchsupport import ROOT, TWISTD, free_port, stop, wait_port


def start(args, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=stdout, stderr=subprocess.DEVNULL)


def run_client(port: int, opts, no_pool: bool) -> dict:
    argv = [sys.executable, "-m", "playground", "pool", "--target", str(port),
            "--requests", str(opts.requests), "--concurrency", str(opts.concurrency), "--json"]
    argv += ["--no-pool"] if no_pool else ["--pool-size", str(opts.pool_size)]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"tcpplay-pool failed ({out.returncode}): {out.stdout}{out.stderr}")
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--pool-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    redis = shutil.which("redis-server")
    if redis is None:
        print("redis-server is not installed (make bench-tools)", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="tcpplay-pool-bench-")
    procs = []
    try:
        server = free_port()
        procs.append(start([redis, "--port", str(server), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", tmp]))
        wait_port(server, what="no redis-server")
        plain, decoding = free_port(), free_port()
        common = [TWISTD, "-n", "--pidfile=", "tcpplay", "proxy", "--target", str(server)]
        procs.append(start(common + ["--listen", str(plain), "--decode", "none"]))
        with open(f"{tmp}/console.txt", "wb") as console:  # the proxy keeps its own copy
            procs.append(start(common + ["--listen", str(decoding), "--decode", "resp",
                                         "--color", "never"], stdout=console))
        wait_port(plain, what="no proxy")
        wait_port(decoding, what="no decoding proxy")
        targets = [("direct", server), ("proxy --decode none", plain),
                   ("proxy --decode resp (console to a file)", decoding)]
        cells = [(name, port, no_pool) for name, port in targets for no_pool in (False, True)]
        rounds: dict[tuple, list[dict]] = {(name, no_pool): [] for name, _, no_pool in cells}
        for r in range(opts.rounds):
            for name, port, no_pool in cells:
                report = run_client(port, opts, no_pool)
                rounds[(name, no_pool)].append(report)
                print(f"round {r + 1}: {name}, {'no pool' if no_pool else 'pool'}: "
                      f"{report['requests_per_second']:.0f} req/s, p99 {report['p99_ms']:.2f} ms",
                      file=sys.stderr, flush=True)
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{opts.requests} GET/SET requests, {opts.concurrency} at a time; worst of "
          f"{opts.rounds} rounds (lowest req/s, highest p99)\n")
    print("| path | client | req/s | p99 | TCP connections | req/s vs no pool |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, _ in targets:
        worst = {}
        for no_pool in (False, True):
            reports = rounds[(name, no_pool)]
            worst[no_pool] = (min(r["requests_per_second"] for r in reports),
                              max(r["p99_ms"] for r in reports),
                              max(r["connections"] for r in reports))
        for no_pool in (False, True):
            rate, p99, conns = worst[no_pool]
            client = "new connection per request" if no_pool else f"pool of {opts.pool_size}"
            ratio = f"{rate / worst[True][0]:.2f}x" if worst[True][0] else "-"
            print(f"| {name} | {client} | {rate:,.0f} | {p99:.2f} ms | {conns:,} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
