"""What redaction costs the text and hex views: the decoder chain fed 64 KiB reads of random
binary data and of Redis-like text lines, with ``--decode hex`` and ``--decode text``, redaction
on and off (``--no-redact``), sinks that drop the records.

Run: ``.venv/bin/python bench/view_redaction.py`` (``--rounds N``). Prints MB/s per case, the
worst of the rounds; not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playground.decode.chain import Chain  # noqa: E402
from playground.proxy.observer import Endpoint, PairInfo  # noqa: E402

READ = 64 * 1024
SIZE = 32 * READ
PAIR = PairInfo(1, Endpoint("127.0.0.1", 50000), Endpoint("127.0.0.1", 6479), "6379",
                Endpoint("127.0.0.1", 6379))


class _Drop:
    def emit(self, record):
        pass


def _data() -> dict:
    lines = b"".join(b"SET key:%06d value-%06d\r\nGET key:%06d\r\n" % (i, i, i)
                     for i in range(SIZE // 40))
    return {"binary": os.urandom(SIZE), "text lines": lines[:SIZE]}


def _run(decode: str, redact: bool, data: bytes) -> float:
    chain = Chain([_Drop()], decode=decode, redact=redact)
    chain.pair_opened(PAIR, 0.0)
    t0 = time.perf_counter()
    for i in range(0, len(data), READ):
        chain.data(1, "c2s", data[i:i + READ], 0.0)
    chain.pair_closed(1, {}, 0.0)
    return len(data) / (time.perf_counter() - t0) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    blobs = _data()
    for decode in ("hex", "text"):  # warm up: imports, compiled patterns
        _run(decode, True, blobs["text lines"][:READ])
    for decode in ("hex", "text"):
        for name, blob in blobs.items():
            for redact in (False, True):
                worst = min(_run(decode, redact, blob) for _ in range(args.rounds))
                label = f"--decode {decode}, {name}, {'redact' if redact else '--no-redact'}"
                print(f"{label:<46} {worst:>9.0f} MB/s (worst of {args.rounds})")


if __name__ == "__main__":
    main()
