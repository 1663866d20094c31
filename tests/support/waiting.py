"""Waiting without fixed sleeps: poll a condition from a test thread (``wait_until``) or from the
reactor (``until``), and run one turn of a ``MemoryReactorClock`` (``reactor_turn``)."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float = 15.0, what: str = "condition",
               interval: float = 0.02):
    """Poll ``predicate`` until it returns something true (returned); fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def until(predicate, what: str, timeout: float = 15.0):
    """``wait_until`` for code on the reactor thread (``yield until(...)`` in inlineCallbacks):
    polls ``predicate`` every 10 ms without blocking the reactor; fails at the deadline."""
    from twisted.internet import defer, reactor, task

    @defer.inlineCallbacks
    def poll():
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            yield task.deferLater(reactor, 0.01, lambda: None)

    return poll()


def reactor_turn(clock) -> int:
    """Run the calls of a ``MemoryReactorClock`` due now, but not those they schedule with
    ``callLater(0)`` (``advance(0)`` runs those too): one reactor turn. Returns how many ran."""
    due = [c for c in clock.calls if c.getTime() <= clock.seconds()]
    for c in due:
        if c in clock.calls:  # not cancelled by an earlier one
            clock.calls.remove(c)
            c.called = 1
            c.func(*c.args, **c.kw)
    return len(due)
