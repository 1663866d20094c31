"""Fixtures (a real redis-server, twistd subprocesses, the log events of a test), the hypothesis
profiles, and the hooks that keep the layer markers honest. The helpers the tests share live in
``tests/support``.

Every test carries one layer marker: ``pure``, ``memory``, ``real`` or ``twistd``. A test with none
stops the run at collection; a ``pure`` or ``memory`` test that opens a socket or starts a process,
or a ``real`` test that starts twistd, fails.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading

import pytest
from hypothesis import settings

from tests.support.processes import Twistd, start_redis, stop_process

# `make test` is repeatable: hypothesis draws the same examples on every run and has no
# per-example deadline (a loaded 2-core machine is slow, not wrong). To search further:
# HYPOTHESIS_PROFILE=explore make test
settings.register_profile("tcpplay", deadline=None, derandomize=True)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tcpplay"))


# The layers, lowest first (registered in pyproject; README's "Tests" says what each means).
LAYERS = ("pure", "memory", "real", "twistd")

# What a layer's tests may not do: the audit events (PEP 578) refused while one of them runs.
SOCKETS = frozenset({"socket.__new__", "socket.bind", "socket.connect", "socket.getaddrinfo"})
PROCESSES = frozenset({"subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.fork",
                       "os.forkpty", "pty.spawn"})
REFUSED = {"pure": SOCKETS | PROCESSES, "memory": SOCKETS | PROCESSES}

# Fixtures that put a test in a layer at least this high.
FIXTURE_LAYERS = {"redis_server": "real", "twistd": "twistd"}

_TWISTD = re.compile(r"(?:^|[\s/])twistd(?:\s|$)")


def layer_of(item: pytest.Item) -> str | None:
    """The highest layer marker a test carries (None: it carries none)."""
    found = [name for name in LAYERS if item.get_closest_marker(name) is not None]
    return found[-1] if found else None


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


class LayerViolation(Exception):
    """A test did what its layer marker says it does not (raised into the code that tried)."""


class _LayerGuard:
    """The audit hook holding the running test to its layer: pure and memory tests may not open
    sockets or start processes, real tests may not start twistd. Audit hooks cannot be removed,
    so there is one for the whole run, idle between tests and on threads other than the tests'."""

    def __init__(self):
        self.layer: str | None = None
        self.refused: frozenset[str] = frozenset()
        self.thread = threading.main_thread().ident
        self.violations: list[str] = []

    def __call__(self, event: str, args: tuple) -> None:
        if self.layer is None or threading.get_ident() != self.thread:
            return
        if event in self.refused:
            what = f"uses a socket ({event})" if event in SOCKETS else f"starts a process ({event})"
        elif event == "subprocess.Popen" and self.layer == "real" and _starts_twistd(args[1]):
            what = "starts twistd"
        else:
            return
        message = f"a {self.layer!r} test {what}: mark it with the layer it is in"
        self.violations.append(message)
        raise LayerViolation(message)


def _starts_twistd(args) -> bool:
    """``twistd ...`` run directly, through a shell or through an interpreter."""
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    return any(_TWISTD.search(os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a))
               for a in argv)


_guard = _LayerGuard()
sys.addaudithook(_guard)


@pytest.fixture(autouse=True)
def _layer_rules(request):
    """Holds each test, and the fixtures it sets up after this one, to its layer's rules; a
    violation fails the test even when the code under test swallows the exception."""
    layer = layer_of(request.node)
    for name in request.fixturenames:
        needed = FIXTURE_LAYERS.get(name)
        if needed and LAYERS.index(needed) > LAYERS.index(layer):
            pytest.fail(f"a {layer!r} test uses the {name} fixture, which is {needed!r}: "
                        "mark it with the layer it is in", pytrace=False)
    _guard.layer, _guard.refused, _guard.violations = layer, REFUSED.get(layer, frozenset()), []
    try:
        yield
    finally:
        violations = _guard.violations
        _guard.layer, _guard.refused, _guard.violations = None, frozenset(), []
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
