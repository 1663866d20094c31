"""``tcpplay-pool``: what a connection pool saves, measured. Also ``python -m playground pool``.

``tcpplay-pool --target 6379 --requests 10000 --concurrency 50 --pool-size 8`` sends the
requests (alternately ``SET key value`` and ``GET key``, over 1000 keys), ``--concurrency`` at
a time, through a :class:`~playground.examples.pool.pool.ConnectionPool`; ``--no-pool`` opens a
new connection for each request instead. It prints requests per second, the latency
percentiles (acquire included: that is where a new connection costs) and how many TCP
connections it opened (the rate and the latencies are the successes'; failures per second are
given beside the rate); ``--json`` prints the same as one JSON object. ``--rounds N`` runs the
requests N times over the same pool, ``--pause`` seconds apart: time for the pooled connections
to idle, to be health-checked, or to be closed by the server. A request lost with its
connection is sent again once (``SET`` of a fixed value and ``GET`` are idempotent); one with
no reply within ``--timeout`` seconds fails and its connection is closed; any request that
still fails is counted, and the exit status is then 1 (as after Ctrl-C or SIGTERM mid-run,
which says the round that did not finish).

``--http`` makes the same comparison against an HTTP server (the example responder, ``twistd
tcpplay http``) with Twisted's own ``HTTPConnectionPool`` (``httpload``): ``POST /post`` and
``GET /get`` alternately; ``--pool-size`` is the connections it keeps, ``--idle-timeout`` how
long it keeps them, and the RESP pool's other settings do not apply.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

import attrs
from twisted.internet import defer, task
from twisted.python import usage

from playground.common.addresses import client_endpoint, client_target
from playground.common.options import (
    ArgumentParser,
    DefaultsHelpFormatter,
    argument_type,
    non_negative_float,
    positive_int,
)
from playground.examples.pool.httpload import HttpClients
from playground.examples.pool.pool import ConnectionPool, Unpooled

KEYS = 1000  # the requests cycle over this many keys
VALUE = b"tcpplay-pool-val"  # 16 bytes


@attrs.frozen
class Report:
    """What one run measured."""

    mode: str  # "pool", "no pool", "http pool", "http no pool"
    requests: int
    concurrency: int
    pool_size: int | None
    seconds: float
    latencies: tuple[float, ...]  # of the requests that succeeded, sorted, in seconds
    errors: tuple[tuple[str, int], ...]  # (first message of a kind, how many)
    connections: int  # TCP connections opened during the run
    checks: int = 0  # health checks (PING) the RESP pool sent during the run
    round: int = 1

    @property
    def failed(self) -> int:
        return sum(n for _, n in self.errors)

    @property
    def per_second(self) -> float:
        """Requests that succeeded, per second (the failed ones: ``failed_per_second``)."""
        return (self.requests - self.failed) / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed_per_second(self) -> float:
        return self.failed / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies, in seconds (0 when none succeeded)."""
        if not self.latencies:
            return 0.0
        rank = max(1, -(-len(self.latencies) * p // 100))
        return self.latencies[int(rank) - 1]

    def as_dict(self) -> dict:
        return {"mode": self.mode, "requests": self.requests, "concurrency": self.concurrency,
                "pool_size": self.pool_size, "seconds": round(self.seconds, 6),
                "requests_per_second": round(self.per_second, 1),
                "failed_per_second": round(self.failed_per_second, 1),
                # null when no request succeeded: there is no latency to give
                "p50_ms": self._ms(50), "p99_ms": self._ms(99), "max_ms": self._ms(100),
                "connections": self.connections, "checks": self.checks, "round": self.round,
                "failed": self.failed, "errors": dict(self.errors)}

    def _ms(self, p: float) -> float | None:
        return round(self.percentile(p) * 1000, 3) if self.latencies else None

    def text(self, target: str, label: str = "") -> str:
        """The report for a terminal; ``label`` starts its first line."""
        connections = f"{self.pool_size} connection" + ("" if self.pool_size == 1 else "s")
        how = {"pool": f"a pool of {connections}",
               "no pool": "a new connection per request",
               "http pool": f"HTTPConnectionPool keeping {connections}",
               "http no pool": "HTTPConnectionPool(persistent=False)"}[self.mode]
        lines = [
            f"{label}{self.requests} requests to {target}, {self.concurrency} at a time, {how}",
            f"  {self.per_second:.0f} requests/s succeeded, {self.failed_per_second:.0f}/s failed "
            f"({self.seconds:.2f} s)" if self.failed else
            f"  {self.per_second:.0f} requests/s ({self.seconds:.2f} s)",
            f"  latency p50 {self.percentile(50) * 1000:.2f} ms, "
            f"p99 {self.percentile(99) * 1000:.2f} ms, max {self.percentile(100) * 1000:.2f} ms"
            if self.latencies else "  latency: none (no request succeeded)",
            f"  {self.connections} TCP connection(s) opened",
        ]
        if self.mode == "pool":
            lines.append(f"  {self.checks} health check(s) (PING)")
        lines.append(f"  {self.failed} request(s) failed")
        lines += [f"    {n} x {message}" for message, n in self.errors]
        return "\n".join(lines)


async def run_load(send, requests: int, concurrency: int, timer=time.perf_counter):
    """Call ``send(i)`` (a Deferred) for i in ``range(requests)``, ``concurrency`` at a time;
    return (seconds, sorted latencies of the successes, error counts by first message)."""
    latencies: list[float] = []
    errors: Counter = Counter()
    first: dict[str, str] = {}
    numbers = iter(range(requests))

    async def worker():
        for i in numbers:
            t0 = timer()
            try:
                await send(i)
            except Exception as e:
                kind = type(e).__name__
                first.setdefault(kind, f"{kind}: {e}")
                errors[first[kind]] += 1
            else:
                latencies.append(timer() - t0)

    start = timer()
    workers = min(concurrency, requests)  # -c 1000000 -n 10: ten workers, not a million
    await defer.gatherResults([defer.ensureDeferred(worker()) for _ in range(workers)])
    latencies.sort()
    return timer() - start, tuple(latencies), tuple(errors.most_common())


def resp_request(source, i: int) -> defer.Deferred:
    """Request ``i``: ``SET`` for even ``i``, ``GET`` of the same key for odd ones."""
    key = b"tcpplay:pool:%d" % (i // 2 % KEYS)
    if i % 2:
        return source.execute("GET", key, idempotent=True)
    return source.execute("SET", key, VALUE, idempotent=True)


def make_source(args, reactor):
    endpoint = client_endpoint(reactor, args.desc)
    if args.no_pool:
        return Unpooled(endpoint, connect_timeout=args.connect_timeout,
                        request_timeout=args.timeout or None, reactor=reactor)
    return ConnectionPool(
        endpoint, max_size=args.pool_size, acquire_timeout=args.acquire_timeout,
        check_after=args.check_after, idle_timeout=args.idle_timeout or None,
        max_lifetime=args.max_lifetime or None, connect_timeout=args.connect_timeout,
        max_waiters=args.concurrency, request_timeout=args.timeout or None, reactor=reactor)


async def measure(reactor, args, each=None) -> list[Report]:
    """The RESP (or, with ``--http``, the HTTP) workload as ``args`` say: ``--rounds`` runs
    over the same pool, ``--pause`` seconds apart; a report for each (also given to ``each``
    as soon as its round is done)."""
    if args.http:
        source = HttpClients(client_endpoint(reactor, args.desc), args.host,
                             pool_size=args.pool_size, pooled=not args.no_pool,
                             idle_timeout=args.idle_timeout, reactor=reactor)
        send = source.request
    else:
        source = make_source(args, reactor)

        def send(i):
            return resp_request(source, i)
    mode = ("http " if args.http else "") + ("no pool" if args.no_pool else "pool")
    reports = []
    try:
        for n in range(1, args.rounds + 1):
            if n > 1:
                await task.deferLater(reactor, args.pause, lambda: None)
            made, checks = source.connections_made, getattr(source, "checks", 0)
            seconds, latencies, errors = await run_load(send, args.requests, args.concurrency)
            reports.append(Report(
                mode, args.requests, args.concurrency, None if args.no_pool else args.pool_size,
                seconds, latencies, errors, source.connections_made - made,
                getattr(source, "checks", 0) - checks, n))
            if each is not None:
                each(reports[-1])
    finally:
        await source.close()
    return reports


_positive_int = argument_type(positive_int)
_seconds = argument_type(non_negative_float)


def build_parser(prog: str = "tcpplay-pool") -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=prog, formatter_class=DefaultsHelpFormatter,
        description="Send GET/SET requests to a Redis-protocol server through a connection "
        "pool (or a new connection per request with --no-pool) and print requests/s, latency "
        "percentiles and the TCP connections opened.")
    parser.add_argument("--target", "-t", required=True,
                        help="the server: PORT (on 127.0.0.1), HOST:PORT or a Twisted client "
                        "endpoint string (tcp:host=H:port=P, unix:path=P, tls:...)")
    parser.add_argument("--requests", "-n", type=_positive_int, default=10000,
                        help="how many requests")
    parser.add_argument("--concurrency", "-c", type=_positive_int, default=10,
                        help="requests in flight at once")
    sizing = parser.add_mutually_exclusive_group()
    sizing.add_argument("--pool-size", type=_positive_int, default=8,
                        help="the pool's most connections")
    sizing.add_argument("--no-pool", action="store_true",
                        help="no pool: a new connection for each request, closed after it")
    parser.add_argument("--http", action="store_true",
                        help="an HTTP server instead (POST /post, GET /get) through Twisted's "
                        "HTTPConnectionPool; --pool-size is the connections it keeps")
    for flag, default, text in RESP_ONLY:
        parser.add_argument(flag, type=_seconds, default=argparse.SUPPRESS,
                            help=f"{text} [default: {default:g}; not with --http]")
    parser.add_argument("--idle-timeout", type=_seconds, default=60.0,
                        help="close connections idle this long (0: never)")
    parser.add_argument("--rounds", type=_positive_int, default=1,
                        help="run the requests this many times over the same pool")
    parser.add_argument("--pause", type=_seconds, default=5.0,
                        help="seconds between rounds, the pool idle")
    parser.add_argument("--json", action="store_true",
                        help="print the figures as one JSON object (a line per round)")
    return parser


# The RESP pool's own settings: (flag, default, help)
RESP_ONLY = (
    ("--acquire-timeout", 5.0, "seconds a request waits for a free connection"),
    ("--connect-timeout", 5.0, "seconds a connect (or a health check) may take"),
    ("--check-after", 5.0, "PING a connection idle this long before handing it out "
     "(0: before every use)"),
    ("--max-lifetime", 0.0, "retire connections this old (0: never)"),
    ("--timeout", 5.0, "seconds a request waits for its reply; it then fails and its "
     "connection is closed (0: no limit)"),
)


def parse_args(argv, prog: str = "tcpplay-pool") -> argparse.Namespace:
    """The checked arguments; a bad one exits with status 2 and a line naming its flag."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    for flag, default, _ in RESP_ONLY:
        name = flag[2:].replace("-", "_")
        if not hasattr(args, name):
            setattr(args, name, default)
        elif args.http:
            parser.error(f"argument {flag}: not used with --http (HTTPConnectionPool has no "
                         "such setting)")
    for flag in ("acquire_timeout", "connect_timeout"):
        if getattr(args, flag) == 0:
            parser.error(f"argument --{flag.replace('_', '-')}: must be more than 0 seconds")
    try:
        target = client_target(args.target, "--target")
    except usage.UsageError as e:
        parser.error(str(e))
    args.desc = target.desc
    host = target.host or "localhost"
    args.host = (f"[{host}]" if ":" in host else host) + (f":{target.port}" if target.port else "")
    return args


def main(argv: list[str] | None = None, prog: str = "tcpplay-pool") -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv, prog)

    shown: list[Report] = []
    ended: list[bool] = []

    def show(report: Report) -> None:
        shown.append(report)
        label = f"round {report.round}: " if args.rounds > 1 else ""
        print(json.dumps(report.as_dict()) if args.json else report.text(args.target, label),
              flush=True)

    async def run(reactor):
        reports = await measure(reactor, args, show)
        ended.append(True)
        if any(report.failed for report in reports):
            raise SystemExit(1)

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if code == 0 and not ended:  # the reactor stopped first: Ctrl-C, SIGTERM
        print(f"{prog}: interrupted: round {len(shown) + 1} of {args.rounds} did not finish "
              f"(no figures for it)", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
