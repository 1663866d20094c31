"""Proxy benchmark, side by side in one run: direct vs tcpplay vs Twisted's portforward vs socat
vs haproxy.

    python bench/proxy_bench.py [--quick] [--only redis,bulk,slow,idle,pairs,copy] [--decode]
                                [--decode-process] [--rounds N] [--pipelines 1,16] [--kinds tcpplay,haproxy]
                                [--base REV] [--requests N]

* redis: ``redis-benchmark -q -t set,get -n 100000 -c 50`` at ``-P 1`` and ``-P 16`` against a real
  redis-server: direct, through tcpplay (``--decode none``: the zero-copy splice), through tcpplay
  ``--decode none --no-zero-copy`` (forwarding in Python), through portforward, socat and
  haproxy (Debian's, ``mode tcp``, its default threads, and ``haproxy-1t``: ``nbthread 1``); with
  ``--decode`` also through tcpplay decoding RESP into the JSON sink, into the console sink, and
  into both at once (all writing to files); each against the median and the worst round of
  tcpplay with ``--decode none``, decoding in the proxy's process (``--decode-inline``); with
  ``--decode-process`` also each of those three with ``--decode-process`` (rows
  ``.../process``: decoding in a child process, whose CPU the proxy's CPU per request includes;
  the default on more than one core).
* bulk: 1 GiB in one direction through each proxy into a sink; MB/s.
* slow: a sender pushes 512 MiB, the receiver reads 1 MB/s for 10 s: the proxy's RSS growth.
* idle: 2,000 idle proxied pairs: the proxy's RSS per pair.
* pairs (not in the default ``--only``): 2,000 connections one after the other, each a PING,
  its PONG and the close: the proxy's CPU per pair (accept, connect, the open and close log
  lines, the teardown). redis-benchmark opens 50 connections per test, so each redis row
  carries about 101 pairs' setup in its CPU per request: at ``-P 16`` and ``-n 100000`` a
  fixed cost of 0.5 ms per pair is 0.25 us of each request's; ``--requests`` (redis-benchmark's
  ``-n``) shows the rows with less of it. Default ``-n``: 100,000 per unit of ``-P`` (1,600,000
  at ``-P 16``): at ``-n 100000`` a ``-P 16`` test through the splice lasted 50-80 ms, and its
  rate was mostly start-up and the scheduler's luck (rounds differed by 25%).

* copy (not in the default ``--only``): no proxy process; in this one, 50 pairs of loopback
  sockets, batches of 16 SET commands and their 16 ``+OK`` replies, each read moved by the
  splice's way (``splice`` into a pipe, ``splice`` out of it) or by a copy (``recv_into`` one
  reused buffer, ``send``), the two interleaved over ``--rounds`` rounds: this thread's CPU per
  batch (the request and its reply, ``epoll`` included), and the peers' ``recv`` of what was
  moved. Whether copying small reads would cost less than splicing them.

``--pipelines`` and ``--kinds`` narrow a run to the rows one needs (say ``--only redis
--pipelines 16 --kinds tcpplay,haproxy``); a ratio against a kind not run is left out.
``--base REV`` adds ``tcpplay-base``: the same ``--decode none`` proxy of revision REV (exported
with ``git archive``), to measure a change side by side with the code before it.
The redis and bulk rows run ``--rounds`` rounds (default 3), the kinds interleaved in each round;
each row shows the median and the worst round, and the ratios of the medians (the issue's
targets: tcpplay >= 1.0x haproxy at ``-P 16`` and on bulk, >= 1.5x portforward at ``-P 1``).
Prints one table with every figure and every ratio; exits 2 when a peer it needs is missing.
Only loopback traffic; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchsupport import HERE, TWISTD, children, free_port, rss_kib, wait_port
from faults_bench import RUN_PROXY, export

# tcpplay-base: the proxy of the exported tree, logging as ``twistd -n`` does (one text line per
# event to stdout: the open and close lines are part of each pair's cost) and with tap.py's
# gc.freeze() at start, so the two trees are measured alike.
RUN_BASE = RUN_PROXY.replace(
    "service.startService()",
    "import gc\n"
    "from twisted.logger import globalLogBeginner, textFileLogObserver\n"
    "globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])\n"
    "gc.collect()\n"
    "gc.freeze()\n"
    "service.startService()")


def _cpu_tree(pid: int) -> int:
    """Clock ticks ``pid`` used (with its reaped children's), and its live children's."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:  # gone
        return 0
    ticks = sum(int(x) for x in fields[11:15])
    return ticks + sum(_cpu_tree(c) for c in children(pid))


class Proc:
    def __init__(self, args, port=None, stdout=subprocess.DEVNULL, **kw):
        self.p = subprocess.Popen(args, stdout=stdout, stderr=subprocess.DEVNULL, **kw)
        if port:
            wait_port(port)

    @property
    def pid(self):
        return self.p.pid

    def cpu(self) -> float:
        """CPU seconds the process used so far: its threads, its reaped children (socat's) and
        its live ones (tcpplay's decoder process, with --decode-process)."""
        return _cpu_tree(self.p.pid) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


def start_proxy(kind: str, target: int, tmp: str, extra=None, stdout=None) -> tuple[Proc, int]:
    """``extra``: tcpplay's decoding flags (default: --decode none, the plain splice)."""
    port = free_port()
    if kind == "tcpplay-python":
        kind, extra = "tcpplay", ["--decode", "none", "--no-zero-copy"]
    if kind == "tcpplay-base":  # the tree exported into tmp/base, run without twistd
        args = [sys.executable, "-c", RUN_BASE, f"{tmp}/base", "--listen", str(port),
                "--target", str(target), "--max-connections", "0", "--decode", "none"]
    elif kind == "tcpplay":
        args = [TWISTD, "-n", "--pidfile=", "tcpplay", "proxy", "--listen", str(port),
                "--target", str(target), "--max-connections", "0",
                *(extra if extra is not None else ["--decode", "none"])]
    elif kind in ("haproxy", "haproxy-1t"):
        config = f"{tmp}/haproxy-{port}.cfg"
        threads = "    nbthread 1\n" if kind == "haproxy-1t" else ""
        with open(config, "w") as f:
            f.write(HAPROXY_CONFIG.format(listen=port, target=target, threads=threads))
        args = ["haproxy", "-db", "-f", config]
    elif kind == "portforward":
        args = [sys.executable, str(HERE / "portforward.py"), str(port), str(target)]
    elif kind == "socat":
        args = ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,backlog=1024",
                f"TCP:127.0.0.1:{target},nodelay"]
    else:
        raise ValueError(kind)
    return Proc(args, port, cwd=tmp, stdout=stdout or subprocess.DEVNULL), port


# haproxy as a plain TCP hop: mode tcp, Debian's defaults otherwise (threads: one per core);
# haproxy-1t: one thread, as tcpplay has.
HAPROXY_CONFIG = """global
    maxconn 5000
{threads}defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend bench
    bind 127.0.0.1:{listen}
    default_backend target
backend target
    server target 127.0.0.1:{target}
"""

PROXIES = ("tcpplay", "tcpplay-python", "portforward", "socat", "haproxy", "haproxy-1t")


# -- redis-benchmark -------------------------------------------------------------------------
def redis_benchmark(port: int, pipeline: int, n: int) -> dict[str, float]:
    out = subprocess.run(
        ["redis-benchmark", "-q", "-t", "set,get", "-n", str(n), "-c", "50", "-P", str(pipeline),
         "-p", str(port)],
        capture_output=True, text=True, timeout=300,
    ).stdout
    figures = {}
    for name, rps in re.findall(r"(SET|GET): ([\d.]+) requests per second", out.replace("\r", "\n")):
        figures[name] = float(rps)
    if len(figures) != 2:
        raise SystemExit(f"redis-benchmark output not understood:\n{out}")
    return figures


# -- bulk ------------------------------------------------------------------------------------
SINK_SCRIPT = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
rate = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
limit = float(sys.argv[2]) if len(sys.argv) > 2 else 600.0
while True:
    c, _ = s.accept()
    buf = bytearray(1 << 20); view = memoryview(buf); total = 0; start = time.monotonic()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16) if rate else None
    while time.monotonic() - start < limit:
        try:  # a reset ends this connection, not the sink (a short count fails the bulk row)
            if rate:
                n = c.recv_into(view[: int(rate / 10)])
                time.sleep(0.1)
            else:
                n = c.recv_into(view)
        except OSError:
            break
        if not n:
            break
        total += n
    c.close()
    print(total, flush=True)
"""


def start_sink(rate: float = 0.0, limit: float = 600.0) -> tuple[subprocess.Popen, int]:
    p = subprocess.Popen([sys.executable, "-c", SINK_SCRIPT, str(rate), str(limit)],
                         stdout=subprocess.PIPE, text=True)
    return p, int(p.stdout.readline())


def send_bulk(port: int, nbytes: int, deadline: float) -> None:
    chunk = memoryview(b"\xa5" * (1 << 20))
    with socket.create_connection(("127.0.0.1", port)) as c:
        sent = 0
        while sent < nbytes and time.monotonic() < deadline:
            c.sendall(chunk)
            sent += len(chunk)
        c.shutdown(socket.SHUT_WR)
        c.settimeout(max(1.0, deadline - time.monotonic()))
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass


def bulk(port: int, sink: subprocess.Popen, nbytes: int, proxy: Proc | None = None
         ) -> tuple[float, float]:
    """MB/s, and the proxy's CPU seconds per GiB."""
    cpu = proxy.cpu() if proxy else 0.0
    start = time.monotonic()
    send_bulk(port, nbytes, start + 300)
    received = 0
    while received == 0:  # zero-byte connections are the proxies' readiness probes
        received = int(sink.stdout.readline())
    seconds = time.monotonic() - start
    if received != nbytes:
        raise SystemExit(f"bulk: sink received {received} of {nbytes} bytes")
    used = proxy.cpu() - cpu if proxy else 0.0
    return nbytes / seconds / 1e6, used / (nbytes / (1 << 30))


# -- slow reader ---------------------------------------------------------------------------------
def slow_reader(kind: str, tmp: str, seconds: float) -> tuple[int, int]:
    sink, sink_port = start_sink(rate=1e6, limit=seconds)
    proxy, port = start_proxy(kind, sink_port, tmp)
    try:
        time.sleep(0.5)
        base = rss_kib(proxy.pid)
        peak = base
        stop = time.monotonic() + seconds
        t = threading.Thread(target=lambda: _ignore(send_bulk, port, 512 << 20, stop + 2), daemon=True)
        t.start()
        while time.monotonic() < stop:
            peak = max(peak, rss_kib(proxy.pid))
            time.sleep(0.1)
        peak = max(peak, rss_kib(proxy.pid))
    finally:
        proxy.stop()
        sink.kill()
        sink.wait()
    return base, peak - base


def _ignore(fn, *args):
    try:
        fn(*args)
    except OSError:
        pass


# -- idle pairs -------------------------------------------------------------------------------
def idle_pairs(kind: str, target: int, tmp: str, count: int) -> tuple[int, float]:
    proxy, port = start_proxy(kind, target, tmp)
    socks = []
    try:
        time.sleep(0.5)
        base = rss_kib(proxy.pid)
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port))
            socks.append(s)
        for s in socks[:: max(1, count // 50)]:  # each pair is connected end to end
            s.sendall(b"PING\r\n")
            s.settimeout(10)
            if not s.recv(64).startswith(b"+PONG"):
                raise SystemExit("idle: no PONG through the proxy")
        time.sleep(1.0)
        after = rss_kib(proxy.pid)
    finally:
        for s in socks:
            s.close()
        proxy.stop()
    return base, (after - base) / count


def pairs_cpu(kind: str, target: int, tmp: str, count: int) -> float:
    """The proxy's CPU per pair, in us: ``count`` connections one after the other, each a PING,
    its PONG, then the close (the proxy's close seen before the next one starts)."""
    proxy, port = start_proxy(kind, target, tmp)
    try:
        time.sleep(0.5)
        cpu = proxy.cpu()
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"PING\r\n")
                if not s.recv(64).startswith(b"+PONG"):
                    raise SystemExit(f"pairs: no PONG through {kind}")
                s.shutdown(socket.SHUT_WR)
                while s.recv(64):  # the proxy passes redis-server's close on
                    pass
        time.sleep(0.5)  # the last close's teardown
        return (proxy.cpu() - cpu) / count * 1e6
    finally:
        proxy.stop()


# -- copy or splice, in one process -------------------------------------------------------------
COPY_REQUEST = b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000042\r\n$3\r\nxxx\r\n" * 16
COPY_REPLY = b"+OK\r\n" * 16


def _loopback_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    for s in (a, b):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    b.setblocking(False)
    return a, b


def copy_or_splice(batches: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Per way ("splice", "copy"): per round, (this thread's CPU moving one batch both ways,
    the peers' recv of it), in us. 50 pairs: client -> (a, b) proxy (c, d) <- server."""
    flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
    pairs, routes, fds = [], {}, []
    ep = select.epoll()
    buf = memoryview(bytearray(1 << 16))
    for _ in range(50):
        client, a = _loopback_pair()
        server, d = _loopback_pair()
        d.setblocking(False)
        ab, dc = os.pipe2(os.O_NONBLOCK), os.pipe2(os.O_NONBLOCK)
        fds += [*ab, *dc]
        routes[a.fileno()] = (a, d, ab)
        routes[d.fileno()] = (d, a, dc)
        ep.register(a.fileno(), select.EPOLLIN)
        ep.register(d.fileno(), select.EPOLLIN)
        pairs.append((client, server, a, d))

    def by_splice(fd):
        src, dst, (r, w) = routes[fd]
        os.splice(r, dst.fileno(), os.splice(fd, w, 1 << 16, None, None, flags), None, None,
                  flags)

    def by_copy(fd):
        src, dst, _ = routes[fd]
        dst.send(buf[:src.recv_into(buf)])

    def moved(move) -> float:
        start, done = time.thread_time(), 0
        while done < len(pairs):
            for fd, _ in ep.poll(1):
                move(fd)
                done += 1
        return time.thread_time() - start

    def run(move, n):
        proxy = peers = 0.0
        for _ in range(n // len(pairs)):
            for client, *_ in pairs:
                client.send(COPY_REQUEST)
            proxy += moved(move)
            t = time.thread_time()
            for _, server, *_ in pairs:
                server.recv(1 << 16)
            peers += time.thread_time() - t
            for _, server, *_ in pairs:
                server.send(COPY_REPLY)
            proxy += moved(move)
            t = time.thread_time()
            for client, *_ in pairs:
                client.recv(1 << 16)
            peers += time.thread_time() - t
        done = n // len(pairs) * len(pairs)
        return proxy / done * 1e6, peers / done * 1e6

    try:
        ways = {"splice": by_splice, "copy": by_copy}
        for move in ways.values():
            run(move, 1000)  # warm-up
        out: dict[str, list[tuple[float, float]]] = {}
        for _ in range(rounds):
            for name, move in ways.items():
                out.setdefault(name, []).append(run(move, batches))
        return out
    finally:
        ep.close()
        for fd in fds:
            os.close(fd)
        for p in pairs:
            for s in p:
                s.close()


def measure_redis(kind, pipeline, n, rport, tmp, decoding) -> dict[str, float]:
    if kind == "direct":
        return redis_benchmark(rport, pipeline, n)
    extra = decoding.get(kind)
    base = kind.split("+")[0]
    # the console sink writes to a file, as it would when redirected
    with open(f"{tmp}/console.txt", "wb") as console:
        proxy, port = start_proxy(base, rport, tmp, extra, stdout=console)
        try:
            cpu = proxy.cpu()
            figures = redis_benchmark(port, pipeline, n)
            figures["cpu_us"] = (proxy.cpu() - cpu) / (2 * n) * 1e6  # per request
            return figures
        finally:
            proxy.stop()


# -- table -------------------------------------------------------------------------------------
class Table:
    def __init__(self):
        self.rows: list[tuple[str, str, str]] = []

    def add(self, what: str, figure: str, ratio: str = ""):
        self.rows.append((what, figure, ratio))
        print(f"  {what:<58} {figure:>18} {ratio}", flush=True)

    def show(self):
        print("\n" + "=" * 100)
        for what, figure, ratio in self.rows:
            print(f"{what:<60} {figure:>18}  {ratio}")


# Decoding rows: the share of the decoding-off rate they must reach. Decoding runs in the
# proxy's process, on the forwarding path: nothing is queued or dropped, every exchange is
# decoded and written (the rates are what full decoding costs).
DECODE_TARGETS = {  # sinks -> -P -> share
    "json": {1: 0.75, 16: 0.5},
    "console": {1: 0.75, 16: 0.35},
    "console+json": {1: 0.8, 16: 0.4},  # the default view with --json: what people run
}


def _mean(fig: dict[str, float]) -> float:
    return (fig["SET"] + fig["GET"]) / 2


def _ratio(value: float, ref: float, name: str, target: float | None = None) -> str:
    text = f"{value / ref:.2f}x {name}"
    if target is not None:
        text += f" (target >= {target:g}x: {'met' if value / ref >= target else 'NOT met'})"
    return text


def _ratios(value: float, refs: dict[str, float], names, target=(None, None)) -> str:
    """``value`` against each of ``names`` that ran; ``target``: (name,
    ratio) to say met or not against."""
    return "; ".join(_ratio(value, refs[k], k, target[1] if k == target[0] else None)
                     for k in names if k in refs)


def _per_round(rounds: dict, kind: str, ref: str) -> str:
    """``kind`` against ``ref`` round by round (the two ran minutes apart at most, on the same
    state of the machine, whose speed drifts by up to 2x between rounds here), and the median."""
    shares = [_mean(a) / _mean(b) for a, b in zip(rounds[kind], rounds[ref], strict=True)]
    return (f"per round {'/'.join(f'{x:.2f}' for x in shares)}x {ref}, median "
            f"{statistics.median(shares):.2f}x")


# The targets for the zero-copy splice (tcpplay --decode none), on the medians.
SPLICE_TARGETS = {("redis", 1): ("portforward", 1.5), ("redis", 16): ("haproxy", 1.0),
                  ("bulk", 0): ("haproxy", 1.0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    ap.add_argument("--only", default="redis,bulk,slow,idle")
    ap.add_argument("--decode", action="store_true", help="also tcpplay with RESP decoding on")
    ap.add_argument("--decode-process", action="store_true",
                    help="with --decode: also each decoding row with --decode-process (its CPU "
                         "per request counts the decoder process too)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds per redis and bulk setting; the median and the worst are shown")
    ap.add_argument("--pipelines", default="1,16",
                    help="the redis-benchmark -P values to run (comma separated)")
    ap.add_argument("--kinds", default=",".join(PROXIES),
                    help=f"the proxies to run (comma separated, of: {', '.join(PROXIES)})")
    ap.add_argument("--base", metavar="REV",
                    help="also tcpplay-base: the --decode none proxy of git revision REV")
    ap.add_argument("--requests", type=int, metavar="N",
                    help="redis-benchmark -n (default 100000 times -P; 20000 with --quick)")
    args = ap.parse_args(argv)
    parts = set(args.only.split(","))
    try:
        pipelines = [int(p) for p in args.pipelines.split(",")]
    except ValueError:
        ap.error(f"--pipelines {args.pipelines!r}: comma-separated numbers, say 1,16")
    if parts - {"redis", "bulk", "slow", "idle", "pairs", "copy"}:
        ap.error(f"--only {args.only!r}: of redis, bulk, slow, idle, pairs, copy")
    if "copy" in parts and len(parts) > 1:
        ap.error("--only copy runs alone (no proxy, no peers: this process)")
    if parts == {"copy"}:
        runs = copy_or_splice(4000 if args.quick else 40000, args.rounds)
        for name, figures in runs.items():
            proxy = [p for p, _ in figures]
            peers = [q for _, q in figures]
            print(f"{name:6} this thread's CPU per batch of 16 and its reply, median; worst: "
                  f"{statistics.median(proxy):.2f}; {max(proxy):.2f} us (the peers' recv "
                  f"{statistics.median(peers):.2f} us)")
        return 0
    proxies = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in proxies if k not in PROXIES]
    if unknown or not proxies:
        ap.error(f"--kinds {args.kinds!r}: of {', '.join(PROXIES)}")
    if args.decode and "tcpplay" not in proxies:
        ap.error("--decode compares with tcpplay: keep it in --kinds")
    if args.base:
        proxies.insert(proxies.index("tcpplay") + 1 if "tcpplay" in proxies else 0,
                       "tcpplay-base")

    missing = [t for t in ("redis-server", "redis-benchmark", "socat", "haproxy")
               if not shutil.which(t)]
    if missing:
        print(f"missing peers: {', '.join(missing)} (Debian: apt-get install redis-server "
              "redis-tools socat haproxy; or run 'make bench')", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    if args.requests is not None and args.requests < 1000:
        ap.error(f"--requests {args.requests}: at least 1000")

    def requests(pipeline: int) -> int:
        """redis-benchmark's -n at ``pipeline``: a test lasts about a second at any -P."""
        return args.requests or (20000 if args.quick else 100000 * max(1, pipeline))

    table = Table()
    tmp = tempfile.mkdtemp(prefix="tcpplay-bench-")
    if args.base:
        os.mkdir(f"{tmp}/base")
        export(args.base, f"{tmp}/base")
    rport = free_port()
    redis = Proc(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--maxclients", "10000"], rport, cwd=tmp)
    try:
        print(f"machine: {os.cpu_count()} cores; redis-benchmark -q -t set,get -c 50, "
              + ", ".join(f"-P {p} -n {requests(p)}" for p in pipelines) + "; "
              f"median and worst of {args.rounds} rounds")
        if "redis" in parts:
            kinds = ["direct", *proxies]
            decoding = []
            if args.decode:
                decoding = [
                    ("tcpplay+json", ["--decode", "resp", "--quiet", "--json", f"{tmp}/out.jsonl",
                                      "--decode-inline"]),
                    ("tcpplay+console", ["--decode", "resp", "--color", "never",
                                         "--decode-inline"]),
                    ("tcpplay+console+json", ["--decode", "resp", "--color", "never", "--json",
                                              f"{tmp}/both.jsonl", "--decode-inline"]),
                ]
                if args.decode_process:
                    decoding += [(kind + "/process", [*extra[:-1], "--decode-process"])
                                 for kind, extra in decoding]
            for pipeline in pipelines:
                # Several rounds, the kinds interleaved in each, and the median per kind: one
                # run of each is at the mercy of whatever else the two cores are doing.
                rounds: dict[str, list[dict[str, float]]] = {}
                for _ in range(args.rounds):
                    for kind in kinds + [d[0] for d in decoding]:
                        rounds.setdefault(kind, []).append(
                            measure_redis(kind, pipeline, requests(pipeline), rport, tmp,
                                          dict(decoding)))
                results = {kind: {name: statistics.median(r.get(name, 0.0) for r in runs)
                                  for name in ("SET", "GET", "cpu_us")}
                           for kind, runs in rounds.items()}
                worst = {kind: min(runs, key=_mean) for kind, runs in rounds.items()}
                means = {kind: _mean(fig) for kind, fig in results.items()}
                for kind, fig in results.items():
                    mean = means[kind]
                    if "+" in kind:
                        share = mean / means["tcpplay"]
                        sinks = kind.removeprefix("tcpplay+").removesuffix("/process")
                        target = DECODE_TARGETS[sinks][pipeline]
                        worst_share = _mean(worst[kind]) / _mean(worst["tcpplay"])
                        ratio = (f"{share:.2f}x decoding off (target >= {target:.2f}x: "
                                 f"{'met' if share >= target else 'NOT met'}); worst round "
                                 f"{worst_share:.2f}x the worst decoding-off round; "
                                 + _per_round(rounds, kind, "tcpplay"))
                    elif kind in ("tcpplay", "tcpplay-base"):
                        ratio = _ratios(mean, means, ("portforward", "haproxy", "haproxy-1t"),
                                        SPLICE_TARGETS["redis", pipeline])
                        ref = SPLICE_TARGETS["redis", pipeline][0]
                        if ref in rounds:
                            ratio += "; " + _per_round(rounds, kind, ref)
                    elif kind != "direct":
                        ratio = _ratios(mean, means, ("portforward", "haproxy"))
                    else:
                        ratio = _ratios(mean, means, ("portforward",))
                    w = worst[kind]
                    cpu = f"; {fig['cpu_us']:.2f} us" if kind != "direct" else ""
                    table.add(f"redis -P {pipeline} {kind} (SET/GET req/s median; worst; "
                              "proxy CPU/req)",
                              f"{fig['SET']:,.0f}/{fig['GET']:,.0f}; "
                              f"{w['SET']:,.0f}/{w['GET']:,.0f}{cpu}", ratio)
        if "bulk" in parts:
            size = (256 << 20) if args.quick else (1 << 30)
            sink, sport = start_sink()
            runs: dict[str, list[float]] = {}
            try:
                for _ in range(args.rounds):
                    runs.setdefault("direct", []).append(bulk(sport, sink, size))
                    for kind in proxies:
                        proxy, port = start_proxy(kind, sport, tmp)
                        try:
                            runs.setdefault(kind, []).append(bulk(port, sink, size, proxy))
                        except OSError as e:
                            raise SystemExit(f"bulk through {kind}: {e}")
                        finally:
                            proxy.stop()
            finally:
                sink.kill()
                sink.wait()
            speeds = {kind: statistics.median(mbs for mbs, _ in r) for kind, r in runs.items()}
            for kind, mbs in speeds.items():
                if kind in ("tcpplay", "tcpplay-base"):
                    ratio = _ratios(mbs, speeds, ("socat", "haproxy", "haproxy-1t"),
                                    SPLICE_TARGETS["bulk", 0])
                else:
                    ratio = _ratios(mbs, speeds, ("socat", "haproxy"))
                cpu = statistics.median(c for _, c in runs[kind])
                table.add(f"bulk {size >> 20} MiB {kind} (MB/s, median; worst; proxy CPU s/GiB)",
                          f"{mbs:,.0f}; {min(m for m, _ in runs[kind]):,.0f}"
                          + (f"; {cpu:.2f}" if kind != "direct" else ""), ratio)
        if "slow" in parts:
            seconds = 3.0 if args.quick else 10.0
            for kind in [k for k in proxies if k in ("tcpplay", "tcpplay-base", "tcpplay-python",
                                                     "portforward", "haproxy")]:
                base, growth = slow_reader(kind, tmp, seconds)
                table.add(f"slow reader 1 MB/s {seconds:g}s {kind} RSS growth",
                          f"{growth / 1024:.1f} MiB", f"(idle RSS {base / 1024:.1f} MiB; target < 16)")
        if "idle" in parts:
            count = 500 if args.quick else 2000
            for kind in [k for k in proxies if k in ("tcpplay", "tcpplay-base", "tcpplay-python",
                                                     "portforward", "haproxy")]:
                base, per_pair = idle_pairs(kind, rport, tmp, count)
                table.add(f"{count} idle pairs {kind} RSS per pair", f"{per_pair:.2f} KiB",
                          "(target <= 4 KiB)" if kind.startswith("tcpplay") else "")
        if "pairs" in parts:
            count = 500 if args.quick else 2000
            runs = {}
            for _ in range(args.rounds):
                for kind in proxies:
                    runs.setdefault(kind, []).append(pairs_cpu(kind, rport, tmp, count))
            for kind, us in runs.items():
                table.add(f"{count} pairs one after the other {kind} (proxy CPU per pair, "
                          "median; worst)", f"{statistics.median(us):,.0f}; {max(us):,.0f} us",
                          "(accept, connect, PING, close)")
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    table.show()
    print("tcpplay: --decode none (zero-copy splice(2)); tcpplay-python: --decode none "
          "--no-zero-copy; haproxy: mode tcp, default threads (haproxy-1t: nbthread 1)")
    if args.decode and "redis" in parts:
        print("decoding: in the proxy process, one reactor turn after the forwarding; its "
              "backlog is bounded (handed over at once past 4 MiB), nothing is dropped"
              + ("; .../process: in a child process (--decode-process), on another core"
                 if args.decode_process else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
