"""The one "default reactor" fallback: a ``reactor=None`` argument means the global reactor.

Reactor and clock are injected (tests pass a ``MemoryReactorClock``); code that was given none
calls ``default_reactor(reactor)`` when it first needs one. The global reactor is imported only
then, never at import time, since importing it installs the default reactor.
"""

from __future__ import annotations


def default_reactor(reactor=None):
    """``reactor``, or the global reactor when it is ``None``."""
    if reactor is None:
        from twisted.internet import reactor
    return reactor
