"""What a web view filter costs to read a whole capture: every row formatted (the scan before
``sink.peek``) against rows checked on their stored form, formatted only when they may match.

    .venv/bin/python bench/web_filter.py [--exchanges 200000] [--rounds 3]

In process, no proxy: the capture is built through the real ``WebSink`` (10 connections, half
of them unpipelined, half in pipelined runs of 16; ``SET`` -> ``+OK`` and ``EXISTS`` ->
``(integer) 1``, 1 ms each, no error), so none of ``cmd=GET``, ``errors=1``, ``slow=5``
matches and each reads every row. Each round scans the capture with each filter both ways
(``FilterScan.matches`` asked with ``MAX_SCAN_ROWS`` until it answers, per connection); prints
the rows read per second and the answers it took, worst of the rounds, and the ratio. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playground.codec import values as resp  # noqa: E402
from playground.decode import records as R  # noqa: E402
from playground.web.capture import Capture, Filter  # noqa: E402
from playground.web.filterscan import FilterScan  # noqa: E402
from playground.web.sink import WebSink  # noqa: E402
from playground.web.site import MAX_SCAN_ROWS  # noqa: E402

CONNECTIONS = 10
RUN = 16
FILTERS = ({"cmd": "GET"}, {"errors": "1"}, {"slow": "5"})
OK = resp.Simple(b"OK")


def build(exchanges: int) -> WebSink:
    """A sink whose capture holds ``exchanges`` exchanges over ``CONNECTIONS`` connections."""
    sink = WebSink(Capture(max_bytes=1 << 34))
    per = exchanges // CONNECTIONS
    for pair in range(1, CONNECTIONS + 1):
        sink.capture.opened(pair, 1.0, f"127.0.0.1:{50000 + pair}", "127.0.0.1:6479", "tcp:x",
                            "127.0.0.1:6379")
        sink.capture.detected(pair, "resp")
        pipelined = pair % 2 == 0
        for start in range(0, per, 512):  # a batch of the proxy's, then its flush
            commands = [(b"SET", b"key:%d" % i, b"value:%d" % i) if i % 2 else
                        (b"EXISTS", b"key:%d" % i) for i in range(start, min(start + 512, per))]
            replies = [OK if len(command) == 3 else 1 for command in commands]
            if pipelined:
                sink.emit_many([R.RedisExchanges(pair, 1.0, "c", commands[i:i + RUN],
                                                 replies[i:i + RUN],
                                                 [0.001] * len(commands[i:i + RUN]))
                                for i in range(0, len(commands), RUN)])
            else:
                sink.emit_many([R.RedisExchange(pair, 1.0, "c", command, reply, 0.001)
                                for command, reply in zip(commands, replies, strict=True)])
            sink.flush()
    return sink


def scan_all(sink: WebSink, scan: FilterScan, shown: Filter) -> tuple[float, int]:
    """Every connection scanned to its answer: ``(CPU seconds, answers)``."""
    capture = sink.capture
    asks = 0
    start = time.process_time()
    for c in capture.connections.values():
        summary = c.summary(2.0)
        while True:
            asks += 1
            matched, _ = scan.matches(shown, c, summary, MAX_SCAN_ROWS)
            if matched is not None:
                break
    return time.process_time() - start, asks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exchanges", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sink = build(args.exchanges)
    rows = sum(c.exchange_count for c in sink.capture.connections.values())
    print(f"{rows} exchanges in {CONNECTIONS} connections; worst of {args.rounds} rounds")
    for query in FILTERS:
        shown = Filter.parse(query)
        worst = {"formatting": (0.0, 0), "peeking": (0.0, 0)}
        for _ in range(args.rounds):
            for way, scan in (("formatting", FilterScan(sink.rows)),
                              ("peeking", FilterScan(sink.rows, sink.peek, sink.exchange_row))):
                worst[way] = max(worst[way], scan_all(sink, scan, shown))
        (before, asks_before), (after, asks_after) = worst["formatting"], worst["peeking"]
        name = "&".join(f"{k}={v}" for k, v in query.items())
        print(f"{name:9} formatting every row: {rows / before:12,.0f} rows/s "
              f"({asks_before} answers); peeking: {rows / after:12,.0f} rows/s "
              f"({asks_after} answers); {before / after:.1f}x")


if __name__ == "__main__":
    main()
