"""Operational logs as JSON lines: ``twistd --logger=playground.daemon.jsonlog.observer ...``.

twistd calls the ``--logger`` factory with no arguments, so ``observer()`` reads twistd's own
``--logfile``/``-l`` and ``--nodaemon``/``-n`` from the command line (with twistd's option table,
stopping at the subcommand, as twistd does) and writes where twistd would have written text:

* ``--logfile=PATH``: that file, through ``twisted.python.logfile.LogFile`` as twistd does
  (rotated to ``PATH.1``, ``PATH.2``, ... when it passes 1 MB; SIGUSR1 rotates it now);
* no ``--logfile`` with ``-n``, or ``--logfile=-``: standard output;
* no ``--logfile`` when daemonizing: ``twistd.log`` in the working directory.

``TCPPLAY_JSON_LOG=PATH`` overrides the destination; ``TCPPLAY_LOG_ROTATE_BYTES`` (default
1000000, 0 = never by size) and ``TCPPLAY_LOG_KEEP`` (rotated files kept, default: all) tune the
rotation.

One event is one line: ``{"time": ISO-8601 UTC, "level": "info", "namespace": "...", "message":
"the formatted text", ...the event's own fields}`` (fields that are not JSON become their repr;
a failure adds ``"traceback"``).
"""

from __future__ import annotations

import datetime
import getopt
import json
import os
import signal
import sys

from twisted.logger import FileLogObserver, formatEvent
from twisted.python import usage

from playground.common.options import byte_count, whole_number

# Legacy (twisted.python.log) keys that are not the event's own fields.
_SKIP = frozenset({"message", "format", "isError", "system", "time", "why", "failure",
                   "log_failure"})
_RESERVED = ("time", "level", "namespace", "message", "traceback")


def _repr(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))
    text = repr(value)
    return text if len(text) <= 1000 else text[:1000] + "..."


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_repr).encode


def event_as_json(event: dict) -> dict:
    """The JSON object of one log event (see the module docstring)."""
    ts = event.get("log_time") or event.get("time") or 0.0
    level = event.get("log_level")
    out = {
        "time": datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z"),
        "level": getattr(level, "name", "info" if not event.get("isError") else "error"),
        "namespace": event.get("log_namespace") or event.get("system") or "-",
        "message": formatEvent(event) or "",
    }
    for key, value in event.items():
        if key.startswith("log_") or key in _SKIP:
            continue
        out[f"field_{key}" if key in _RESERVED else key] = value
    failure = event.get("log_failure") or event.get("failure")
    if failure is not None:
        try:
            out["traceback"] = failure.getTraceback()
        except Exception:
            out["traceback"] = repr(failure)
    return out


def format_event(event: dict) -> str:
    try:
        return _encode(event_as_json(event)) + "\n"
    except Exception as e:  # a value whose repr fails: still one valid line
        return _encode({"time": None, "level": "error", "namespace": "playground.daemon.jsonlog",
                        "message": f"unloggable event: {e!r}"}) + "\n"


def twistd_destination(argv: list[str]) -> tuple[str | None, bool]:
    """(``--logfile`` value or None, ``--nodaemon`` given?) from twistd's command line."""
    from twisted.scripts.twistd import ServerOptions

    table = ServerOptions()
    try:
        opts, _ = getopt.getopt(argv, table.shortOpt, table.longOpt)
    except getopt.GetoptError:
        return None, False
    logfile, nodaemon = None, False
    for flag, value in opts:
        name = table.synonyms.get(flag.lstrip("-"), flag.lstrip("-"))
        if name == "logfile":
            logfile = value
        elif name == "nodaemon":
            nodaemon = True
    return logfile, nodaemon


def _int_env(name: str, default: int | None, check=whole_number) -> int | None:
    """A number from the environment, read as an option's (``check``: ASCII digits only); a
    bad one ends start-up with one line naming the variable (it was int()'s traceback)."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return check(name, value)
    except usage.UsageError as e:
        sys.stderr.write(f"twistd: {e}\n")
        raise SystemExit(1)


def open_destination(path: str | None, nodaemon: bool):
    """The file object to write to: stdout or a rotating ``LogFile`` (SIGUSR1 rotates it)."""
    if path == "-" or (not path and nodaemon):
        return sys.stdout
    from twisted.python.logfile import LogFile

    rotate = _int_env("TCPPLAY_LOG_ROTATE_BYTES", 1000000, byte_count)
    keep = _int_env("TCPPLAY_LOG_KEEP", None)
    log_file = LogFile.fromFullPath(path or "twistd.log", rotateLength=rotate or None,
                                    maxRotatedFiles=keep)
    if not signal.getsignal(signal.SIGUSR1):  # as twistd's own logger: only if unclaimed

        def rotate_log(signum, frame):
            from twisted.internet import reactor

            reactor.callFromThread(log_file.rotate)

        signal.signal(signal.SIGUSR1, rotate_log)
    return log_file


def observer():
    """The ``--logger`` factory: a ``FileLogObserver`` writing JSON lines."""
    path = os.environ.get("TCPPLAY_JSON_LOG") or None
    logfile, nodaemon = twistd_destination(sys.argv[1:])
    return FileLogObserver(open_destination(path or logfile, nodaemon), format_event)
