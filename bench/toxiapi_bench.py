"""The toxiproxy API's cost on forwarding, side by side in one run (no decoding anywhere):

    python bench/toxiapi_bench.py [--rounds 3] [-n 100000]

``redis-benchmark -q -t set,get -c 50`` at ``-P 1`` and ``-P 16`` against a real redis-server
through: ``proxy`` alone; ``proxy --api`` (its empty toxic set); a proxy created through
``toxiproxy --api``; the same with an idle ``latency 0`` toxic. Rounds are interleaved; the
worst round of each is printed (lowest req/s; highest CPU time of the proxy's process per request,
from /proc, which a loaded machine disturbs far less than req/s), with its ratio to ``proxy``
alone. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import urllib.request

from benchsupport import TWISTD, free_port, wait_port
from faults_bench import cpu_seconds
from proxy_bench import Proc, redis_benchmark


def api_post(api: int, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{api}{path}",
                                     data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="toxiapi-bench-")
    rport = free_port()
    procs = [Proc(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", tmp], rport)]
    try:
        twistd = [TWISTD, "-n", "--pidfile=", "tcpplay"]
        variants = {}
        plain, with_api, api, api2 = free_port(), free_port(), free_port(), free_port()
        procs.append(Proc([*twistd, "proxy", "--listen", str(plain), "--target", str(rport),
                           "--decode", "none", "--max-connections", "0"], plain, cwd=tmp))
        variants["proxy"] = (plain, procs[-1].pid)
        procs.append(Proc([*twistd, "proxy", "--listen", str(with_api), "--target", str(rport),
                           "--decode", "none", "--max-connections", "0", "--api", str(api)],
                          with_api, cwd=tmp))
        variants["proxy --api"] = (with_api, procs[-1].pid)
        procs.append(Proc([*twistd, "toxiproxy", "--api", str(api2), "--decode", "none"], api2,
                          cwd=tmp))
        for name in ("created", "latency0"):
            port = free_port()
            api_post(api2, "/proxies", {"name": name, "listen": f"127.0.0.1:{port}",
                                        "upstream": f"127.0.0.1:{rport}"})
            wait_port(port)
            variants["toxiproxy: created proxy" if name == "created"
                     else "toxiproxy: created, idle latency 0 toxic"] = (port, procs[-1].pid)
        api_post(api2, "/proxies/latency0/toxics", {"type": "latency",
                                                   "attributes": {"latency": 0}})
        worst: dict[tuple[str, int], dict[str, float]] = {}
        for _ in range(args.rounds):
            for pipeline in (1, 16):
                for label, (port, pid) in variants.items():
                    cpu = cpu_seconds(pid)
                    got = redis_benchmark(port, pipeline, args.n)
                    got["us"] = 1e6 * (cpu_seconds(pid) - cpu) / (2 * args.n)  # SET and GET
                    seen = worst.setdefault((label, pipeline), dict(got))
                    for op in ("SET", "GET"):
                        seen[op] = min(seen[op], got[op])
                    seen["us"] = max(seen["us"], got["us"])
        for pipeline in (1, 16):
            base = worst[("proxy", pipeline)]
            for label in variants:
                w = worst[(label, pipeline)]
                print(f"-P {pipeline:<2} {label:<42} SET {w['SET']:>9,.0f}  GET {w['GET']:>9,.0f}"
                      f"  {w['SET'] / base['SET']:5.0%} / {w['GET'] / base['GET']:5.0%}"
                      f"   CPU {w['us']:5.1f} us/req  {w['us'] / base['us']:5.0%}")
    finally:
        for p in reversed(procs):
            p.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
