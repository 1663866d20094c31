"""``--slow-sink block`` on a pipe or terminal: blocking writes that SIGINT/SIGTERM interrupt.

A blocking ``write()`` to a pipe nobody reads never returns, and the reactor thread that made
it never runs again: neither the drain deadline nor a second signal (both reactor work) could
end the process. ``BlockWriter.write`` writes with ``os.write`` on the stdout fd (never through
``sys.stdout``'s buffer, whose unwritten bytes the interpreter would try to flush at exit) and,
for the time of the write only, wraps the Python SIGINT/SIGTERM handlers in place (Twisted's, or
``shutdown``'s during a drain): the wrapper calls the handler it wraps (so the stop or the abort
is scheduled as before) and then raises. A signal interrupts the blocked ``write()`` with
EINTR; the handler runs and raises, and PEP 475 lets the exception out instead of retrying
the call. ``write`` then raises ``Stopped`` with the count of bytes written, and the console
turns to dropping (see ``console``). A signal whose handler is not a Python function (default,
ignored) is left alone. Where stdout cannot be reopened non-blocking (a socket), the console
drops every later record through a ``Discard``.
"""

from __future__ import annotations

import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """A stop was asked for during a ``write``: ``written`` bytes of it went out, ``lines``
    lines of it were not written whole."""

    def __init__(self, written: int, lines: int):
        super().__init__(written, lines)
        self.written = written
        self.lines = lines


class _Interrupt(BaseException):
    """Raised by the wrapped signal handler, only inside ``BlockWriter.write``."""


class BlockWriter:
    """``write``/``flush``/``isatty`` over ``fd`` (blocking), interrupted by SIGINT/SIGTERM."""

    def __init__(self, fd: int):
        self.fd = fd
        self._tty = os.isatty(fd)
        self._writing = False

    def isatty(self) -> bool:
        return self._tty

    def flush(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        """Write all of ``data``; raise ``Stopped`` if a SIGINT/SIGTERM arrives meanwhile."""
        view = memoryview(data)
        done = 0
        if threading.current_thread() is not threading.main_thread():
            while done < len(view):  # signals are handled by the main thread only
                done += os.write(self.fd, view[done:])
            return
        previous = {}
        try:
            for sig in SIGNALS:
                handler = signal.getsignal(sig)
                if callable(handler):
                    previous[sig] = handler
                    signal.signal(sig, self._wrap(handler))
            self._writing = True
            while done < len(view):
                done += os.write(self.fd, view[done:])
            self._writing = False
        except _Interrupt:
            raise Stopped(done, view[done:].tobytes().count(b"\n")) from None
        finally:
            self._writing = False
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _wrap(self, handler):
        def interrupt(signum, frame):
            handler(signum, frame)
            if self._writing:  # once per write, and only inside its try
                self._writing = False
                raise _Interrupt

        return interrupt


class Discard:
    """What the console writes to once stopped when no ``DropWriter`` can be had: it drops and
    counts every record (the same ``full``/``drop``/``dropped``/``close`` as ``DropWriter``)."""

    dropped = 0

    def isatty(self) -> bool:
        return False

    def full(self) -> bool:
        return True

    def drop(self, records: int) -> None:
        self.dropped += records

    def write(self, data: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        return None
