"""What byte toxics cost, side by side in one run: the proxy of a base revision with no toxics, this
tree's with no toxics, and this tree's with an idle ``latency 0`` toxic on each direction.

    python bench/faults_bench.py [--base main] [--rounds 3] [--quick]

``redis-benchmark -q -t set,get -n 100000 -c 50`` at ``-P 1`` and ``-P 16`` against a real
redis-server through each proxy (``--decode none``), the settings interleaved round by round; each
figure is the worst of the rounds: requests per second, and the proxy's CPU time (user + system,
from /proc) per request, which a loaded machine disturbs far less than throughput. The base revision is exported with ``git archive`` into a
temporary folder and run from there. Only loopback traffic; every loop is bounded.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

from benchsupport import ROOT, free_port, stop, wait_port

# the proxy of the tree at sys.argv[1], built and run in this process (no twistd: two trees
# would both register the plugin)
RUN_PROXY = r"""
import sys
sys.path.insert(0, sys.argv[1])
from twisted.internet import reactor
from playground.proxy.service import Options, make_service
options = Options()
options.parseOptions(sys.argv[2:])
service = make_service(options, reactor)
service.privilegedStartService()
service.startService()
reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
reactor.run()
"""


def start_proxy(tree: str, target: int, faults: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    argv = ["--listen", str(port), "--target", str(target), "--decode", "none",
            "--max-connections", "0"]
    for fault in faults:
        argv += ["--fault", fault]
    proc = subprocess.Popen([sys.executable, "-c", RUN_PROXY, tree, *argv], cwd=tree,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, what=f"no proxy of {tree}")
    return proc, port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_benchmark(port: int, pipeline: int, n: int) -> dict[str, float]:
    out = subprocess.run(
        ["redis-benchmark", "-q", "-t", "set,get", "-n", str(n), "-c", "50", "-P", str(pipeline),
         "-p", str(port)], capture_output=True, text=True, timeout=300).stdout
    figures = {name: float(rps) for name, rps in
               re.findall(r"(SET|GET): ([\d.]+) requests per second", out.replace("\r", "\n"))}
    if len(figures) != 2:
        raise SystemExit(f"redis-benchmark output not understood:\n{out}")
    return figures


def export(rev: str, into: str) -> None:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev],
                             capture_output=True, check=True).stdout
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(into, filter="data")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="main", help="the revision to compare with (git)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    args = ap.parse_args(argv)
    missing = [t for t in ("redis-server", "redis-benchmark") if not shutil.which(t)]
    if missing:
        print(f"missing peers: {', '.join(missing)}", file=sys.stderr)
        return 2
    n = 20000 if args.quick else 100000
    with tempfile.TemporaryDirectory(prefix="tcpplay-faults-bench-") as tmp:
        export(args.base, tmp)
        rport = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no"], cwd=tmp,
                                 stdout=subprocess.DEVNULL)
        wait_port(rport, what="no redis-server")
        settings = {
            f"{args.base}, no toxics": (tmp, []),
            "this tree, no toxics": (str(ROOT), []),
            "this tree, latency 0 each way": (str(ROOT), ["latency:upstream:0",
                                                          "latency:downstream:0"]),
        }
        proxies = {name: start_proxy(tree, rport, faults)
                   for name, (tree, faults) in settings.items()}
        worst: dict[tuple[str, int], dict[str, float]] = {}
        try:
            for _ in range(args.rounds):
                for pipeline in (1, 16):
                    for name, (proc, port) in proxies.items():
                        cpu = cpu_seconds(proc.pid)
                        got = redis_benchmark(port, pipeline, n)
                        us = 1e6 * (cpu_seconds(proc.pid) - cpu) / (2 * n)  # SET and GET
                        old = worst.setdefault((name, pipeline), dict(got, us=us))
                        for key in got:
                            old[key] = min(old[key], got[key])
                        old["us"] = max(old["us"], us)
        finally:
            for proc, _port in proxies.values():
                stop(proc)
            stop(redis)
    base = f"{args.base}, no toxics"
    print(f"| setting | -P | SET / GET req/s | vs {base} | proxy CPU per request | vs {base} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for pipeline in (1, 16):
        for name in settings:
            got, ref = worst[name, pipeline], worst[base, pipeline]
            ratio = " / ".join(f"{100 * got[k] / ref[k]:.1f}%" for k in ("SET", "GET"))
            print(f"| {name} | {pipeline} | {got['SET']:,.0f} / {got['GET']:,.0f} | {ratio} "
                  f"| {got['us']:.2f} us | {100 * got['us'] / ref['us']:.1f}% |")
    print(f"(each figure the worst of {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
