"""Throughput of the RESP parser (and the conversation decoder) on redis-benchmark-like traffic.

Run: ``.venv/bin/python bench/resp_parse.py``. Prints frames/s and MB/s; not a test.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playground.codec.parser import RespParser  # noqa: E402

SET = b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000001\r\n$3\r\nxxx\r\n"
GET = b"*2\r\n$3\r\nGET\r\n$16\r\nkey:000000000001\r\n"
OK = b"+OK\r\n"
VALUE = b"$3\r\nxxx\r\n"


def _report(label: str, frames: int, nbytes: int, seconds: float) -> None:
    print(
        f"{label:<52} {frames / seconds:>12,.0f} frames/s {nbytes / seconds / 1e6:>9.1f} MB/s"
        f"  ({frames:,} frames, {seconds:.2f} s)"
    )


def bench_parser(
    label: str, frame: bytes, batch: int, batches: int, sized=False, use_hiredis=True
) -> None:
    """``batches`` feeds, each of ``batch`` pipelined frames (redis-benchmark -P batch)."""
    chunk = frame * batch
    parser = RespParser(use_hiredis=use_hiredis)
    feed = parser.feed_sized if sized else parser.feed
    count = 0
    t0 = time.perf_counter()
    for _ in range(batches):
        count += len(feed(chunk))
    dt = time.perf_counter() - t0
    assert count == batch * batches, count
    _report(label, count, len(chunk) * batches, dt)


def bench_stream(label: str, frame: bytes, total: int, chunk_size: int, use_hiredis=True) -> None:
    """Many frames as one stream cut into fixed-size chunks (frames split across feeds)."""
    data = frame * total
    parser = RespParser(use_hiredis=use_hiredis)
    count = 0
    t0 = time.perf_counter()
    for i in range(0, len(data), chunk_size):
        count += len(parser.feed(data[i : i + chunk_size]))
    dt = time.perf_counter() - t0
    assert count == total, count
    _report(label, count, len(data), dt)


def bench_big_bulk(size: int, chunk_size: int) -> None:
    payload = b"x" * size
    data = b"$%d\r\n" % size + payload + b"\r\n"
    parser = RespParser()
    out = []
    t0 = time.perf_counter()
    for i in range(0, len(data), chunk_size):
        out += parser.feed(data[i : i + chunk_size])
    dt = time.perf_counter() - t0
    assert len(out) == 1 and out[0] == payload
    _report(f"one {size // 2**20} MB bulk in {chunk_size // 1024} KiB chunks", 1, len(data), dt)


def bench_hiredis(label: str, frame: bytes, batch: int, batches: int) -> None:
    import hiredis

    chunk = frame * batch
    reader = hiredis.Reader()
    count = 0
    t0 = time.perf_counter()
    for _ in range(batches):
        reader.feed(chunk)
        while (v := reader.gets()) is not False:
            count += 1
    dt = time.perf_counter() - t0
    assert count == batch * batches, (count, v)
    _report(label, count, len(chunk) * batches, dt)


def main() -> None:
    print("RespParser")
    bench_parser("SET commands, -P 16 batches", SET, 16, 20_000)
    bench_parser("SET commands, -P 16 batches, feed_sized", SET, 16, 20_000, sized=True)
    bench_parser("SET commands, -P 16 batches, pure Python", SET, 16, 20_000, use_hiredis=False)
    bench_parser("SET commands, -P 1000 batches", SET, 1000, 300)
    bench_parser("+OK replies, -P 16 batches", OK, 16, 30_000)
    bench_parser("+OK replies, -P 1000 batches", OK, 1000, 500)
    bench_parser("$3 bulk replies (GET), -P 16 batches", VALUE, 16, 30_000)
    bench_stream("SET commands as a stream in 1460-byte segments", SET, 300_000, 1460)
    bench_stream("  same, pure Python", SET, 300_000, 1460, use_hiredis=False)
    bench_stream("SET commands as a stream in 7-byte chunks", SET, 20_000, 7)
    bench_big_bulk(100 * 2**20, 64 * 1024)
    print("hiredis.Reader (reference; no frame sizes, +OK and $3 look the same)")
    bench_hiredis("SET commands, -P 16 batches", SET, 16, 20_000)
    bench_hiredis("+OK replies, -P 16 batches", OK, 16, 30_000)
    _decoder_bench()


def _decoder_bench() -> None:
    try:
        from playground.decode.respdecoder import RespConversation
    except ImportError:
        return
    print("RespConversation (pairing, SET/GET -P 16)")
    batch = 16
    c2s = (SET + GET) * (batch // 2)
    s2c = (OK + VALUE) * (batch // 2)
    conv = RespConversation()
    batches = 10_000
    count = 0
    now = 0.0
    t0 = time.perf_counter()
    for _ in range(batches):
        now += 0.001
        count += len(conv.feed("c2s", c2s, now))
        count += len(conv.feed("s2c", s2c, now + 0.0005))
    dt = time.perf_counter() - t0
    assert count == batch * batches, count
    _report("exchanges (command + reply paired)", count, (len(c2s) + len(s2c)) * batches, dt)


if __name__ == "__main__":
    main()
