"""What the web view's pictures cost: decode_replay's traffic through the chain and the web sink,
with the latency histograms (``playground.web.latency``) and with a stand-in that counts nothing.

    python bench/web_latency.py [--pipeline 1 16] [--exchanges 100000] [--rounds 4]

Each round runs both, in alternating order; prints the CPU time per exchange of each, worst and
best of the rounds. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import decode_replay as replay  # noqa: E402

from playground.decode import chain as C  # noqa: E402
from playground.proxy.observer import Endpoint, PairInfo  # noqa: E402
from playground.web.capture import Capture  # noqa: E402
from playground.web.sink import WebSink  # noqa: E402


class NoLatency:
    """The sink's latency calls, counting nothing."""

    def __init__(self):
        self.before_read = []

    def redis(self, ts, commands, replies, latencies):
        pass

    def one(self, ts, command, reply, latency):
        pass

    def ones(self, stamps, commands, replies, latencies):
        pass

    def http(self, ts, method, status, latency):
        pass


def run(pipeline: int, exchanges: int, latency, clients: int = 50) -> float:
    """CPU seconds per exchange of the chain and the web sink over the replayed traffic."""
    reactor = replay.FakeReactor()
    web = WebSink(Capture(), latency=latency)
    chain = C.Chain([web], pcap=web, decode="resp", max_value=200)
    for pid in range(1, clients + 1):
        chain.pair_opened(PairInfo(pid, Endpoint("127.0.0.1", 40000 + pid),
                                   Endpoint("127.0.0.1", 6479), "tcp:host=127.0.0.1:port=6379",
                                   Endpoint("127.0.0.1", 6379)), reactor.now)
    chunks = replay.traffic(pipeline, exchanges, clients)
    data = chain.data
    t0 = time.process_time()
    for i, (pid, direction, chunk) in enumerate(chunks):
        reactor.now += 1 / 20000
        data(pid, direction, chunk, reactor.now)
        if i % 2:
            reactor.turn()
    reactor.turn(final=True)
    web.flush()  # what the sink still queues is part of the run
    return (time.process_time() - t0) / (len(chunks) // 2 * pipeline)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", type=int, nargs="*", default=[1, 16])
    ap.add_argument("--exchanges", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args(argv)
    for p in args.pipeline:
        off, on = [], []
        for r in range(args.rounds):
            pair = [(off, NoLatency), (on, lambda: None)]
            for times, make in pair if r % 2 else reversed(pair):
                times.append(run(p, args.exchanges, make()) * 1e6)
        print(f"-P {p:<3} web sink without the pictures {max(off):6.2f} us/exchange, with "
              f"{max(on):6.2f} (worst of {args.rounds}: {(max(on) / max(off) - 1) * 100:+.1f} %; "
              f"best {min(off):.2f} and {min(on):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
