"""``--decode-process``: decoding and its sinks in a child process, on another core.

The proxy's Python work per request is mostly decoding and the sinks' formatting, one reactor
turn after the forwarding (``playground.proxy.splice``). ``DecoderProcess`` moves that work to a
child (``playground.proxy.decoderworker``), as Wireshark leaves capture to ``dumpcap``: the
proxy process forwards and ships each pair's events down a pipe; the child decodes them and
writes the console view, ``--json`` and ``--pcap``, exactly as the proxy would. Forwarding then
costs what it costs undecoded plus a marshalled batch a turn, and decoding runs beside it.

It is the factory's observer (``playground.proxy.observer``): what the factory hands over a turn
is queued as messages (``playground.proxy.decoderwire``) and written as one batch, on the next
turn or once ``SEND_AT`` bytes are queued. Backpressure: it is the pipe's producer; when the
pipe's buffer fills (the child is behind) it says ``blocked`` and the factories stop handing it
bytes (``ProxyFactory.flush_observer``), their own bounded queue waiting and pausing the pairs
that fill it, until the pipe drains and it wakes them (``attached``). Nothing is dropped. A pipe
that stays full for ``STALL_SAID_AFTER`` seconds (the child stopped, or far behind) is said once
in the log, as the reason clients are paused, and so is its end.

Start and stop: a service, started with the sinks, before the listener. Stopped after the drain
and the factory's last hand-over: the pipe is closed, the child hands everything to its sinks,
stops them and exits; the stop waits for that, up to ``STOP_TIMEOUT`` seconds, then kills it
(at once on a second SIGINT/SIGTERM: ``playground.common.shutdown``).
Meanwhile it sends the child SIGTERM every ``POKE_EVERY`` seconds: a console write blocked on a
pipe nobody reads (``--slow-sink block``) ends with it, and the console drops from then on, as
in the proxy's own process.
The child's log events arrive as JSON lines on its file descriptor 3 and are logged here, as
this process's own. A child that exits while the proxy runs (its decoder raised, or it was
killed) is logged; the factories detach it and forward on without decoding.

``--web`` on TCP or UNIX: the socket is bound here (``privilegedStartService``, before twistd
drops privileges or forks a daemon), not read here, and handed to the child as its file
descriptor 4; the child serves the view, and its close buttons come back as commands on file
descriptor 3 (``command``). The socket stays this process's: closed here (a UNIX socket's file
and lock removed) once the child has exited.
"""

from __future__ import annotations

import json
import os
import sys

from twisted.application import service
from twisted.internet import defer, error, protocol, task
from twisted.logger import Logger, eventFromJSON, globalLogPublisher
from twisted.python import failure

from playground.common import shutdown
from playground.common.listening import ListeningService
from playground.proxy import decoderwire

# the decoding options the child builds its sinks from (checked and normalised here)
OPTIONS = ("decode", "json", "pcap", "color", "only", "skip", "http-filter", "lifecycle",
           "max-value", "max-frame", "slow-sink", "no-redact", "quiet", "verbose", "target",
           "listen", "web", "web-token", "web-connections", "web-memory")
SEND_AT = 256 * 1024  # queued bytes that are written at once, not after SEND_DELAY
# Seconds a batch gathers before it is written: the child is woken at most this often (on two
# cores a wake-up a turn costs the peers more than the batch saves), the views lag this much.
SEND_DELAY = 0.005
STOP_TIMEOUT = 30.0
POKE_EVERY = 0.5  # seconds between the SIGTERMs that end a child's blocked console write
# Seconds the pipe stays full (the child takes nothing: stopped, or far behind) before the log
# says why clients are paused; a busy child fills it for moments all the time.
STALL_SAID_AFTER = 5.0
# The child's first statements, before any import: out of the proxy's process group (a
# terminal's Ctrl-C is for the proxy, which drains and then ends the pipe), deaf to SIGINT and
# SIGTERM (a service manager's goes to both; the proxy's drain decides; the child's own handler,
# set once it runs, only ends a blocked console write), and to SIGUSR1 (a log rotation's, sent
# to a whole service by `systemctl kill -s USR1`: the child's log is the proxy's, and the
# signal's default action would end it) and SIGHUP (the proxy's says it reloads nothing),
# allowed to write to the terminal.
BOOT = ("import os, signal; os.setpgrp(); "
        "[signal.signal(s, signal.SIG_IGN) for s in "
        "(signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP, signal.SIGTTOU)]; "
        "from playground.proxy.decoderworker import main; raise SystemExit(main())")
WEB_FD = 4  # the child's file descriptor of the web view's listening socket (--web)
MAX_LOG_LINE = 1024 * 1024  # a longer log line from the child is dropped (it never writes one)


class DecoderProcess(service.Service):
    """See the module docstring. ``options``: the proxy's checked options."""

    name = "decoder-process"
    takes_at_once = True  # its calls only queue: the factory tells it in the forwarding turn
    log = Logger()

    def __init__(self, options, reactor=None, python: str = sys.executable):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.python = python
        # the keys given (a counted flag such as -v is there only when given: None is no count)
        self.options = {key: options[key] for key in OPTIONS if key in options}
        self.blocked = False  # the pipe is full: factories hand nothing over until woken
        self._blocked_since = 0.0  # when it last filled (the reactor's clock)
        self._stall_check = None  # the call that says a long stall (_check_stall)
        self._stall_said = False
        self.factories: list = []
        self.exited: defer.Deferred | None = None
        self._child = None
        self._batch: list = []
        self._batch_bytes = 0
        self._send_call = None
        self._stopping = False
        self._gone = False
        self._poked = False  # the stop's wait said in the log (at its first poke)
        self._killed = False  # by the stop (its timeout, or asked again): the log said so
        # --web: bound here (a busy port fails the start, as --listen does), served by the child
        self.web_listening = None
        if self.options.get("web"):
            self.web_listening = ListeningService("web", self.options["web"], _Unserved(),
                                                  flag="--web", reactor=reactor)

    # -- the factories ---------------------------------------------------------------------
    def attached(self, factory) -> None:
        """A factory hands its pairs' events here: it is woken and detached through it."""
        self.factories.append(factory)

    # -- the observer (playground.proxy.observer) ------------------------------------------
    def pair_opened(self, pair, now: float) -> None:
        self._add(decoderwire.pair_message(pair, now), 128)

    def data(self, pair_id: int, direction: str, data: bytes, now: float) -> None:
        self._add((decoderwire.DATA, pair_id, direction, data, now), len(data) + 32)

    def half_closed(self, pair_id: int, direction: str, now: float) -> None:
        self._add((decoderwire.HALF_CLOSED, pair_id, direction, now), 32)

    def pair_closed(self, pair_id: int, summary: dict, now: float) -> None:
        self._add((decoderwire.CLOSED, pair_id, dict(summary), now), 256)

    def _add(self, message: tuple, size: int) -> None:
        if self._gone:
            return
        self._batch.append(message)
        self._batch_bytes += size
        if self._batch_bytes >= SEND_AT:
            self._send()
        elif self._send_call is None:
            self._send_call = self.reactor.callLater(SEND_DELAY, self._send)

    def _send(self) -> None:
        call, self._send_call = self._send_call, None
        if call is not None and call.active():
            call.cancel()
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if batch and self._child is not None and not self._gone:
            self._child.transport.write(decoderwire.encode_batch(batch))

    # -- the pipe's producer ----------------------------------------------------------------
    def pauseProducing(self) -> None:
        self.blocked = True
        self._blocked_since = self.reactor.seconds()
        if self._stall_check is None:
            self._stall_check = self.reactor.callLater(STALL_SAID_AFTER, self._check_stall)

    def resumeProducing(self) -> None:
        self._unblocked()
        for factory in self.factories:
            factory.wake_observer()

    def stopProducing(self) -> None:
        self._unblocked()
        self._cancel_stall_check()

    def _check_stall(self) -> None:
        """Say once that the pipe has stayed full for STALL_SAID_AFTER seconds (one pending
        call at most, whatever the pipe does meanwhile: no call made and cancelled per fill)."""
        self._stall_check = None
        if not self.blocked or self._stall_said:
            return
        waited = self.reactor.seconds() - self._blocked_since
        if waited < STALL_SAID_AFTER:
            self._stall_check = self.reactor.callLater(STALL_SAID_AFTER - waited,
                                                       self._check_stall)
            return
        self._stall_said = True
        self.log.warn("decoder process has taken nothing for {seconds:g}s (stopped, or slower "
                      "than the traffic): clients that send more than the proxy holds for it "
                      "are paused until it takes bytes again", seconds=round(waited, 1))

    def _unblocked(self) -> None:
        """The pipe drained. The pending check, if any, stays: it finds the pipe not full, or
        full since a later fill, and waits out the rest from there (``_check_stall``)."""
        self.blocked = False
        if self._stall_said:
            self._stall_said = False
            self.log.info("decoder process takes bytes again after {seconds:g}s",
                          seconds=round(self.reactor.seconds() - self._blocked_since, 1))

    def _cancel_stall_check(self) -> None:
        call, self._stall_check = self._stall_check, None
        if call is not None and call.active():
            call.cancel()

    # -- the service ------------------------------------------------------------------------
    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        if self.web_listening is not None:
            self.web_listening.privilegedStartService()

    def startService(self) -> None:
        super().startService()
        self.exited = defer.Deferred()
        self._child = _Child(self)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # this tree's modules
        fds = {0: "w", 1: 1, 2: 2, 3: "r"}
        options = self.options
        if self.web_listening is not None:
            self.web_listening.startService()  # listens, if privilegedStartService did not
            port = self.web_listening.port
            port.stopReading()  # the child accepts: this process only holds the socket
            fds[WEB_FD] = port.fileno()
            options = dict(options, **{"web-fd": WEB_FD,
                                       "web-family": port.socket.family.name})
        # in the environment, not argv: a web view's token is no other user's to read
        env[decoderwire.OPTIONS_ENV] = json.dumps(options)
        try:
            self.reactor.spawnProcess(
                self._child, self.python,
                # -P: the working directory's files are not modules (a json.py there is no json)
                [self.python, "-P", "-c", BOOT], env=env, childFDs=fds)
        except OSError as e:  # the interpreter cannot be run (twistd's --uid may not read it)
            self._ended(failure.Failure(e), "cannot start")
            return
        self._child.transport.registerProducer(self, True)
        self.log.info("decoding in a child process (pid {pid})", pid=self._child.transport.pid)

    def stopService(self):
        super().stopService()
        self._stopping = True
        if self._child is None or self._gone:
            return self.exited
        self._send()
        self._cancel_stall_check()  # the stop's own wait is said (_poke)
        transport = self._child.transport
        transport.unregisterProducer()  # a pipe with a producer is not closed (ITransport)
        transport.closeStdin()
        call = self.reactor.callLater(STOP_TIMEOUT, self._kill)
        # a console write the child is blocked in (--slow-sink block, nobody reads) ends with a
        # signal, and the child may block again before it reads the pipe's end: poked until done
        poke = task.LoopingCall(self._poke)
        poke.clock = self.reactor
        poke.start(POKE_EVERY, now=False)
        release = shutdown.during_drain(self._stop_now, self.reactor)  # a second Ctrl-C
        d = self.exited

        def stopped(result):
            release()
            if call.active():
                call.cancel()
            poke.stop()
            return result

        d.addBoth(stopped)
        return d

    def _stop_web(self):
        """The web view's socket closed here (its last copy once the child has exited; a UNIX
        socket's file and lock removed): a Deferred that fires when done, or None."""
        if self.web_listening is not None and self.web_listening.running:
            return self.web_listening.stopService()
        return None

    def command(self, event: dict) -> None:
        """What the child asks of the proxy (``decoderwire.COMMAND_NAMESPACE``): the web
        view's close buttons, ``close`` (``pair``, ``how``: fin or rst, ``by``)."""
        if event.get("command") != "close" or event.get("how") not in ("fin", "rst"):
            return
        try:
            pair = int(event["pair"])
        except (KeyError, TypeError, ValueError):
            return
        for factory in self.factories:
            factory.close_pair(pair, event["how"], by=str(event.get("by") or "web view"))

    def _signal(self, name: str) -> None:
        if self._child is not None and not self._gone:
            try:
                self._child.transport.signalProcess(name)
            except error.ProcessExitedAlready:
                pass

    def _poke(self) -> None:
        if not self._poked:
            self._poked = True
            self.log.info("decoder process still writing: waiting up to {timeout:g}s{hint}",
                          timeout=STOP_TIMEOUT, hint=shutdown.hint())
        self._signal("TERM")

    def _kill(self, why: str = "did not finish within {timeout:g}s") -> None:
        self.log.warn("decoder process " + why + ": killed; records it had not written yet are "
                      "lost", timeout=STOP_TIMEOUT)
        self._killed = True
        self._signal("KILL")

    def _stop_now(self) -> None:
        self._kill("stopped now (asked again)")

    def _ended(self, reason, what: str = "exited") -> None:
        """The child exited (or ``what`` else: it cannot start): expected at the stop; otherwise
        decoding ends, forwarding goes on.
        The web view's socket is closed first (refused from then on, rather than left waiting
        in the backlog): the log says so, and the stop ends, once it is."""
        self._gone = True
        self.stopProducing()
        self._batch, self._batch_bytes = [], 0
        stopping = self._stopping
        if not stopping:
            for factory in self.factories:
                factory.detach_observer()
        exited, self.exited = self.exited, None

        def web_closed(_):
            if not stopping:
                self.log.error("decoder process " + what + " ({reason}); the proxy forwards "
                               "on without decoding{web}", reason=reason.getErrorMessage(),
                               web=" (and the web view is gone)" if self.web_listening else "")
            elif reason.check(error.ProcessTerminated) and not self._killed:  # said when killed
                self.log.warn("decoder process: {reason}", reason=reason.getErrorMessage())
            if exited is not None:
                exited.callback(None)

        defer.maybeDeferred(self._stop_web).addBoth(web_closed)


class _Child(protocol.ProcessProtocol):
    """The child's pipes: its log lines (fd 3) logged here, its exit told to ``owner``."""

    def __init__(self, owner: DecoderProcess):
        self.owner = owner
        self._log = b""

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD != 3:
            return
        lines = (self._log + data).split(b"\x1e")
        self._log = lines.pop()  # an unfinished record (or b"")
        if self._log.endswith(b"\n"):
            lines.append(self._log)
            self._log = b""
        elif len(self._log) > MAX_LOG_LINE:
            self._log = b""
        for line in lines:
            if line.strip():
                self._relay(line)

    def _relay(self, line: bytes) -> None:
        try:
            event = eventFromJSON(line.decode("utf-8", "replace"))
        except ValueError:
            return
        if event.get("log_namespace") == decoderwire.COMMAND_NAMESPACE:
            self.owner.command(event)
            return
        globalLogPublisher(event)

    def processEnded(self, reason) -> None:
        self.owner._ended(reason)


class _Unserved(protocol.Factory):
    """The factory of the web view's socket in the proxy, which never accepts on it."""

    noisy = False

    def logPrefix(self) -> str:
        """What the socket's "starting on" log line names."""
        return "web view (served by the decoder process)"

    def buildProtocol(self, addr):
        return None
