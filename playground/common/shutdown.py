"""Graceful stops that a second Ctrl-C (or SIGTERM) cuts short.

SIGINT or SIGTERM stops the reactor; its "before shutdown" phase runs the services' drains (the
proxy lets open pairs finish for ``--drain-timeout`` seconds, chat sees its clients out). A
drain registers how to end it at once with ``during_drain(abort)``. If the reactor is shutting
down, the first registration replaces the reactor's SIGINT/SIGTERM handlers (whose second
``reactor.stop()`` would only raise ``ReactorNotRunning`` tracebacks) with one that calls every
registered ``abort`` on the reactor thread. The process is ending, so the handlers stay: a
signal after the drains are over does nothing, quietly.

Idle connections are not cut on the first signal: no bytes moving does not mean nothing is
awaited (a BLPOP, a SUBSCRIBE, a long poll wait for the server); the drain timeout bounds the
wait and the second signal ends it.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
from collections.abc import Callable

from playground.common.defaultreactor import default_reactor
from playground.common.twistedprivate import reactor_stopped

_aborts: dict[int, Callable[[], None]] = {}
_ids = itertools.count()
_installed = False


def during_drain(abort: Callable[[], None], reactor=None) -> Callable[[], None]:
    """Call ``abort()`` on a second SIGINT/SIGTERM until the returned ``release()`` is called."""
    key = next(_ids)
    _aborts[key] = abort
    _install(default_reactor(reactor))
    return lambda: _aborts.pop(key, None)


def hint() -> str:
    """How to end the drains now, for the drain log line ('' when a signal would not)."""
    if not _installed:
        return ""
    return "; Ctrl-C again to stop now" if os.isatty(0) else "; SIGINT or SIGTERM again to stop now"


def _install(reactor) -> None:
    global _installed
    if _installed or not reactor_stopped(reactor):
        return  # a drain outside a shutdown (a test stopping a service) leaves signals alone
    if threading.current_thread() is not threading.main_thread():
        return

    def again(signum, frame):
        reactor.callFromThread(_abort_all)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, again)
    _installed = True


def ignore_signals() -> None:
    """From now on SIGINT and SIGTERM do nothing: the services are stopped, the process exits.

    Ignored rather than handled: when Python finalizes it puts its own handlers back to the
    default action, so a Ctrl-C landing in those last moments (a third one, say) would kill the
    process (status -2) instead of letting it exit 0; an ignored signal stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _abort_all() -> None:
    for abort in list(_aborts.values()):
        abort()
