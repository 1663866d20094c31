"""Command-line option pieces shared by every command: the twistd subcommands' ``usage.Options``
(listen address, limits, timeouts, numbers read as ASCII digits) and the argparse tools'
(``ArgumentParser``, ``argument_type``); a mistyped name gets the closest one (``did_you_mean``)."""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import stat
import sys
from decimal import Decimal

from twisted.python import usage

from playground.common.addresses import server_string
from playground.common.digits import decimal, digits_only

_MAX_DIGITS = 18  # digits of a whole number: up to 10**18 - 1, more than any count or size means
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")  # ASCII digits, a decimal point or not
_BYTE_SIZE = re.compile(r"([0-9]+)(k|m|g|kb|mb|gb)?", re.IGNORECASE)
_SCALES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MAX_SECONDS = 10**9  # some 31 years: a longer time is a typo
MAX_BYTES = 64 * 1024**3  # a size or memory bound (64g): a larger one bounds nothing on a real host


def option_text(value) -> str:
    """An option's value as text: a config file's TOML number is written out in digits
    (``1e-05`` as ``0.00001``; ``inf`` and ``nan`` stay as they are, to be refused)."""
    if isinstance(value, float) and math.isfinite(value):
        return format(Decimal(repr(value)), "f")
    return str(value)


def _given(value) -> str:
    """``value`` for an error message: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def whole_number(flag: str, value, minimum: int = 0, maximum: int | None = None,
                 unit: str = "") -> int:
    """An option's whole number: ASCII digits only (``int()`` also reads ``' 5'``, ``'+5'``,
    ``'1_0'`` and other scripts' digits), ``minimum`` to ``maximum`` (``unit`` follows it in the
    message); else a ``UsageError`` naming ``flag``."""
    text = option_text(value)
    if not digits_only(text):
        if text[:1] == "-" and digits_only(text[1:]):
            raise usage.UsageError(f"{flag}: {_at_least(minimum)}, got {_given(value)}")
        raise usage.UsageError(f"{flag}: expected a whole number (digits 0-9 only), "
                               f"got {_given(value)}")
    number = _value(text)
    if number is not None and number < minimum:
        raise usage.UsageError(f"{flag}: {_at_least(minimum)}, got {_given(value)}")
    limit = 10**_MAX_DIGITS - 1 if maximum is None else maximum
    if number is None or number > limit:
        raise usage.UsageError(f"{flag}: must be at most {limit}{unit}, got {_given(value)}")
    return number


def _value(digits: str) -> int | None:
    """The value of ASCII ``digits``; None past ``_MAX_DIGITS`` significant ones (past any
    maximum: int() would read 4,300 of them, after quadratic work)."""
    return decimal(digits.lstrip("0") or "0", _MAX_DIGITS)


def _at_least(minimum: int) -> str:
    return "must be >= 0" if minimum == 0 else f"must be at least {minimum}"


def non_negative_int(flag: str, value) -> int:
    return whole_number(flag, value)


def positive_int(flag: str, value) -> int:
    return whole_number(flag, value, minimum=1)


def byte_count(flag: str, value, minimum: int = 0) -> int:
    """A number of bytes without a suffix (``--max-value``, ``--max-body``): ``minimum`` to
    ``MAX_BYTES``."""
    return whole_number(flag, value, minimum, MAX_BYTES, f" bytes ({MAX_BYTES >> 30} GiB)")


def non_negative_float(flag: str, value) -> float:
    """A number of seconds: ASCII digits with a decimal point or not (``5``, ``0.25``), at most
    ``MAX_SECONDS``; no sign, exponent, ``_``, white space, ``inf`` or ``nan``."""
    text = option_text(value)
    if _SECONDS.fullmatch(text) is None:
        if text[:1] == "-" and _SECONDS.fullmatch(text[1:]):
            raise usage.UsageError(f"{flag}: must be >= 0, got {_given(value)}")
        raise usage.UsageError(f"{flag}: expected a number of seconds (digits 0-9, a decimal "
                               f"point or not: 5, 0.25), got {_given(value)}")
    number = float(text)
    if number > MAX_SECONDS:
        raise usage.UsageError(f"{flag}: must be at most {MAX_SECONDS} seconds, "
                               f"got {_given(value)}")
    return number


def argument_type(check):
    """``check(flag, value)`` (``positive_int``, ``non_negative_float``, ...) as an argparse
    ``type=``: argparse names the flag itself, so the message is the rest of check's."""
    def read(text: str):
        try:
            return check("", text)
        except usage.UsageError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix(": ")) from None

    return read


MIN_STATS_INTERVAL = 0.1  # seconds: a shorter one would log a line per service every turn


def stats_interval(flag: str, value) -> float:
    """``--stats-interval`` (and the config file's ``stats-interval``): 0 (never) or at least
    ``MIN_STATS_INTERVAL`` seconds; 1e-300 was taken and logged a line every reactor turn."""
    number = non_negative_float(flag, value)
    if 0 < number < MIN_STATS_INTERVAL:
        raise usage.UsageError(f"{flag}: must be 0 (never) or at least {MIN_STATS_INTERVAL:g} "
                               f"seconds, got {_given(value)}")
    return number


def byte_size(flag: str, value) -> int:
    """A byte count: ASCII digits with an optional k/m/g (or kb/mb/gb) suffix, powers of 1024,
    as Redis accepts; more than 0, at most ``MAX_BYTES``."""
    text = option_text(value)
    match = _BYTE_SIZE.fullmatch(text)
    if match is None:
        if text[:1] == "-" and _BYTE_SIZE.fullmatch(text[1:]):
            raise usage.UsageError(f"{flag}: must be > 0, got {_given(value)}")
        # the flag's own forms, not only "a whole number" (its default is 1m)
        raise usage.UsageError(f"{flag}: expected a byte count, a whole number with an optional "
                               f"k/m/g suffix (64k, 1m, 2g), got {_given(value)}")
    digits, suffix = match.groups()
    number = _value(digits)
    if number is not None:
        number *= _SCALES[(suffix or "")[:1].lower()]
        if number == 0:
            raise usage.UsageError(f"{flag}: must be > 0, got {_given(value)}")
    if number is None or number > MAX_BYTES:
        raise usage.UsageError(f"{flag}: must be at most {MAX_BYTES // 1024**3}g, "
                               f"got {_given(value)}")
    return number


def did_you_mean(word: str, known, quote: bool = False) -> str:
    """`` (did you mean --target?)`` for a mistyped ``word``: the closest of ``known``, if one is
    close (difflib's ratio 0.6 or more; ``quote``: its repr), else ``""``."""
    close = difflib.get_close_matches(word, list(known), n=1)
    if not close:
        return ""
    return f" (did you mean {close[0]!r}?)" if quote else f" (did you mean {close[0]}?)"


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser as tcpplay's tools use it (``tcpplay-replay``, ``tcpplay-pool``,
    ``check-config``, ``tcpplay-chat``): an option it does not know is a usage error naming the
    closest one, as the twistd subcommands' is (``option --targte not recognized (did you mean
    --target?)``). argparse's own said ``unrecognized arguments`` and named none, or, when the
    typo stood for a required option, only asked for that one."""

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        known = [o for action in self._actions for o in action.option_strings
                 if o.startswith("--")]
        for word in args:
            if word == "--":  # what follows is positional
                break
            name = word.partition("=")[0]
            if name.startswith("--") and not any(
                    o == name or (self.allow_abbrev and o.startswith(name)) for o in known):
                self.error(f"option {name} not recognized{did_you_mean(name, known)}")
        return super().parse_known_args(args, namespace)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """argparse's help with each option's default as the twistd subcommands' help shows it,
    ``[default: X]`` at the end of its text (``_shown``: ``60``, not ``60.0``); none for an
    option without one (a required one, a flag), nor where the text already says it.
    argparse's ``ArgumentDefaultsHelpFormatter`` wrote ``(default: None)`` and ``(default:
    False)`` there, beside the texts' own ``[default: X]``."""

    def _get_help_string(self, action):
        text = action.help or ""
        shown = None if action.default is argparse.SUPPRESS else _shown(action.default)
        if shown is None or not action.option_strings or "[default:" in text:
            return text
        return f"{text} [default: {shown.replace('%', '%%')}]"  # argparse formats the text


def version() -> str:
    """tcpplay's version, from the installed package's metadata."""
    from importlib import metadata

    try:
        return metadata.version("tcpplay")
    except metadata.PackageNotFoundError:  # run from a source tree
        from playground import __version__

        return __version__


def _shown(value) -> str | None:
    if value is None or value == "" or value == [] or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class CommandOptions(usage.Options):
    """The base of tcpplay's option classes.

    ``--version`` prints tcpplay's version (usage.Options' own prints Twisted's and goes on);
    ``-h`` is ``--help``, which exits quietly when its reader has left (``--help | head``).
    The help shows every parameter's default one way, usage.Options' ``[default: X]`` at the end
    of its line, also for parameters parsed by an ``opt_`` method (their default is the value
    ``__init__`` set); ``shown_defaults`` may give a friendlier text (``{"max-bulk": "512m"}``).
    Help texts therefore never write their default by hand.
    """

    shown_defaults: dict[str, str] = {}

    def __init__(self):
        super().__init__()
        # opt_ docstrings span lines: one space between words, as optParameters' texts have
        self.docs = {name: " ".join(doc.split()) if doc else doc
                     for name, doc in self.docs.items()}

    def opt_version(self):
        """Show tcpplay's version and exit."""
        print(f"tcpplay {version()}")
        sys.exit(0)

    def opt_help(self):
        """Display this help and exit."""
        try:
            print(self.__str__())
            sys.stdout.flush()
        except BrokenPipeError:
            # ``--help | head``: the reader has what it wanted. Exit 0 quietly; stdout goes to
            # /dev/null, or Python's own flush at exit would fail again, with a message.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)

    opt_h = opt_help  # -h, as the argparse tools (tcpplay-pool -h) take it

    def parseOptions(self, options=None):
        self._initial = dict(self)  # the defaults, before any argument is read
        super().parseOptions(options)

    def parseArgs(self, *args):
        """No positional arguments: name the first one (not usage.Options' "Wrong number of
        arguments."), e.g. the 6379 of ``--listen 6479 6379`` that lost its ``--target``."""
        if args:
            raise usage.UsageError(f"unexpected argument {args[0]!r} (every value follows "
                                   "its --option)")

    def getUsage(self, width=None):
        if hasattr(self, "subOptions"):  # usage.Options hands over to the subcommand's help
            return super().getUsage(width)
        initial = getattr(self, "_initial", None)
        if initial is None:
            initial = dict(self)
        saved = self.defaults
        shown = {}
        for opt in self.longOpt:
            if not opt.endswith("="):
                continue
            name = opt[:-1]
            text = self.shown_defaults.get(name) or _shown(saved.get(name)) or _shown(
                initial.get(name))
            if text is not None:
                shown[name] = text
        self.defaults = shown
        try:
            return super().getUsage(width)
        finally:
            self.defaults = saved


def parameter(name: str, default, doc: str, check=None, short: str | None = None) -> list:
    """An ``optParameters`` row for ``--NAME``. ``check(flag, value)`` (``non_negative_int``,
    ``byte_size``, ...) parses the value, so a bad one is a ``UsageError`` naming ``--NAME``."""
    if check is None:
        return [name, short, default, doc]
    flag = f"--{name}"
    return [name, short, default, doc, lambda value: check(flag, value)]


class ServerOptions(CommandOptions):
    """What every server takes: ``--listen``, ``--idle-timeout``, ``--max-connections``,
    ``--max-connections-per-peer``, ``--stats-interval``, ``--metrics``.

    A server states only its own: ``default_listen`` (and ``default_idle_timeout`` or
    ``default_max_connections`` where its defaults differ) and its own ``optParameters`` rows
    (``parameter(...)``), which usage.Options adds to these. Subclasses that check more call
    ``super().postOptions()``. After parsing, ``self["listen"]`` is an endpoint string and
    ``limit_arguments(self)`` the factory arguments these options give.
    """

    default_listen = "7000"
    default_idle_timeout = 0.0
    default_max_connections = 1000

    optParameters = [
        # defaults None here: the class attributes above give them (see __init__)
        parameter("listen", None,
                  "Where to listen: PORT (on 127.0.0.1), HOST:PORT, or a Twisted server endpoint "
                  "string (tcp:PORT:interface=ADDR, unix:PATH, ssl:PORT:privateKey=KEY:certKey=CERT).",
                  short="l"),
        parameter("idle-timeout", None,
                  "Close a connection idle for this many seconds (0 = never).",
                  non_negative_float),
        parameter("max-connections", None,
                  "Refuse connections beyond this many open at once (0 = unlimited).",
                  non_negative_int),
        parameter("max-connections-per-peer", 0,
                  "Refuse connections beyond this many open at once from one peer host "
                  "(0 = unlimited).", non_negative_int),
        parameter("stats-interval", 0.0,
                  "Log a one-line stats summary every this many seconds (0 = never; at "
                  "least 0.1).", stats_interval),
        parameter("metrics", None,
                  "Serve stats at http://ADDR/metrics (Prometheus text) and /metrics.json: PORT "
                  "(on 127.0.0.1), HOST:PORT or a server endpoint string (off when not given).",
                  lambda flag, value: server_string(str(value), flag)),
    ]

    def __init__(self):
        super().__init__()
        self["listen"] = self.default_listen
        self["idle-timeout"] = self.default_idle_timeout
        self["max-connections"] = self.default_max_connections

    def postOptions(self):
        self["listen"] = server_string(str(self["listen"]), "--listen")
        if self["metrics"] is not None and self["metrics"] == self["listen"]:
            raise usage.UsageError("--metrics: needs an address of its own, not --listen's")


def limit_arguments(options) -> dict:
    """The arguments every server's factory (a ``limits.LimitedFactory``) takes from its
    options: ``idle_timeout``, ``max_connections``, ``max_per_peer``."""
    return {
        "idle_timeout": options["idle-timeout"],
        "max_connections": options["max-connections"],
        "max_per_peer": options["max-connections-per-peer"],
    }


def run_directory(options) -> str | None:
    """The directory twistd runs the services in, where they open relative paths: the
    ``--rundir`` of twistd's options above ``options`` (their ``parent``s), ``.`` without
    twistd; None with ``--chroot`` (paths are then the chroot's: nothing to check them by)."""
    while options is not None:
        if isinstance(options, dict) and "rundir" in options:
            return None if options.get("chroot") is not None else options["rundir"] or "."
        options = getattr(options, "parent", None)
    return "."


def check_writable(flag: str, path: str, directory: str = ".") -> None:
    """Open ``path`` (relative to ``directory``: ``run_directory``'s, for a file the services
    open) for append now, so an unwritable file (``--json``, ``--pcap``, ``--logfile``,
    ``--pidfile``) is a usage error naming ``flag`` before anything listens or twistd opens it;
    a file created by the check is removed again.

    A FIFO is not opened: that would block until a reader comes, and closing it again would
    end the reader's input (``cat fifo`` sees EOF before the sink writes anything).
    """
    full = os.path.join(directory, path)
    where = "" if directory == "." or os.path.isabs(path) else f" (in --rundir {directory})"
    try:
        fifo = stat.S_ISFIFO(os.stat(full).st_mode)
    except OSError:
        fifo = False
    if fifo:
        if not os.access(full, os.W_OK):
            raise usage.UsageError(f"{flag}: cannot write {path}{where}: Permission denied")
        return
    existed = os.path.lexists(full)
    try:
        open(full, "ab").close()
    except OSError as e:
        raise usage.UsageError(f"{flag}: cannot write {path}{where}: {e.strerror}")
    if not existed:
        os.unlink(full)
