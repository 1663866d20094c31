"""The service that listens on an endpoint string, logs where, and fails start-up in one line.

``twistd`` runs ``privilegedStartService`` before dropping privileges and before the reactor
runs; a bind failure here ends start-up with ``SystemExit("tcpplay LABEL: cannot listen on --listen ...: reason")``
(one line, exit status 1) instead of a traceback. ``playground.tap`` calls it before twistd
forks a daemon, so the launcher reports the failure itself (the daemon then takes over a UNIX
socket's lock, which names the launcher). The "listening on" line is logged
once the reactor runs (after twistd's own start-up lines, with the signal handlers in place),
or when a late listen succeeds.
"""

from __future__ import annotations

import os

from twisted.application import service
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger
from twisted.python import usage

from playground.common.addresses import listen_parts, server_endpoint
from playground.common.addresstext import address_text
from playground.common.defaultreactor import default_reactor
from playground.common.twistedprivate import endpoint_args


class ListeningService(service.Service):
    log = Logger()

    def __init__(self, label: str, desc: str, factory, flag: str = "--listen", reactor=None):
        self.name = f"{label}@{desc}"
        self.label = label
        self.desc = desc
        self.factory = factory
        self.flag = flag
        self.reactor = reactor
        self.port = None
        self._waiting = None
        self._rebind = None  # where listen_again listens: the TCP address stop_listening closed

    def _reactor(self):
        self.reactor = default_reactor(self.reactor)
        return self.reactor

    def privilegedStartService(self):
        service.Service.privilegedStartService(self)
        self._listen()

    def startService(self):
        service.Service.startService(self)
        if self.port is None and self._waiting is None:
            self._listen()
        elif self.port is not None:
            self._own_lock()
            # Once the reactor runs: its SIGINT/SIGTERM handlers are in place by then, so a
            # signal sent on seeing the line (a script, a quick Ctrl-C) stops the service in
            # order rather than raising KeyboardInterrupt in start-up code (exit status -2).
            self._reactor().callWhenRunning(self._announce_if_listening)

    def _own_lock(self):
        """A UNIX socket's lock (``unix:...:lockfile=1``, the default) names the process that
        bound it: the launcher, when ``playground.tap`` binds before twistd forks the daemon.
        The daemon takes it over, or its stop, which removes only its own lock, would leave it
        naming a pid that a later start may have (a container's), refusing that start."""
        lock = getattr(self.port, "lockFile", None)  # twisted.internet.unix.Port's
        if lock is None or not lock.locked:
            return
        try:
            if os.readlink(lock.name) == str(os.getpid()):
                return
            os.unlink(lock.name)
        except OSError:
            return
        lock.lock()

    def _listen(self):
        try:
            endpoint = server_endpoint(self._reactor(), self.desc, self.flag)
        except usage.UsageError as e:
            raise SystemExit(f"tcpplay {self.label}: {e}")
        failures = []
        synchronous = True

        def failed(f):
            if synchronous:  # TCP/UNIX/SSL listen at once: start-up reports it, below
                failures.append(f)
            elif not f.check(defer.CancelledError):  # a late failure must not vanish
                self._waiting = None
                self.log.error("{message}", message=self._cannot_listen(f))
            return None

        d = endpoint.listen(self.factory)
        d.addCallbacks(self._listening, failed)
        synchronous = False
        if failures:
            # One line, exit status 1. No log event besides: under twistd, stderr is the log, so
            # logging it as well would print the same line twice.
            raise SystemExit(self._cannot_listen(failures[0]))
        if self.port is None:
            self._waiting = d

    def _cannot_listen(self, failure) -> str:
        why = self._why(failure)
        return f"tcpplay {self.label}: cannot listen on {self.flag} {self.desc}: {why}"

    def _why(self, failure) -> str:
        """The failure's message; for a UNIX socket whose directory is missing, that (Twisted's
        own says only that its lock's symlink could not be made, naming a pid)."""
        kind, _, _, path = listen_parts(self.desc)
        if kind == "unix" and path and failure.check(FileNotFoundError):
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                return f"no such directory: {directory}"
        return failure.getErrorMessage()

    def _listening(self, port):
        self.port = port
        self._waiting = None
        if self.running:
            self._announce()
        return port

    def _announce_if_listening(self):
        if self.running and self.port is not None:
            self._announce()

    def _announce(self):
        self.log.info("{label} listening on {address}", label=self.label,
                      address=address_text(self.port.getHost()))

    @property
    def address(self):
        return self.port.getHost() if self.port is not None else None

    def stop_listening(self):
        """Close the listening socket while the service runs (new clients are refused); the
        address it had is kept for ``listen_again``."""
        if self.port is None:
            return None
        host = self.port.getHost()
        if isinstance(host, (IPv4Address, IPv6Address)) and self._rebind is None:
            interface = host.host.replace(":", "\\:")  # the same port, even if it was 0
            self._rebind = f"tcp:{host.port}:interface={interface}"
        port, self.port = self.port, None
        return defer.maybeDeferred(port.stopListening)

    def listen_again(self):
        """Listen again after ``stop_listening``, on the same address (a late failure is
        logged, as at start-up)."""
        if self.port is not None or self._waiting is not None:
            return
        desc = self.desc
        if self._rebind is not None and endpoint_args(desc)[0][:1] == ["tcp"]:
            self.desc = self._rebind
        try:
            self._listen()
        except SystemExit as e:
            self.log.error("{message}", message=str(e))
        finally:
            self.desc = desc

    def stopService(self):
        service.Service.stopService(self)
        if self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None
        if self.port is not None:
            port, self.port = self.port, None
            d = defer.maybeDeferred(port.stopListening)
            d.addCallback(lambda _: self.log.info("{label} stopped listening", label=self.label))
            # said (an unhandled failure of the stop is lost at shutdown); the stop goes on
            d.addErrback(lambda f: self.log.failure("{label}: closing {desc} failed", f,
                                                    label=self.label, desc=self.desc))
            return d
        return None
