"""Decoding cost without sockets: redis-benchmark-like traffic replayed through Chain + sinks.

    python bench/decode_replay.py [--pipeline 1 16] [--exchanges 200000]
                                  [--sink none json console both web bytes records] [--ring N]
                                  [--profile] [--out FILE] [--rounds N] [--short]

Synthesises what ``redis-benchmark -t set,get -c 50 -P N`` sends and receives (SET/GET of a
3-byte value; each chunk is one pipeline batch of one client), feeds it to ``chain.Chain`` as
the proxy would (a ``data`` call per chunk, both directions) and lets the sinks format and write
as the proxy's reactor would (on a virtual clock, ``--rate`` chunks per second, a turn every
``--turn`` chunks). Prints exchanges/s and the CPU time per exchange; ``--sink none`` measures
decoding alone; ``--sink web`` is the console sink plus the web view (``--web`` on, no browser:
its sink on the records and, as the pcap sink would be, on the byte path with redaction's
hold-back); ``--sink bytes`` is the console sink plus a consumer on the byte path that only keeps
every read (``KeptReads``: the least a view that stores what it saw can cost); ``--sink records``
is the console sink plus a record sink that keeps the chain's records as they come, unconverted,
in a ring of ``--ring`` records whose oldest are dropped as new ones come (``KeptRecords``: the
least a view that keeps exchanges can cost, once it is full); ``--profile`` prints the top of a
cProfile run. Each line also says how long one
full collection of the cyclic GC takes once the run is over, with what the sinks keep (the
start-up's objects frozen first, as ``twistd tcpplay`` does); with the view, how many
exchanges it keeps in how much of its ``--web-memory`` (64 MiB: ``--exchanges 600000`` fills
it at ``-P 1``, so the run includes its evictions). ``--rounds N`` runs every setting N times,
interleaved (the machine may be shared), and ends with the worst and the median of each and,
with ``console`` and ``web`` both asked, the view's cost: web minus console in each round.
``--short``: short connections instead (each opens, sends one ``SET``, gets ``+OK`` and closes;
``--exchanges`` of them, ``--pipeline`` ignored), the figures per connection. Not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import time
from collections import deque
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playground.decode import chain as C  # noqa: E402
from playground.proxy.observer import Endpoint, PairInfo  # noqa: E402
from playground.sinks.sharedbatch import shared  # noqa: E402

KEY = b"key:__rand_int__"
SET = b"*3\r\n$3\r\nSET\r\n$16\r\n" + KEY + b"\r\n$3\r\nxxx\r\n"
GET = b"*2\r\n$3\r\nGET\r\n$16\r\n" + KEY + b"\r\n"
OK = b"+OK\r\n"
VALUE = b"$3\r\nxxx\r\n"


class FakeReactor:
    """Just enough reactor for the buffered sinks: a virtual clock; due calls run at ``turn``."""

    def __init__(self):
        self.calls = []
        self.now = 1.7e9

    def callLater(self, delay, f, *a, **kw):
        call = _Call(self.now + delay, f, a, kw)
        self.calls.append(call)
        return call

    def seconds(self):
        return self.now

    def turn(self, final=False):
        if not self.calls:
            return
        due = [c for c in self.calls if final or c.when <= self.now]
        if not due:
            return
        self.calls = [c for c in self.calls if c not in due]
        for c in due:
            if c.live:
                c.live = False
                c.f(*c.a, **c.kw)


class _Call:
    def __init__(self, when, f, a, kw):
        self.when, self.f, self.a, self.kw = when, f, a, kw
        self.live = True

    def active(self):
        return self.live

    def cancel(self):
        self.live = False


class _Null:
    """A sink that takes records and drops them (the cost of decoding alone): it takes runs
    (``RedisExchanges``), as the console and JSON sinks do."""

    takes_runs = True

    def emit(self, record):
        pass

    def emit_many(self, records):
        pass

    def startService(self):
        pass

    def stopService(self):
        pass


def make_sinks(kind: str, reactor, out, ring: int = 4096):
    """The record sinks for ``kind``, and the byte consumer (the web view's sink) or None."""
    if kind == "none":
        return [_Null()], None
    sinks = []
    if kind in ("json", "both"):
        from playground.sinks.jsonlines import JsonSink

        sinks.append(JsonSink(out, max_value=200, reactor=reactor))
    if kind in ("console", "both", "web", "bytes", "records"):
        from playground.sinks.console import ConsoleSink

        sinks.append(ConsoleSink(open(out if kind != "both" else os.devnull, "ab"),
                                 color="never", max_value=200, reactor=reactor))
    for s in sinks:
        s.startService()
    view = None
    if kind == "web":
        from playground.web.sink import WebSink

        view = WebSink(max_value=200)  # as playground.proxy.decoding builds it
        sinks.append(view)
    elif kind == "bytes":
        view = KeptReads()
    elif kind == "records":
        sinks.append(KeptRecords(ring))
    return sinks, view


class KeptRecords:
    """``--sink records``: beside the console sink, a record sink that keeps the chain's
    records as they come (a pipelined run as one record, as the view takes them) in a ring of
    ``ring`` records, the oldest dropped unlooked at: no conversion, no count, no byte path.
    What a view that keeps exchanges costs at the least once it is full (its memory reused),
    the cyclic GC walking what it keeps included."""

    takes_runs = True

    def __init__(self, ring: int):
        self.records = deque(maxlen=ring)

    def emit(self, record):
        self.records.append(record)

    def emit_many(self, records):
        self.records.extend(records)

    def startService(self):
        pass

    def stopService(self):
        pass


class KeptReads:
    """``--sink bytes``: the console sink, and on the chain's byte path (where the web view is)
    a consumer that keeps every read it is handed and does nothing else: no record kept, no
    hold-back settled. What a view that stores what it saw, and decodes only when someone looks,
    would cost at the least: the bytes' retention alone."""

    settles_later = True  # as the web view: the chain hands every read at once

    def __init__(self):
        self.reads = []

    def settle_with(self, unsettled, max_held, max_held_all=None):
        pass

    def pair_opened(self, pair, now):
        pass

    def data(self, pair_id, direction, data, now):
        self.reads.append((pair_id, direction, data, now))

    def half_closed(self, pair_id, direction, now):
        pass

    def pair_closed(self, pair_id, summary, now):
        pass

    def mask(self, pair_id, direction, start, end):
        return 0

    def decoded(self, pair_id, protocol):
        pass

    def unstored(self, pair_id, direction):
        return None

    def unsettled_end(self, pair_id, direction, at, find):
        pass

    def flush(self):
        pass


def traffic(pipeline: int, exchanges: int, clients: int = 50):
    """(pair, direction, bytes) chunks in arrival order: each client sends a batch, the server
    answers it; clients interleave."""
    c2s_set, s2c_set = SET * pipeline, OK * pipeline
    c2s_get, s2c_get = GET * pipeline, VALUE * pipeline
    out = []
    batches = exchanges // pipeline
    half = batches // 2
    for b in range(batches):
        pid = 1 + b % clients
        if b < half:
            out.append((pid, "c2s", c2s_set))
            out.append((pid, "s2c", s2c_set))
        else:
            out.append((pid, "c2s", c2s_get))
            out.append((pid, "s2c", s2c_get))
    return out


def _pair(pid: int) -> PairInfo:
    return PairInfo(pid, Endpoint("127.0.0.1", 40000 + pid % 20000), Endpoint("127.0.0.1", 6479),
                    "tcp:host=127.0.0.1:port=6379", Endpoint("127.0.0.1", 6379))


SUMMARY = {"bytes_c2s": len(SET), "bytes_s2c": len(OK), "duration": 0.0002,
           "closed_by": "client", "how": "fin"}


def short_connections(chain, reactor, connections: int, turn: int, step: float) -> None:
    """Each connection opens, sends one SET, gets +OK and closes, one after the other."""
    for pid in range(1, connections + 1):
        reactor.now += step
        chain.pair_opened(_pair(pid), reactor.now)
        chain.data(pid, "c2s", SET, reactor.now)
        reactor.now += step
        chain.data(pid, "s2c", OK, reactor.now)
        chain.pair_closed(pid, SUMMARY, reactor.now)
        if pid % turn == 0:
            reactor.turn()


def run(pipeline: int, exchanges: int, sink: str, turn: int, out: str, profile: bool,
        rate: float = 20000.0, short: bool = False, ring: int = 4096) -> float:
    reactor = FakeReactor()
    sinks, view = make_sinks(sink, reactor, out, ring)
    chain = C.Chain(shared(sinks), pcap=view, decode="resp", max_value=200)  # as decoding.build
    clients = 0 if short else 50
    for pid in range(1, clients + 1):
        chain.pair_opened(_pair(pid), reactor.now)
    reactor.turn()
    chunks = [] if short else traffic(pipeline, exchanges, clients)
    gc.collect()
    gc.freeze()  # as playground.tap does at start: a full collection sees what came after
    prof = cProfile.Profile() if profile else None
    data = chain.data
    step = 1.0 / rate  # virtual seconds per chunk
    t0 = time.process_time()
    if prof:
        prof.enable()
    for i, (pid, direction, chunk) in enumerate(chunks):
        reactor.now += step
        data(pid, direction, chunk, reactor.now)
        if i % turn == turn - 1:
            reactor.turn()
    if short:
        short_connections(chain, reactor, exchanges, turn, step)
    reactor.turn(final=True)
    if view is not None:
        view.flush()  # what the view still queues is part of the run
    if prof:
        prof.disable()
    dt = time.process_time() - t0
    t1 = time.process_time()
    gc.collect()
    full_gc = time.process_time() - t1
    gc.unfreeze()
    for s in sinks:
        if s is not view:
            s.stopService()
    n = exchanges if short else len(chunks) // 2 * pipeline
    unit = "connection" if short else "exchange"
    label = "short" if short else f"-P {pipeline:<3}"
    print(f"{label} sink={sink:<8} {n / dt:>12,.0f} {unit}s/s "
          f"{dt / n * 1e6:6.2f} us/{unit}  ({n:,} {unit}s, {dt:.2f} s CPU; "
          f"then a full GC {full_gc * 1e3:.1f} ms)")
    ring = [s for s in sinks if isinstance(s, KeptRecords)]
    if ring:
        print(f"       kept the last {len(ring[0].records):,} records of a ring of "
              f"{ring[0].records.maxlen:,}")
    if isinstance(view, KeptReads):
        print(f"       kept {len(view.reads):,} reads, "
              f"{sum(len(r[2]) for r in view.reads) / 2**20:.1f} MiB")
    elif view is not None:
        cap = view.capture
        kept = sum(c.exchange_count - c.exchanges_evicted for c in cap.connections.values())
        print(f"       the view keeps {kept:,} exchanges in {cap.bytes / 2**20:.1f} of "
              f"{cap.max_bytes / 2**20:.0f} MiB (evicted: {cap.evicted_bytes / 2**20:.1f} MiB)")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return dt / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", type=int, nargs="*", default=[1, 16])
    ap.add_argument("--exchanges", type=int, default=200_000)
    ap.add_argument("--sink", nargs="*",
                    choices=("json", "console", "both", "none", "web", "bytes", "records"),
                    default=["json", "console"])
    ap.add_argument("--turn", type=int, default=2, help="chunks per reactor turn")
    ap.add_argument("--rate", type=float, default=20000.0, help="chunks per virtual second")
    ap.add_argument("--ring", type=int, default=4096,
                    help="--sink records: the records kept (4096 runs: 65,536 exchanges at -P 16)")
    ap.add_argument("--out", default=os.devnull)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every setting this many times, interleaved; then the worst")
    ap.add_argument("--short", action="store_true",
                    help="short connections: each opens, sends one SET and closes")
    args = ap.parse_args(argv)
    if args.short:
        args.pipeline = [1]
    times: dict[tuple[int, str], list[float]] = {}
    for _ in range(args.rounds):
        for p in args.pipeline:
            for s in args.sink:
                t = run(p, args.exchanges, s, args.turn, args.out, args.profile, args.rate,
                        args.short, args.ring)
                times.setdefault((p, s), []).append(t * 1e6)
    if args.rounds > 1:
        unit = "connection" if args.short else "exchange"
        print(f"worst (median) of {args.rounds} rounds, us per {unit}:")
        for p in args.pipeline:
            line = [f"{s} {max(times[p, s]):.2f} ({median(times[p, s]):.2f})" for s in args.sink]
            for view in ("web", "bytes", "records"):  # the view's cost (or a bound's), by round
                if view in args.sink and "console" in args.sink:
                    cost = [w - c for w, c in zip(times[p, view], times[p, "console"],
                                                  strict=True)]
                    line.append(f"{view} - console {max(cost):.2f} ({median(cost):.2f})")
            print(("short " if args.short else f"-P {p:<3} ") + ", ".join(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
