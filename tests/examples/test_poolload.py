"""``run_load``, the command line's request loop: as many workers as there is work for, however
large ``--concurrency`` is. Pure: the Deferreds fire at once, no reactor."""

from __future__ import annotations

import tracemalloc

import pytest
from twisted.internet import defer

from playground.examples.pool.cli import run_load

pytestmark = pytest.mark.pure


def _run(requests: int, concurrency: int):
    sent = []

    def send(i):
        sent.append(i)
        return defer.succeed(None)

    d = defer.ensureDeferred(run_load(send, requests, concurrency))
    return sent, d


def test_every_request_is_sent_once():
    sent, d = _run(25, 4)
    assert sorted(sent) == list(range(25))
    assert len(d.result[1]) == 25


def test_a_concurrency_far_above_the_requests_costs_nothing():
    # -c 1000000 -n 10 started a million idle workers first: seconds of CPU, hundreds of MB
    tracemalloc.start()
    try:
        sent, d = _run(3, 200_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sent == [0, 1, 2] and len(d.result[1]) == 3
    assert peak < 2 * 1024 * 1024, peak
