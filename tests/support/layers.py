"""The test layers (the markers pure, memory, real, twistd) and what each rules out: the guard, an
audit hook (PEP 578) that refuses a running test what its layer may not do."""

from __future__ import annotations

import os
import re
import threading

import pytest

# The layers, lowest first (registered in pyproject; README's "Tests" says what each means).
LAYERS = ("pure", "memory", "real", "twistd")

# What a layer's tests may not do: the audit events refused while one of them runs.
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


def fixture_above(layer: str, fixturenames) -> str | None:
    """The first fixture a test of ``layer`` uses that belongs to a higher layer."""
    for name in fixturenames:
        needed = FIXTURE_LAYERS.get(name)
        if needed and LAYERS.index(needed) > LAYERS.index(layer):
            return f"a {layer!r} test uses the {name} fixture, which is {needed!r}"
    return None


def starts_twistd(args) -> bool:
    """Whether a process's arguments run ``twistd``: directly, through a shell or an interpreter."""
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    return any(_TWISTD.search(os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a))
               for a in argv)


class LayerViolation(Exception):
    """A test did what its layer marker says it does not (raised into the code that tried)."""


class LayerGuard:
    """The audit hook holding the running test to its layer: pure and memory tests may not open
    sockets or start processes, real tests may not start twistd. Audit hooks cannot be removed,
    so one guard serves the whole run, idle between tests and on threads other than the tests'.
    What it refused is also kept, so a test that swallows the exception still fails."""

    def __init__(self):
        self.layer: str | None = None
        self.refused: frozenset[str] = frozenset()
        self.thread = threading.main_thread().ident
        self.violations: list[str] = []

    def begin(self, layer: str) -> None:
        self.layer, self.refused, self.violations = layer, REFUSED.get(layer, frozenset()), []

    def end(self) -> list[str]:
        """Stop guarding; what was refused since ``begin``."""
        violations = self.take()
        self.layer, self.refused = None, frozenset()
        return violations

    def take(self) -> list[str]:
        """What was refused so far (then forgotten)."""
        violations, self.violations = self.violations, []
        return violations

    def __call__(self, event: str, args: tuple) -> None:
        if self.layer is None or threading.get_ident() != self.thread:
            return
        if event in self.refused:
            what = f"uses a socket ({event})" if event in SOCKETS else f"starts a process ({event})"
        elif event == "subprocess.Popen" and self.layer == "real" and starts_twistd(args[1]):
            what = "starts twistd"
        else:
            return
        message = f"a {self.layer!r} test {what}: mark it with the layer it is in"
        self.violations.append(message)
        raise LayerViolation(message)


guard = LayerGuard()  # conftest installs it (sys.addaudithook) and tells it which test runs
