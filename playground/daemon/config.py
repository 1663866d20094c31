"""The TOML config file of ``twistd tcpplay serve``: parse, validate, and turn into service specs.

A file holds global keys first, then one table per service, named ``[KIND.NAME]``::

    stats-interval = 60        # global: one summary log line per service every 60 s
    metrics = "9100"           # global: one /metrics endpoint for every service

    [proxy.redis]              # KIND is a subcommand (proxy, echo, chat, http, resp)
    listen = "0.0.0.0:6479"    # keys are that subcommand's long options, without "--"
    target = "6379"
    quiet = true               # flags take true/false
    fault = ["latency:downstream:200ms"]   # a repeatable option takes an array

Each table becomes the argv of its subcommand's ``Options`` (``--listen=0.0.0.0:6479
--target=6379 --quiet``), parsed by that very class, so the file accepts exactly what the command
line does and is validated the same way. Errors name the file, the line and the key::

    config/x.toml:12: [proxy.redis] listen: cannot read 'abc' as an address (...)

``tomllib`` gives no positions for keys, so a small scanner (``key_lines``) maps each key path
to the line that defines it. Overrides (``serve --set proxy.redis.listen=7000``, ``--set
metrics=9100``) replace or add one key after the file is read and are checked the same way.

Pure: no I/O besides reading the file in ``load``; nothing is started here.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tomllib

import attrs
from twisted.python import usage

from playground.common.addresses import (
    listen_parts,
    same_socket,
    server_string,
    target_is_listen,
)
from playground.common.options import ArgumentParser, did_you_mean, option_text, stats_interval

KINDS = ("proxy", "echo", "chat", "http", "resp")  # the subcommands a table may name
GLOBAL_KEYS = ("stats-interval", "metrics")
MAX_BYTES = 1 << 20  # a config file is read whole: a larger one (/dev/zero) is refused
_NOT_OPTIONS = frozenset({"help", "version"})
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FLAG_IN_MESSAGE = re.compile(r"--([a-z0-9][a-z0-9-]*)")


class ConfigError(usage.UsageError):
    """A config file problem; the message starts with ``FILE:LINE:`` when the line is known."""


@attrs.define
class ServiceSpec:
    kind: str  # the subcommand
    name: str  # the table's name: [KIND.NAME]
    argv: list[str]  # what the subcommand's Options parsed
    options: usage.Options  # the parsed Options instance, ready for make_service
    line: int | None = None


@attrs.define
class Config:
    path: str
    services: list[ServiceSpec]
    metrics: str | None = None  # a server endpoint string, or None
    stats_interval: float = 0.0


def kinds() -> dict[str, str]:
    """Subcommand name -> module, for every kind of service a file may hold (``KINDS``)."""
    from playground.tap import SUBCOMMANDS

    modules = {name: mod for name, mod, _ in SUBCOMMANDS}
    return {name: modules[name] for name in KINDS if name in modules}


def options_class(kind: str):
    return importlib.import_module(kinds()[kind]).Options


def option_names(options: usage.Options) -> dict[str, bool]:
    """Long option name -> takes a value, for an Options instance (help/version left out)."""
    out = {}
    for long in options.longOpt:
        name = long.rstrip("=")
        if name not in _NOT_OPTIONS:
            out[name] = long.endswith("=")
    return out


# -- where keys are ------------------------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _parse_key(text: str, pos: int) -> tuple[list[str], int]:
    """A dotted key starting at ``pos``: its parts and the position after it."""
    parts: list[str] = []
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos >= n:
            break
        c = text[pos]
        if c == '"':
            end = pos + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            parts.append(text[pos + 1:end].replace('\\"', '"').replace("\\\\", "\\"))
            pos = end + 1
        elif c == "'":
            end = text.find("'", pos + 1)
            end = n if end < 0 else end
            parts.append(text[pos + 1:end])
            pos = end + 1
        else:
            m = _BARE.match(text, pos)
            if not m:
                break
            parts.append(m.group())
            pos = m.end()
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos < n and text[pos] == ".":
            pos += 1
            continue
        break
    return parts, pos


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each table header and key (as a full dotted path) to its 1-based line number."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    closing = None  # the delimiter of the multi-line string we are in
    for number, raw in enumerate(text.splitlines(), 1):
        if closing is not None:
            if raw.count(closing) % 2 == 1:
                closing = None
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            start = 2 if line.startswith("[[") else 1
            parts, _ = _parse_key(line, start)
            table = tuple(parts)
            for i in range(1, len(table) + 1):  # [a.b] also defines a
                lines.setdefault(table[:i], number)
            continue
        parts, pos = _parse_key(line, 0)
        if not parts or pos >= len(line) or line[pos] != "=":
            continue
        for i in range(1, len(parts) + 1):  # a.b = 1 also defines a
            lines.setdefault(table + tuple(parts[:i]), number)
        rest = line[pos + 1:]
        for delim in ('"""', "'''"):
            if rest.lstrip().startswith(delim) and rest.count(delim) % 2 == 1:
                closing = delim
                break
    return lines


def _line_of(lines: dict, path: tuple[str, ...]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


# -- values to argv ---------------------------------------------------------------------------


def _type_name(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, str):
        return repr(value)
    return type(value).__name__ + f" {value!s}"


_COUNTED = frozenset({"verbose"})  # flags given more than once on the command line (-vv)
_REPEATED = frozenset({"fault"})  # options given more than once: an array of strings, or one


def _argument(name: str, takes_value: bool, value) -> list[str]:
    """The argv words for one key; ValueError says what is wrong with the value."""
    if name in _COUNTED and isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 2:
            raise ValueError(f"expected true, false, or 0 to 2 (-vv), got {value}")
        return [f"--{name}"] * value
    if name in _REPEATED and isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ValueError("expected an array of strings")
        return [f"--{name}={v}" for v in value]
    if not takes_value:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_type_name(value)}")
        return [f"--{name}"] if value else []
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a string or a number, got {_type_name(value)}")
    return [f"--{name}={option_text(value)}"]


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _suggest(name: str, choices) -> str:
    return did_you_mean(name.replace("_", "-"), choices, quote=True)


def _readable(message: str, names) -> str:
    """``--listen: bad`` -> ``bad`` for the key's own flag; other ``--flags`` lose their dashes."""
    return _FLAG_IN_MESSAGE.sub(lambda m: m.group(1) if m.group(1) in names else m.group(0),
                                message)


# -- the file --------------------------------------------------------------------------------------


class _Where:
    """Formats locations: ``FILE:LINE:`` for file keys, ``--set PATH=VALUE:`` for overrides."""

    def __init__(self, path: str, lines: dict, overridden: dict):
        self.path = path
        self.lines = lines
        self.overridden = overridden  # key path -> the --set text

    def __call__(self, keypath: tuple[str, ...]) -> str:
        if keypath in self.overridden:
            return f"--set {self.overridden[keypath]}:"
        line = _line_of(self.lines, keypath)
        return f"{self.path}:{line}:" if line is not None else f"{self.path}:"

    def line(self, keypath) -> int | None:
        return _line_of(self.lines, keypath)


def parse_override(text: str) -> tuple[tuple[str, ...], object]:
    """``proxy.redis.listen=7000`` -> (("proxy", "redis", "listen"), 7000). The value is read
    as a TOML value when it is one (numbers, true/false, "quoted"), else taken as a string."""
    key, sep, raw = text.partition("=")
    path = tuple(p.strip() for p in key.split("."))
    if not sep or not all(path) or len(path) not in (1, 3):
        raise ConfigError(
            f"--set {text}: expected KIND.NAME.KEY=VALUE (a service's key) or KEY=VALUE "
            f"(a global key: {', '.join(GLOBAL_KEYS)})"
        )
    try:
        doc = tomllib.loads(f"v = {raw}")
        value = doc["v"] if len(doc) == 1 else raw  # more TOML after a line break: a string
    except tomllib.TOMLDecodeError:
        value = raw
    except RecursionError:
        raise ConfigError(f"--set {'.'.join(path)}: arrays or inline tables nested too deep")
    return path, value


def load(path: str, overrides=(), flag: str = "--config", parent=None) -> Config:
    """Read and check the file at ``path``; ``flag`` is what an unreadable file's error names
    (``serve``'s ``--config``, or the command that was given the file); ``parent``: the
    options each service's options hang from (``serve``'s, under twistd's: its ``--rundir`` is
    where relative output paths are checked)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{flag}: cannot read {path}: {e.strerror}")
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: more than {MAX_BYTES} bytes: not a tcpplay config file")
    try:
        text = data.decode("utf-8-sig")  # a byte order mark (Windows editors) is no key
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e})")
    return loads(text, path, overrides, parent)


def loads(text: str, path: str = "<config>", overrides=(), parent=None) -> Config:
    """Parse and validate a config's text (``path`` names it in messages)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)$", str(e))
        if m:
            msg = str(e)[: m.start()].strip()
            raise ConfigError(f"{path}:{m.group(1)}: {msg}")
        raise ConfigError(f"{path}: {e}")
    except RecursionError:  # tomllib recurses per level of nesting
        raise ConfigError(f"{path}:{_deep_line(text)}: arrays or inline tables nested too deep")
    overridden: dict[tuple[str, ...], str] = {}
    for text_ in overrides:
        keypath, value = parse_override(text_)
        if len(keypath) == 3:
            kind, name, _ = keypath
            table = doc.get(kind)
            if not isinstance(table, dict) or not isinstance(table.get(name), dict):
                raise ConfigError(f"--set {text_}: {path} has no [{kind}.{name}] table")
            table[name][keypath[2]] = value
        else:
            doc[keypath[0]] = value
        overridden[keypath] = text_
    where = _Where(path, key_lines(text), overridden)
    return _validate(doc, path, where, parent)


def _deep_line(text: str, limit: int = 100) -> int:
    """The line where brackets and braces first open ``limit`` deep (roughly: strings and
    comments are not skipped); the last line if none does."""
    depth = 0
    number = 1
    for number, line in enumerate(text.splitlines() or [""], 1):
        for ch in line:
            if ch in "[{":
                depth += 1
                if depth >= limit:
                    return number
            elif ch in "]}":
                depth = max(0, depth - 1)
    return number


def _validate(doc: dict, path: str, where: _Where, parent=None) -> Config:
    known = kinds()
    config = Config(path=path, services=[])
    for key, value in doc.items():
        if key in known:
            continue
        if key == "metrics":
            if value is False or value == "":
                continue
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ConfigError(f"{where((key,))} metrics: expected an address such as "
                                  f"\"9100\" or \"0.0.0.0:9100\", got {_type_name(value)}")
            try:
                config.metrics = server_string(str(value), "metrics")
            except usage.UsageError as e:
                raise ConfigError(f"{where((key,))} {e}")
        elif key == "stats-interval":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ConfigError(f"{where((key,))} stats-interval: expected a number of "
                                  f"seconds, got {_type_name(value)}")
            try:
                config.stats_interval = stats_interval("stats-interval", value)
            except usage.UsageError as e:
                raise ConfigError(f"{where((key,))} {e}")
        else:
            choices = list(known) + list(GLOBAL_KEYS)
            if isinstance(value, dict):
                what = f"[{key}]: unknown kind of service; choose one of {', '.join(known)}"
            else:
                what = f"{key}: unknown global key; the global keys are {', '.join(GLOBAL_KEYS)}"
            raise ConfigError(f"{where((key,))} {what}{_suggest(key, choices)}")
    names: dict[str, str] = {}
    listens: dict[str, str] = {}
    outputs: dict[str, str] = {}
    if config.metrics:
        listens[config.metrics] = "metrics"
    for kind, table in doc.items():
        if kind not in known:
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{where((kind,))} {kind}: expected tables [{kind}.NAME], "
                              f"got {_type_name(table)}")
        for name, body in table.items():
            label = f"[{kind}.{name}]"
            if not isinstance(body, dict):
                raise ConfigError(f"{where((kind, name))} [{kind}] {name}: a service's keys go "
                                  f"in its own table, e.g. [{kind}.main] then {name} = ...")
            if not _NAME.match(name):
                raise ConfigError(f"{where((kind, name))} {label}: a service name is 1-64 of "
                                  "A-Z a-z 0-9 _ -")
            if name in names:
                raise ConfigError(f"{where((kind, name))} {label}: the name {name!r} is already "
                                  f"used by [{names[name]}.{name}]; names are unique")
            names[name] = kind
            spec = _service(kind, name, body, where, parent)
            for key in ("listen", "web"):  # every address a service listens on is its own
                address = spec.options.get(key)
                if not address or listen_parts(address)[2] == 0:  # port 0: the kernel's pick
                    continue
                taken = next((a for a in listens if same_socket(a, address)), None)
                if taken is not None:
                    on = "" if taken == address else f", on {taken}"
                    raise ConfigError(f"{where((kind, name, key))} {label} {key}: {address} is "
                                      f"already used by {listens[taken]}{on}")
                listens[address] = label if key == "listen" else f"{label} web"
            _one_writer_per_pcap(spec, label, outputs, where)
            _stats_in_this_process(spec, label, config, where)
            config.services.append(spec)
    _no_ring_of_proxies(config.services, where)
    if not config.services:
        raise ConfigError(f"{path}: no services: add a table such as [echo.main] "
                          f"(kinds: {', '.join(known)})")
    return config


def _stats_in_this_process(spec: ServiceSpec, label: str, config: Config, where: _Where) -> None:
    """The global ``metrics`` and ``stats-interval`` count a proxy's commands from its decoder in
    this process: a proxy with ``decode-process`` has none here, so it refuses them, as its
    ``--decode-process`` refuses ``--metrics`` and ``--stats-interval`` on the command line."""
    if spec.kind != "proxy" or not spec.options.get("decode-process"):
        return
    for key, given in (("metrics", config.metrics), ("stats-interval", config.stats_interval)):
        if given:
            raise ConfigError(f"{where((spec.kind, spec.name, 'decode-process'))} {label} "
                              f"decode-process: the global {key} needs the decoder in this "
                              f"process; drop {key} or decode-process")


def _no_ring_of_proxies(services: list[ServiceSpec], where: _Where) -> None:
    """Proxies whose targets lead round to the first one's listener (``[proxy.a]`` to
    ``[proxy.b]``'s listen, ``[proxy.b]`` to ``[proxy.a]``'s): each connection goes round
    through them, a pair per hop, until their --max-connections, as a proxy targeting its own
    listen address would (``addresses.target_is_listen``, which each proxy's options check for
    itself). Refused, naming the first proxy's target and the ring."""
    proxies = [s for s in services if s.kind == "proxy"
               and getattr(s.options, "target", None) is not None]

    def next_of(spec):
        return next((o for o in proxies if o is not spec
                     and target_is_listen(o.options["listen"], spec.options.target)), None)

    for spec in proxies:
        ring = [spec]
        hop = next_of(spec)
        while hop is not None and hop not in ring:
            ring.append(hop)
            hop = next_of(hop)
        if hop is spec:
            names = " -> ".join(f"[proxy.{s.name}]" for s in [*ring, spec])
            raise ConfigError(f"{where(('proxy', spec.name, 'target'))} [proxy.{spec.name}] "
                              f"target: its connections go round {names}: each would connect "
                              f"again, until --max-connections")


def _one_writer_per_pcap(spec: ServiceSpec, label: str, outputs: dict, where: _Where) -> None:
    """A pcap file is one header and one stream of records: no second service may write it
    (a pcap or JSON lines). JSON files may be shared: each record is one whole line."""
    for key in ("pcap", "json"):
        path = spec.options.get(key)
        if not path or path == "-":
            continue
        full = os.path.normpath(os.path.abspath(path))
        other = outputs.get(full)
        if other is not None and "pcap" in (key, other[1]):
            raise ConfigError(f"{where((spec.kind, spec.name, key))} {label} {key}: {path} is "
                              f"already written by {other[0]} {other[1]}")
        outputs.setdefault(full, (label, key))


def _service(kind: str, name: str, body: dict, where: _Where, parent=None) -> ServiceSpec:
    label = f"[{kind}.{name}]"
    options = options_class(kind)()
    options.parent = parent  # as a subcommand's: twistd's options above it (daemon or not)
    names = option_names(options)
    argv: list[str] = []
    for key, value in body.items():
        keypath = (kind, name, key)
        if key in GLOBAL_KEYS:
            raise ConfigError(f"{where(keypath)} {label} {key}: set it once at the top of the "
                              "file (one endpoint and one stats line serve every service)")
        if key not in names:
            raise ConfigError(f"{where(keypath)} {label} {key}: unknown key for {_a(kind)} "
                              f"service{_suggest(key, names)}")
        try:
            argv.extend(_argument(key, names[key], value))
        except ValueError as e:
            raise ConfigError(f"{where(keypath)} {label} {key}: {e}")
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        message = str(e)
        culprit = next((m.group(1) for m in _FLAG_IN_MESSAGE.finditer(message)
                        if m.group(1) in body), None)
        if culprit is not None:
            message = message.removeprefix(f"--{culprit}: ")
            if message.startswith(f"--{culprit} "):
                message = message[len(culprit) + 3:]
            raise ConfigError(f"{where((kind, name, culprit))} {label} {culprit}: "
                              f"{_readable(message, names)}")
        raise ConfigError(f"{where((kind, name))} {label}: {_readable(message, names)}")
    return ServiceSpec(kind, name, argv, options, where.line((kind, name)))


def main(argv=None, prog: str = "python -m playground check-config") -> int:
    """``python -m playground check-config FILE [--set K=V ...]``: check a file, list its services.
    The flags go anywhere (``--set K=V FILE`` too); a bad command line is argparse's usage
    error, status 2."""
    parser = ArgumentParser(
        prog=prog, description="Check a serve config file (the services it would start, with "
        "their options), start nothing. Status 0: valid; 1: an error, named by file, line and "
        "key.")
    parser.add_argument("file", metavar="FILE", help="the TOML config file")
    parser.add_argument("--set", action="append", default=[], metavar="KIND.NAME.KEY=VALUE",
                        help="override one key, as serve --set does (or KEY=VALUE, a global "
                        "key); repeatable")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    path, overrides = args.file, args.set
    try:
        config = load(path, overrides, flag=prog)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    for s in config.services:
        print(f"[{s.kind}.{s.name}] {' '.join(s.argv)}")
    print(f"metrics: {config.metrics or 'off'}; stats-interval: {config.stats_interval:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
