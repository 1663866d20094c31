"""``twistd tcpplay``: the top-level options with one subcommand per service, and makeService.

Each subcommand lives in its own module exposing ``Options`` (a ``usage.Options``) and
``make_service(options, reactor=None)``; modules are imported only when their subcommand is used.
"""

from __future__ import annotations

import gc
import importlib
import os
import re
import signal
import stat
import sys

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage

from playground.common import shutdown, twistedprivate
from playground.common.options import CommandOptions, check_writable, did_you_mean

# (name, module, one-line description)
SUBCOMMANDS = [
    ("demo", "playground.examples.demo", "The demo: decoding proxy in front of the RESP server and HTTP responder"),
    ("proxy", "playground.proxy.service", "Forwarding proxy that shows the traffic: --listen 6479 --target 6379"),
    ("echo", "playground.examples.echo", "Echo server: every byte comes back (half-close aware)"),
    ("chat", "playground.examples.chat.server", "Chat-line server for telnet/nc: nicks, rooms, private messages"),
    ("resp", "playground.examples.resp.server", "Small in-memory Redis-protocol (RESP2/RESP3) server"),
    ("http", "playground.examples.http.server", "HTTP/1.1 responder, httpbin-style endpoints"),
    ("toxiproxy", "playground.faults.toxiproxy", "toxiproxy's HTTP API, no proxies at start: --api 8474"),
    ("serve", "playground.daemon.serve", "Run the services described in a TOML config file"),
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
            sys.stderr.write(f"{command}: {e}{self._did_you_mean(str(e))}\n"
                             f"Run '{command} --help' for the options.\n")
            sys.exit(1)

    def _did_you_mean(self, error):
        """`` (did you mean --target?)`` for a mistyped option or subcommand, else ``""``.

        getopt names the unknown option (``option --targte not recognized``) and twistd's
        parser the unknown subcommand (``Unknown command: prxy``); the closest known name, if
        one is close (``did_you_mean``), is offered.
        """
        match = re.fullmatch(r"option (--[^\s=]+) not recognized", error)
        if match:
            parser = getattr(self, "subOptions", None) or self
            known = ["--" + name.rstrip("=") for name in parser.longOpt]
        else:
            match = re.fullmatch(r"Unknown command: (\S+)", error)
            known = [name for name, _, _ in SUBCOMMANDS] if match else []
        return did_you_mean(match.group(1), known) if match else ""

    def _log_where_it_can_go(self):
        """Keep twistd's text log off a stdout that a sink owns, and off ``LogFile`` for a
        ``--logfile`` that is no regular file.

        * ``--json -`` (proxy, demo, or a ``serve`` config) writes JSON lines to stdout; twistd
          in the foreground logs to stdout too, so ``... | jq .`` would choke on the log lines.
          With no ``--logfile`` (or ``--logfile=-``), the log goes to stderr instead.
        * ``--logfile=/dev/stderr`` (a pipe, a terminal, a FIFO): twistd's ``LogFile`` seeks to
          the end and rotates by renaming, which such a file cannot do (``Illegal seek``
          traceback). It is opened for appending instead, with no rotation.

        Both go through twistd's ``--logger`` hook (a factory of the log observer), unless one
        is given, or ``--syslog``; the log format stays twistd's.
        """
        global _append_log_to
        parent = getattr(self, "parent", None)
        if parent is None or parent.get("logger") or parent.get("syslog"):
            return
        logfile = parent.get("logfile") or ""
        if logfile not in ("", "-"):
            if _special_file(logfile):
                _append_log_to = logfile
                parent["logger"] = f"{__name__}.append_log_observer"  # twistd imports it
            else:
                check_writable("--logfile", logfile)
        elif parent.get("nodaemon") and _owns_stdout(self):
            parent["logger"] = f"{__name__}.stderr_log_observer"

    def _no_stdout_in_a_daemon(self):
        """``--json -`` in daemon mode would write to /dev/null: say so instead."""
        parent = getattr(self, "parent", None)
        if parent is None or parent.get("nodaemon", True) or not _owns_stdout(self):
            return
        why = "a daemon has no stdout; give a file, or run in the foreground (twistd -n)"
        config = getattr(self.subOptions, "config", None)
        if config is None:
            raise usage.UsageError(f"--json -: {why}")
        spec = next(spec for spec in config.services if spec.options.get("json") == "-")
        where = f"{config.path}:{spec.line}:" if spec.line else f"{config.path}:"
        raise usage.UsageError(f"{where} [{spec.kind}.{spec.name}] json: {why}")

    def _pidfile_can_be_written(self):
        """A ``--pidfile`` twistd cannot write is a usage error, not a traceback after start-up
        (after the fork in daemon mode). twistd makes the path absolute from the directory it
        was started in."""
        parent = getattr(self, "parent", None)
        if parent is None or not parent.get("pidfile") or parent.get("chroot") is not None:
            return
        check_writable("--pidfile", parent["pidfile"])

    def _log_file_of_the_uid(self):
        """With ``--uid`` (twistd started as root), twistd opens ``--logfile`` as root, then runs
        as that user, who cannot rename a root's file: twistd's ``LogFile`` then rotates nothing,
        by size or on SIGUSR1, in silence, and the log grows without bound. The file is made
        now and given to the user (its directory must let the user rename in it too)."""
        parent = getattr(self, "parent", None)
        if (parent is None or parent.get("uid") is None or parent.get("syslog")
                or os.geteuid() != 0):
            return
        logfile = parent.get("logfile") or ""
        if logfile in ("", "-") or _special_file(logfile):
            return
        uid = parent["uid"]
        gid = parent.get("gid")
        if gid is None:  # as twistd: the user's own group
            import pwd

            gid = pwd.getpwuid(uid).pw_gid
        try:
            open(logfile, "ab").close()
            os.chown(logfile, uid, gid)
        except OSError as e:
            raise usage.UsageError(f"--logfile: cannot give {logfile} to --uid {uid}: "
                                   f"{e.strerror}")

    def _rundir_can_be_entered(self):
        """A ``--rundir`` twistd cannot change to is a usage error, not a traceback (in daemon
        mode a silent exit status 1, the traceback in the log)."""
        parent = getattr(self, "parent", None)
        if parent is None or parent.get("chroot") is not None:
            return
        rundir = parent.get("rundir") or "."
        if not (os.path.isdir(rundir) and os.access(rundir, os.X_OK)):
            reason = "not a directory" if os.path.exists(rundir) else "no such directory"
            raise usage.UsageError(f"--rundir: cannot change to {rundir}: {reason}")

    def postOptions(self):
        self._rundir_can_be_entered()
        self._no_stdout_in_a_daemon()
        self._log_where_it_can_go()
        self._log_file_of_the_uid()
        self._no_pidfile_in_foreground()
        self._pidfile_can_be_written()
        if self.subCommand is None:
            raise usage.UsageError(
                "choose a subcommand: " + ", ".join(name for name, _, _ in SUBCOMMANDS)
            )


def _owns_stdout(options) -> bool:
    """Whether a sink of the chosen subcommand writes to stdout (``--json -``)."""
    sub = getattr(options, "subOptions", None)
    if sub is None:
        return False
    config = getattr(sub, "config", None)  # serve: every service of the file
    specs = [spec.options for spec in config.services] if config is not None else [sub]
    return any(o.get("json") == "-" for o in specs)


def _special_file(path: str) -> bool:
    """An existing path that is no regular file (a device, pipe or FIFO: /dev/stderr)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)




_append_log_to: str | None = None  # the --logfile that append_log_observer opens


def stderr_log_observer():
    """twistd's text log on stderr (a ``--logger`` factory, set by Options)."""
    from twisted.logger import textFileLogObserver

    return textFileLogObserver(sys.stderr)


def append_log_observer():
    """twistd's text log appended to a ``--logfile`` that is a device, pipe or FIFO."""
    from twisted.logger import textFileLogObserver

    return textFileLogObserver(open(_append_log_to, "a", buffering=1))


# Signals whose default action ends the process at once, taken (when no one has) to log a line
_GOING_ON = {
    signal.SIGUSR1: "SIGUSR1: no log file to rotate (the log goes to standard output or error, "
                    "or to a device or pipe); going on",
    signal.SIGHUP: "SIGHUP: tcpplay does not reload its config (restart it to apply a change: "
                   "SIGTERM drains and stops it); going on",
}


class TcpplayService(service.MultiService):
    """The root service. A SIGTERM/SIGINT ends in a graceful drain, so the process exits 0.

    twistd re-raises the signal that stopped the reactor after shutdown (exit status -15);
    since our services drain and close everything on that signal, the shutdown is an orderly
    one and is reported as such (status 0), like ``systemctl stop`` expects.

    SIGUSR1 rotates the log file (twistd's ``--logfile``, or ``playground.daemon.jsonlog``'s),
    whose logger claims the signal; a process whose log goes to no file of its own (stdout or
    stderr in the foreground, a ``--logfile`` that is a device or pipe) has no handler, and
    SIGUSR1's default action ended it (status 138, a logrotate ``postrotate`` killing every
    service it was sent to). Unclaimed when the service starts (after twistd set up its log),
    it is taken here: one log line says there is nothing to rotate, and the process goes on.
    SIGHUP alike (an operator's "reload", a closed terminal's hang-up: its default action ended
    the process at once, with no drain and a daemon's pid file left behind): tcpplay reloads
    nothing, and one log line says so.
    """

    log = Logger()
    _privileged = False

    def privilegedStartService(self):
        if self._privileged:  # already done by start_before_daemonizing
            return
        self._privileged = True
        super().privilegedStartService()

    def startService(self):
        # Everything loaded at start-up (modules, classes, functions: tens of thousands of
        # objects) lives as long as the process: move it out of the cyclic GC's sight, so a full
        # collection during a flood scans what traffic made, not the whole program (it took
        # 30 ms of CPU per collection in the proxy, a stall for every client, before).
        gc.collect()
        gc.freeze()
        for signum, line in _GOING_ON.items():
            self._claim(signum, line)
        super().startService()

    def _claim(self, signum: int, line: str):
        """``signum`` logs ``line`` rather than ending the process, when no one has taken it
        (SIGUSR1: a log file's rotation, twistd's or jsonlog's)."""
        if signal.getsignal(signum) not in (signal.SIG_DFL, None):
            return

        def going_on(signum, frame):
            from twisted.internet import reactor

            reactor.callFromThread(self.log.info, line)

        try:
            signal.signal(signum, going_on)
        except ValueError:  # not the main thread (a test's): nothing of twistd's to keep alive
            pass

    def stopService(self):
        d = defer.maybeDeferred(super().stopService)

        def orderly(result):
            from twisted.internet import reactor

            if twistedprivate.forget_exit_signal(reactor, (signal.SIGTERM, signal.SIGINT)):
                shutdown.ignore_signals()
            return result

        return d.addBoth(orderly)


def makeService(options) -> service.IService:
    modules = {name: mod for name, mod, _ in SUBCOMMANDS}
    module = importlib.import_module(modules[options.subCommand])
    top = TcpplayService()
    try:
        svc = module.make_service(options.subOptions)
    except usage.UsageError as e:  # the last resort: the options refuse what they can tell
        # (a --target whose endpoint Twisted cannot build: addresses.client_target)
        sys.stderr.write(f"twistd tcpplay {options.subCommand}: {e}\n")
        raise SystemExit(1)
    if "stats-interval" in options.subOptions:  # --metrics / --stats-interval of ServerOptions
        from playground.daemon import metrics

        svc = metrics.attach(svc, options.subOptions, options.subCommand)
    svc.setServiceParent(top)
    start_before_daemonizing(top, getattr(options, "parent", None))
    return top


def start_before_daemonizing(top: TcpplayService, config) -> None:
    """Bind the listeners now, in the launching process, before twistd forks the daemon.

    twistd binds in ``privilegedStartService`` after it has forked and written the pid file;
    a bind failure there (a ``SystemExit``, see ``playground.common.listening``) is not reported to the
    launcher waiting on the status pipe, which then waits forever, and the pid file stays. Done
    here, a busy port ends the launcher itself: the one-line reason on its stderr, exit status 1,
    no pid file yet, as in the foreground. The sockets are inherited by the daemon; its log
    starts with the ports' own "starting on" lines, then twistd's.

    Daemon mode only (``twistd -n`` has no status pipe to hang on). Paths in endpoint strings
    are relative to ``--rundir``, so the binding is done in that directory (the daemon changes
    to it too); with ``--chroot`` it is left to twistd. The umask twistd sets for a daemon
    (``--umask``, else 0077) applies to what is created now (unix sockets).
    """
    if config is None or config.get("nodaemon", True):
        return  # the foreground reports a bind failure as it is (twistd's own start-up lines first)
    if config.get("chroot") is not None:
        return
    umask = config.get("umask")
    if umask is None:
        umask = 0o077
    here = os.getcwd()
    try:
        os.chdir(config.get("rundir") or ".")
    except OSError:
        return  # twistd reports it
    old = os.umask(umask)
    try:
        top.privilegedStartService()
    finally:
        os.umask(old)
        os.chdir(here)
