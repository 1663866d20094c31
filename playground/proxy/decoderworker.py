"""The decoder process of ``--decode-process``: the decoder chain and its sinks, fed by a pipe.

``main()`` is what the proxy's child runs (``playground.proxy.decoderprocess`` spawns it, out of
the proxy's process group, its options as JSON in ``decoderwire.OPTIONS_ENV``): it builds the
sinks and the observer the decoding options ask for (``playground.proxy.decoding.build``, as
the proxy would in its own process), starts them, and reads the observer's messages
(``playground.proxy.decoderwire``) from its standard input, handing each to the observer. Its standard output is the proxy's (the console view writes there);
its log events go as JSON lines to file descriptor 3, which the proxy logs as its own. With
``--web`` it serves the web view on the listening socket the proxy bound and handed over (file
descriptor 4); the view's close buttons reach the proxy through file descriptor 3
(``ProxyCloser``).

Like the proxy's own hand-over (``ProxyFactory.flush_observer``), work the chain keeps for later
(``held``/``work()``) is done a slice per reactor turn, and the pipe is not read meanwhile: the
proxy's queue, bounded, waits, and pauses the pairs that fill it. SIGINT and SIGTERM do not end
it (a signal only ends a console write that blocks, as in the proxy): it ends when the pipe does, at the proxy's shutdown
(after the drain, so every pair's records are written) or when the proxy dies; then it hands all
it has to the sinks, stops them (they flush and close their files) and exits 0. A sink that
cannot start (its file gone unwritable since the proxy checked it), an observer that raises, or
a pipe that carries garbage, is logged and ends it with status 1: the proxy then forwards on
without decoding.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from twisted.application import service
from twisted.internet import defer, protocol, stdio
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    PredicateResult,
    globalLogBeginner,
    jsonFileLogObserver,
)

from playground.proxy import decoderwire

LOG_FD = 3  # where the log events go, one JSON object a line
# what the proxy is asked to do (not logged there): a module's Logger, its namespace as given
_COMMANDS = Logger(namespace=decoderwire.COMMAND_NAMESPACE)


class ProxyCloser:
    """The web view's proxy, in the child (``WebService.proxies``): a close button's
    ``close_pair`` goes to the proxy as a command (``decoderwire.COMMAND_NAMESPACE``), which
    closes the pair if it is still open; the answer is what this view knows: whether it has the
    pair open (the close then arrives through the pipe, as any close does)."""

    def __init__(self, capture):
        self.capture = capture

    def close_pair(self, pair_id: int, how: str, by: str) -> bool:
        from playground.web.capture import CLOSED

        self.capture.sync()
        c = self.capture.connections.get(pair_id)
        if c is None or c.state == CLOSED:
            return False
        _COMMANDS.info("close pair {pair} ({how})", command="close", pair=pair_id, how=how, by=by)
        return True


class WorkerProtocol(protocol.Protocol):
    """Reads batches from the pipe and hands their messages to ``observer``."""

    log = Logger()

    def __init__(self, observer, services: service.MultiService, reactor, done: defer.Deferred):
        self.observer = observer
        self.services = services
        self.reactor = reactor
        self.done = done
        self.reader = decoderwire.BatchReader()
        self.status = 0
        self._working = False

    def dataReceived(self, data: bytes) -> None:
        if self.status:
            return
        try:
            for message in self.reader.feed(data):
                decoderwire.deliver(self.observer, message)
        except Exception:
            self._failed()
            return
        if getattr(self.observer, "held", False) and not self._working:
            self._working = True
            self.transport.pauseProducing()
            self.reactor.callLater(0, self._work)

    def _work(self) -> None:
        """One slice of the observer's held work a turn; the pipe read again when none is left."""
        try:
            more = self.observer.work()
        except Exception:
            self._failed()
            return
        if more:
            self.reactor.callLater(0, self._work)
            return
        self._working = False
        self.transport.resumeProducing()

    def _failed(self) -> None:
        """The decoder raised (logged with the exception being handled): it stops here, and the
        proxy, seeing this process end, forwards on without it."""
        self.log.failure("decoder process: the decoder raised; it stops, the proxy forwards on")
        self.status = 1
        self.transport.loseConnection()

    def connectionLost(self, reason=None) -> None:
        """The pipe ended (the proxy stopped or died): everything to the sinks, then the reactor
        stops, the sinks with it (as twistd stops them: they flush, and a console never waits
        for a reader once the reactor is stopping)."""
        if not self.status:
            try:
                if self.reader.buffered:
                    self.log.warn("decoder process: {n} bytes of an unfinished batch dropped",
                                  n=self.reader.buffered)
                while getattr(self.observer, "held", False) and self.observer.work():
                    pass
            except Exception:
                self.log.failure("decoder process: the decoder raised while finishing")
                self.status = 1
        self.done.callback(self.status)


def run(options: dict, reactor=None) -> int:
    """Build, start and feed the observer from standard input until it ends: the exit status."""
    if reactor is None:
        from twisted.internet import reactor
    from playground.proxy import decoding

    services = service.MultiService()
    built, observer = decoding.build(options, reactor)
    for s in built:
        s.setServiceParent(services)
        if hasattr(s, "proxies"):  # the web view: its close buttons ask the proxy
            s.proxies.append(ProxyCloser(s.capture))
    try:
        services.startService()
    except Exception as e:  # a sink that cannot open its file: said in the proxy's log
        WorkerProtocol.log.error("decoder process: its sinks cannot start ({error}); the proxy "
                                 "forwards on without decoding", error=e)
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", services.stopService)
    done: defer.Deferred = defer.Deferred()
    status = []
    done.addCallback(status.append)
    done.addCallback(lambda _: reactor.stop())
    quiet = os.open(os.devnull, os.O_WRONLY)  # StandardIO's writer is not the console's stdout
    stdio.StandardIO(WorkerProtocol(observer, services, reactor, done), stdin=0, stdout=quiet,
                     reactor=reactor)
    reactor.run(installSignalHandlers=False)
    return status[0] if status else 1


def _asked_to_stop(signum, frame) -> None:
    """SIGINT/SIGTERM: nothing, but a Python handler (the proxy's BOOT ignores them until this
    one is set): the console's ``--slow-sink block`` writer wraps it while a write blocks, so a
    signal ends a write nobody reads (``playground.sinks.blockwriter``). The proxy sends SIGTERM
    while it waits for this process to exit."""


def failures_as_text(observer):
    """``observer``, given events whose failure (``log.failure``) is text in the message: JSON
    keeps a failure's traceback but not its exception's value (``{'unpersistable': True}``),
    so the proxy's log would say a decoder raised without saying what."""

    def observe(event: dict) -> None:
        failure = event.get("log_failure")
        if failure is not None:
            event = dict(event, log_format=(event.get("log_format") or "") + "\n{traceback}",
                         traceback=failure.getTraceback())
            del event["log_failure"]
        observer(event)

    return observe


def main(argv: list[str] | None = None) -> int:
    """``argv``: ``[OPTIONS_JSON]``; none given: the options are in ``decoderwire.OPTIONS_ENV``."""
    argv = sys.argv[1:] if argv is None else argv
    for sig in (signal.SIGINT, signal.SIGTERM):  # the proxy says when: its pipe ends
        signal.signal(sig, _asked_to_stop)
    log_file = open(LOG_FD, "w", encoding="utf-8", closefd=True)  # noqa: SIM115 (the process's)
    # the proxy's log says its own reactor's start and stop: this one's would be said twice
    own_reactor = lambda event: (PredicateResult.no if event.get("log_namespace")  # noqa: E731
                                 == "twisted.internet.base" else PredicateResult.maybe)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(failures_as_text(jsonFileLogObserver(log_file)), [own_reactor])],
        redirectStandardIO=False)
    options = json.loads(argv[0] if argv else os.environ.pop(decoderwire.OPTIONS_ENV))
    status = run(options)
    # ignored from here: Python's shutdown puts a signal with a Python handler back to its
    # default action, and the proxy's stop still pokes (SIGTERM) until this process has exited
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    return status


if __name__ == "__main__":
    sys.exit(main())
