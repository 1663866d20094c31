"""``--slow-sink drop``: the console's stdout as a non-blocking writer that drops, never waits.

A pipe whose reader stops (``tcpplay proxy ... | less``, paused) or a slow terminal would block
a plain ``write()`` on the reactor thread, and with it every client's traffic. ``DropWriter``
writes to its own non-blocking file description of the same pipe or terminal (reopened through
``/proc/self/fd``, so the process's stdout and whoever shares it, twistd's log for one, keep
their blocking mode; where that cannot be done, a socket for one, ``DropWriter`` raises
``OSError`` and the console keeps its blocking writes). What the kernel does not take at once
waits in a buffer of at most ``limit`` bytes, written as the reactor reports the fd writable.
While that buffer is full, the sink drops whole batches of records instead of formatting them
(``full``/``drop``) and counts them; when the output has drained, one line says how many::

    ... 1234 records dropped (console could not keep up)

and at close the same for any not yet reported (waiting at most ``close_grace`` seconds for a
reader that never comes back).
"""

from __future__ import annotations

import errno
import os
import stat

from twisted.internet import defer
from twisted.logger import Logger

LIMIT = 256 * 1024  # bytes waiting for the reader, at most (about 2,000 console lines)
CLOSE_GRACE = 2.0


def is_regular_file(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


def notice(n: int) -> bytes:
    return b"... %d records dropped (console could not keep up)\n" % n


class DropWriter:
    """A file-like ``write``/``flush``/``isatty``/``close`` over ``fd`` that never blocks; also
    the reactor's write descriptor for it while bytes wait (see the module docstring)."""

    log = Logger()

    def __init__(self, fd: int, reactor, limit: int = LIMIT, close_grace: float = CLOSE_GRACE):
        self.reactor = reactor
        self.limit = limit
        self.close_grace = close_grace
        self._tty = os.isatty(fd)
        # our own open file description: O_NONBLOCK here leaves the shared stdout alone
        self.fd = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._pending = bytearray()
        self._writing = False
        self.dropped = 0  # records dropped in all
        self._unreported = 0
        self._closing: defer.Deferred | None = None
        self._grace_call = None
        self.failed = False

    # -- what the sink uses -----------------------------------------------------------------
    def isatty(self) -> bool:
        return self._tty

    def full(self) -> bool:
        return len(self._pending) >= self.limit or self.failed

    def drop(self, records: int) -> None:
        self.dropped += records
        self._unreported += records

    def write(self, data: bytes) -> None:
        if self.failed or self.fd < 0:
            return
        if not self._pending:
            data = data[self._write_now(data):]
        if data:
            self._pending += data
            self._start_writing()

    def flush(self) -> None:
        pass

    def close(self):
        """Report unreported drops, write what waits (``close_grace`` seconds at most), close.
        Returns a Deferred when bytes still wait, else None."""
        if self._unreported and not self.failed:
            self._queue_notice()
        if self._pending and not self.failed:
            self._closing = defer.Deferred()
            self._grace_call = self.reactor.callLater(self.close_grace, self._give_up)
            return self._closing
        self._close_fd()
        return None

    # -- IWriteDescriptor ---------------------------------------------------------------------
    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "console"

    def doWrite(self):
        n = self._write_now(bytes(self._pending[:1 << 20]))
        del self._pending[:n]
        if self.failed:
            self._stop_writing()
            self._done()
            return None
        if not self._pending:
            if self._unreported:
                self._queue_notice()  # drained: say what was lost
                return None
            self._stop_writing()
            self._done()
        return None

    def connectionLost(self, reason):
        self._stop_writing()

    # -- internals ------------------------------------------------------------------------------
    def _write_now(self, data) -> int:
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EINTR):
                return 0
            self.failed = True
            self.log.error("console: write failed, no more output: {error}", error=e)
            self._pending.clear()
            return len(data)

    def _queue_notice(self):
        self._pending += notice(self._unreported)
        self._unreported = 0
        self._start_writing()

    def _start_writing(self):
        if not self._writing and self.fd >= 0:
            self._writing = True
            self.reactor.addWriter(self)

    def _stop_writing(self):
        if self._writing:
            self._writing = False
            self.reactor.removeWriter(self)

    def _done(self):
        """Nothing waits any more: finish a close in progress."""
        if self._closing is not None:
            d, self._closing = self._closing, None
            if self._grace_call is not None and self._grace_call.active():
                self._grace_call.cancel()
            self._close_fd()
            d.callback(None)

    def _give_up(self):
        self._grace_call = None
        self.log.warn("console: {n} bytes not written at close (stdout not read)",
                      n=len(self._pending))
        self._pending.clear()
        self._stop_writing()
        self._done()

    def _close_fd(self):
        self._stop_writing()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
