"""Fixtures (a real redis-server, twistd subprocesses, the log events of a test), the hypothesis
profiles, and the hooks that keep the layer markers honest. The helpers the tests share live in
``tests/support``.

Every test carries one layer marker: ``pure``, ``memory``, ``real`` or ``twistd``. A test with none
stops the run at collection; a ``pure`` or ``memory`` test that opens a socket or starts a process,
or a ``real`` test that starts twistd, fails.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest
from hypothesis import settings

from tests.support.layers import LAYERS, fixture_above, guard, layer_of
from tests.support.net import release_ports
from tests.support.processes import Twistd, start_redis, stop_process

# `make test` is repeatable: hypothesis draws the same examples on every run and has no
# per-example deadline (a loaded 2-core machine is slow, not wrong). To search further:
# HYPOTHESIS_PROFILE=explore make test
settings.register_profile("tcpplay", deadline=None, derandomize=True)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tcpplay"))


# One audit hook for the run (they cannot be removed); idle until a test begins.
sys.addaudithook(guard)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """A test without a layer marker stops the run (before ``-m`` deselects anything), so a new
    test must say what it is and ``pytest -m pure`` keeps meaning what it says."""
    unmarked = [item.nodeid for item in items if layer_of(item) is None]
    if unmarked:
        listed = "\n  ".join(unmarked[:20]) + ("\n  ..." if len(unmarked) > 20 else "")
        raise pytest.UsageError(
            f"{len(unmarked)} test(s) carry no layer marker ({', '.join(LAYERS)}); add "
            f"'pytestmark = pytest.mark.<layer>' to the module or a decorator per test:\n  {listed}")


@pytest.fixture(autouse=True)
def _free_ports():
    """The ports ``free_port`` handed out stay held until the test is over (its processes, which
    a later fixture's teardown stops, are gone by then)."""
    yield
    release_ports()


@pytest.fixture(autouse=True)
def _layer_rules(request):
    """Holds each test, and the fixtures it sets up after this one, to its layer's rules (a
    violation in a fixture is an error of the test)."""
    layer = layer_of(request.node)
    wrong = fixture_above(layer, request.fixturenames)
    if wrong:
        pytest.fail(f"{wrong}: mark it with the layer it is in", pytrace=False)
    guard.begin(layer)
    try:
        yield
    finally:
        violations = guard.end()
    if violations:
        pytest.fail(violations[0], pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A violation fails the test, even when the code under test swallowed the exception."""
    try:
        return (yield)
    finally:
        violations = guard.take()
        if violations:
            pytest.fail(violations[0], pytrace=False)


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
