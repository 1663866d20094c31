"""Fixtures: a real redis-server, twistd subprocesses, the log events of a test; the hypothesis
profiles. The helpers the tests share live in ``tests/support``."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from hypothesis import settings

from tests.support.processes import Twistd, start_redis, stop_process

# `make test` is repeatable: hypothesis draws the same examples on every run and has no
# per-example deadline (a loaded 2-core machine is slow, not wrong). To search further:
# HYPOTHESIS_PROFILE=explore make test
settings.register_profile("tcpplay", deadline=None, derandomize=True)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tcpplay"))


@pytest.fixture
def logged():
    """Every ``twisted.logger`` event emitted during the test (observer removed afterwards)."""
    from twisted.logger import globalLogPublisher

    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a free loopback port, shared by the session (tests FLUSHALL as needed)."""
    tmp = tempfile.mkdtemp(prefix="tcpplay-redis-")
    server = start_redis(tmp)
    yield server
    stop_process(server.proc)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def twistd():
    """Factory fixture: ``twistd(["echo", "--listen", str(port)])``; every process is stopped."""
    started: list[Twistd] = []

    def start(args, **kw) -> Twistd:
        t = Twistd([str(a) for a in args], **kw)
        started.append(t)
        return t

    yield start
    for t in started:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait(5)
