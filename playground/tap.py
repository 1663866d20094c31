"""``twistd tcpplay``: the top-level options with one subcommand per service, and makeService.

Each subcommand lives in its own module exposing ``Options`` (a ``usage.Options``) and
``make_service(options, reactor=None)``; modules are imported only when their subcommand is used.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

from twisted.application import service
from twisted.internet import defer
from twisted.python import usage

from playground.options import CommandOptions

# (name, module, one-line description)
SUBCOMMANDS = [
    ("demo", "playground.demo", "The demo: decoding proxy in front of the RESP server and HTTP responder"),
    ("proxy", "playground.proxy", "Forwarding proxy that shows the traffic: --listen 6479 --target 6379"),
    ("echo", "playground.echo", "Echo server: every byte comes back (half-close aware)"),
    ("chat", "playground.chat", "Chat-line server for telnet/nc: nicks, rooms, private messages"),
    ("resp", "playground.respserver", "Small in-memory Redis-protocol (RESP2/RESP3) server"),
    ("http", "playground.httpserver", "HTTP/1.1 responder, httpbin-style endpoints"),
    ("serve", "playground.serve", "Run the services described in a TOML config file"),
]


def _lazy_options(module_name: str):
    def build():
        return importlib.import_module(module_name).Options()

    return build


class Options(CommandOptions):
    synopsis = "<subcommand> [options]"
    longdesc = (
        "A TCP protocol playground. Run 'twistd -n tcpplay <subcommand> --help' for the options "
        "of each subcommand."
    )
    subCommands = [[name, None, _lazy_options(mod), desc] for name, mod, desc in SUBCOMMANDS]

    def getSynopsis(self) -> str:
        full = super().getSynopsis()
        if getattr(self, "subCommand", None):  # "twistd [options] tcpplay echo [options]"
            return full.replace(" " + self.synopsis, "")
        return full

    def _no_pidfile_in_foreground(self):
        """With ``twistd -n`` and no ``--pidfile``, write no pidfile.

        twistd writes ``twistd.pid`` in the working directory even in the foreground, so a
        second server started in the same directory (echo in one terminal, the proxy in the
        next) would refuse to start. Daemons (no ``-n``) and an explicit ``--pidfile`` are
        left alone.
        """
        parent = getattr(self, "parent", None)
        if parent is None or not parent.get("nodaemon"):
            return
        explicit = any(a == "--pidfile" or a.startswith("--pidfile=") for a in sys.argv[1:])
        if not explicit and parent.get("pidfile") == "twistd.pid":
            parent["pidfile"] = ""

    def parseOptions(self, options=None):
        """Under twistd, a usage error is one line and a hint, not the whole help.

        twistd's own handler prints the full help (some 80 lines) before the error. Here the
        error goes to stderr with a pointer to ``--help``, exit status 1 as twistd's. Parsed on
        its own (tests, config files), the UsageError is raised as usual.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if getattr(self, "parent", None) is None:
                raise
            command = " ".join(filter(None, ["twistd tcpplay", getattr(self, "subCommand", None)]))
            sys.stderr.write(f"{command}: {e}\nRun '{command} --help' for the options.\n")
            sys.exit(1)

    def postOptions(self):
        self._no_pidfile_in_foreground()
        if self.subCommand is None:
            raise usage.UsageError(
                "choose a subcommand: " + ", ".join(name for name, _, _ in SUBCOMMANDS)
            )


class TcpplayService(service.MultiService):
    """The root service. A SIGTERM/SIGINT ends in a graceful drain, so the process exits 0.

    twistd re-raises the signal that stopped the reactor after shutdown (exit status -15);
    since our services drain and close everything on that signal, the shutdown is an orderly
    one and is reported as such (status 0), like ``systemctl stop`` expects.
    """

    _privileged = False

    def privilegedStartService(self):
        if self._privileged:  # already done by start_before_daemonizing
            return
        self._privileged = True
        super().privilegedStartService()

    def stopService(self):
        d = defer.maybeDeferred(super().stopService)

        def orderly(result):
            from twisted.internet import reactor

            if getattr(reactor, "_exitSignal", None) in (signal.SIGTERM, signal.SIGINT):
                reactor._exitSignal = None
            return result

        return d.addBoth(orderly)


def makeService(options) -> service.IService:
    modules = {name: mod for name, mod, _ in SUBCOMMANDS}
    module = importlib.import_module(modules[options.subCommand])
    top = TcpplayService()
    svc = module.make_service(options.subOptions)
    if "stats-interval" in options.subOptions:  # --metrics / --stats-interval of ServerOptions
        from playground import metrics

        svc = metrics.attach(svc, options.subOptions, options.subCommand)
    svc.setServiceParent(top)
    start_before_daemonizing(top, getattr(options, "parent", None))
    return top


def start_before_daemonizing(top: TcpplayService, config) -> None:
    """Bind the listeners now, in the launching process, before twistd forks the daemon.

    twistd binds in ``privilegedStartService`` after it has forked and written the pid file;
    a bind failure there (a ``SystemExit``, see ``playground.listening``) is not reported to the
    launcher waiting on the status pipe, which then waits forever, and the pid file stays. Done
    here, a busy port ends the launcher itself: the one-line reason on its stderr, exit status 1,
    no pid file yet, as in the foreground. The sockets are inherited by the daemon; its log
    starts with the ports' own "starting on" lines, then twistd's.

    Daemon mode only (``twistd -n`` has no status pipe to hang on), and left to twistd when
    ``--chroot`` or ``--rundir`` is given (paths in endpoint strings are meant relative to
    those). The umask twistd sets for a daemon (``--umask``, else 0077) applies to what is
    created now (unix sockets).
    """
    if config is None or config.get("nodaemon", True):
        return  # the foreground reports a bind failure as it is (twistd's own start-up lines first)
    if config.get("chroot") is not None or config.get("rundir", ".") != ".":
        return
    umask = config.get("umask")
    if umask is None:
        umask = 0o077
    old = os.umask(umask)
    try:
        top.privilegedStartService()
    finally:
        os.umask(old)
