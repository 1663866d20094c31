"""The proxy's decoding options and what they build.

``OPT_PARAMETERS``, ``OPT_FLAGS`` and ``opt_verbose`` (the counted ``-v``) join the ``proxy``
subcommand's options (``playground.proxy.service.Options``, and the ``demo`` and config files
through it); ``check_options(opts)`` validates and normalises them in place (a ``UsageError``
names the flag); ``build(opts, reactor) -> (services, observer)`` makes the sinks they ask for
(``observes(opts)``: whether they ask for any) and the decoder chain
(``playground.decode.chain.Chain``) that feeds them, or with ``--decode-process`` (the proxy's
own flag) the ``DecoderProcess`` whose child builds them. The web view's options (``--web``,
``playground.web.options``) are among them: its sink takes the records and, beside the pcap sink
(``playground.decode.bytetee.ByteTee``), the chain's redacted bytes.
"""

from __future__ import annotations

import os

from twisted.python import usage

from playground.common.addresses import listen_parts
from playground.common.options import byte_count, check_writable, run_directory
from playground.decode.bytetee import ByteTee
from playground.decode.chain import MIB, Chain, HttpFilter
from playground.web import options as web

DECODE_CHOICES = ("auto", "resp", "http", "text", "hex", "none")
COLOR_CHOICES = ("auto", "always", "never")
LIFECYCLE_CHOICES = ("auto", "show", "hide")
OPT_PARAMETERS = [
    ["decode", None, "auto",
     "How to show the traffic: auto (detect per connection from its first bytes: RESP, "
     "HTTP/1.x, text lines, else hex), resp, http, text, hex, or none (no decoding: the "
     "plain forwarder: --pcap, --web and faults still work; --json, --only, --skip and "
     "--http-filter need decoding)."],
    ["json", None, None,
     "Also write every event as one JSON object per line to FILE (appended; '-' = stdout, "
     "which replaces the console view). Schema: docs/json-schema.md."],
    ["pcap", None, None,
     "Write the traffic to FILE as a pcap for tshark/Wireshark. Redacted secrets are masked "
     "with same-length filler ('*') at the same byte positions, so TCP framing, RESP lengths "
     "and Content-Length stay valid (--no-redact writes them in clear)."],
    ["color", None, "auto", "Console colours: auto (only on a terminal), always, never."],
    ["only", None, None,
     "Show only these Redis commands (comma-separated, case-insensitive), e.g. GET,SET. "
     "Console and JSON only; the pcap stays whole."],
    ["skip", None, None, "Hide these Redis commands, e.g. PING,INFO (console and JSON only)."],
    ["http-filter", None, None,
     "Show only HTTP exchanges matching '[METHOD[,METHOD...]] [PATH-GLOB]', e.g. "
     "'GET /api/*', 'POST,PUT', '/static/*' (the glob matches the request target, query "
     "included; console and JSON only)."],
    ["lifecycle", None, "auto",
     "Console lines for each connection's open, protocol, FIN and close: show, hide, or auto "
     "(hidden when --only, --skip or --http-filter is given, shown otherwise). JSON keeps "
     "them.", lambda v: _choice("--lifecycle", v, LIFECYCLE_CHOICES)],
    ["max-value", None, 200,
     "Show at most this many bytes of any value, with its full length (0 = up to 64 KiB). "
     "The RESP decoder keeps no more of a long value: its memory per connection does not "
     "grow with the traffic."],
    ["max-frame", None, 512 * MIB,
     "Largest RESP frame the decoder accepts (bytes); a larger one turns that direction to hex."],
    ["slow-sink", None, None,
     "When the console's stdout cannot keep up: block (wait for it; every record is kept, "
     "forwarding waits too) or drop (never wait: records are dropped while the reader is behind, "
     "and a line says how many when it catches up and at close). Default: block when stdout is "
     "a regular file, drop for a pipe or a terminal."],
]
OPT_PARAMETERS += web.OPT_PARAMETERS
SLOW_SINK_CHOICES = ("block", "drop")
OPT_FLAGS = [
    ["no-redact", None,
     "Show passwords in clear: AUTH, HELLO AUTH, MIGRATE AUTH/AUTH2, CONFIG SET "
     "requirepass/masterauth (and CONFIG GET's answer), ACL SETUSER, SENTINEL SET auth-pass "
     "and CONFIG SET sentinel-pass, and HTTP Authorization, Proxy-Authorization, Cookie, "
     "Set-Cookie and X-Api-Key (and alike) values, credential query values (token=, "
     "api_key=... in a request target, Referer or Location), also where a body echoes them "
     "(redacted by default in console and JSON, text and hex views included; commands, headers "
     "and CONFIG GET answers also masked in the pcap)."],
    ["quiet", None, "No console view (--json and --pcap are still written)."],
]


def opt_verbose(opts):
    """More HTTP detail on the console, like curl: -v adds the request and response headers
    (secrets redacted), -vv also the start of each body (--max-value bytes)."""
    opts["verbose"] = opts.get("verbose", 0) + 1


def _choice(flag: str, value, choices) -> str:
    chosen = str(value).lower()
    if chosen not in choices:
        raise usage.UsageError(f"{flag}: choose one of {', '.join(choices)}; got {value!r}")
    return chosen


def shows_lifecycle(opts) -> bool:
    """Does the console show open/protocol/FIN/close lines (``--lifecycle``)?"""
    lifecycle = opts.get("lifecycle", "auto")
    if lifecycle == "auto":
        return not (opts["only"] or opts["skip"] or opts["http-filter"])
    return lifecycle == "show"


def _byte_option(opts, flag: str) -> int:
    return byte_count(f"--{flag}", opts[flag])


def _commands(value) -> frozenset | None:
    if not value:
        return None
    names = frozenset(w.strip().upper().encode() for w in str(value).split(",") if w.strip())
    return names or None


def check_options(opts) -> None:
    """Validate and normalise the decoding options in place; UsageError names the flag."""
    decode = str(opts["decode"]).lower()
    if decode not in DECODE_CHOICES:
        raise usage.UsageError(f"--decode: choose one of {', '.join(DECODE_CHOICES)}; "
                               f"got {opts['decode']!r}")
    opts["decode"] = decode
    color = str(opts["color"]).lower()
    if color not in COLOR_CHOICES:
        raise usage.UsageError(f"--color: choose one of {', '.join(COLOR_CHOICES)}; "
                               f"got {opts['color']!r}")
    opts["color"] = color
    slow = opts["slow-sink"]
    if slow is not None:
        slow = str(slow).lower()
        if slow not in SLOW_SINK_CHOICES:
            raise usage.UsageError(f"--slow-sink: choose block or drop; got {opts['slow-sink']!r}")
        opts["slow-sink"] = slow
    opts["max-value"] = _byte_option(opts, "max-value")
    opts["max-frame"] = _byte_option(opts, "max-frame")
    if opts["max-frame"] < 1024:
        raise usage.UsageError("--max-frame: must be at least 1024 bytes")
    if decode == "none" and opts["json"]:
        raise usage.UsageError("--json needs decoding: drop --decode none")
    if decode == "none" and (opts["only"] or opts["skip"] or opts["http-filter"]):
        raise usage.UsageError("--only/--skip/--http-filter need decoding: drop --decode none")
    if opts["http-filter"]:
        try:
            HttpFilter(opts["http-filter"])
        except ValueError as e:
            raise usage.UsageError(f"--http-filter: {e}")
    for flag in ("json", "pcap"):
        path = opts[flag]
        if path is not None and not str(path).strip():
            raise usage.UsageError(f"--{flag}: give a file name")
    for flag in ("json", "pcap"):
        if opts[flag] is not None and str(opts[flag]) in _STDOUT_NAMES:
            opts[flag] = "-"  # stdout by any name: the console and twistd's log step aside
    if opts["json"] and opts["pcap"] and opts["json"] != "-" and _same_file(
            str(opts["json"]), str(opts["pcap"])):
        raise usage.UsageError("--json and --pcap must be different files")
    if opts["pcap"] == "-":
        raise usage.UsageError("--pcap: write to a file, not stdout")
    directory = run_directory(opts)  # where the sinks will open them
    for flag in ("json", "pcap"):
        if opts[flag] and opts[flag] != "-" and directory is not None:
            check_writable(f"--{flag}", str(opts[flag]), directory)
    web.check_options(opts)
    if decode != "none" and _stdout_closed():
        what = "--json -" if opts["json"] == "-" else "the console view"
        raise usage.UsageError(f"standard output is closed: {what} writes there; "
                               "redirect it (>/dev/null) instead of closing it")


def _stdout_closed() -> bool:
    """Was the process started with its standard output closed (``>&-``)?"""
    import sys

    if sys.__stdout__ is None:
        return True
    try:
        os.fstat(1)
    except OSError:
        return True
    return False
_STDOUT_NAMES = frozenset({"/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"})


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (``out`` and ``./out``, a link and its target)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist yet
        return os.path.realpath(a) == os.path.realpath(b)


def shows_console(opts) -> bool:
    """Whether the options ask for the console view."""
    return opts["decode"] != "none" and not opts["quiet"] and opts["json"] != "-"


# the web view's endpoints whose listening socket the proxy hands to a decoder child
WEB_IN_CHILD = ("tcp", "tcp6", "unix")


def web_in_child(opts) -> bool:
    """Whether ``--web`` (checked: an endpoint string) can be served by a decoder child: its
    socket, bound here, is one the child adopts (TCP or UNIX; ``ssl:`` is served here)."""
    return bool(opts.get("web")) and listen_parts(opts["web"])[0] in WEB_IN_CHILD


def reads_decoder_here(opts) -> list[str]:
    """The flags given that read the decoder in the proxy's own process (faults, the toxiproxy
    API, the command stats of ``--metrics``/``--stats-interval``, a web view on ``ssl:``): a
    decoder child would leave them nothing. (A web view on TCP or UNIX is served by the child.)"""
    here = [f"--{key}" for key in ("fault", "api", "metrics", "stats-interval") if opts.get(key)]
    if opts.get("web") and not web_in_child(opts):
        here.append("--web")
    return here


def child_by_default(opts, stats=None) -> bool:
    """Whether the proxy decodes in a child process without being told (``--decode-process``):
    on a machine with more than one core, unless ``--decode-inline`` says not to, or something
    reads the decoder in this process (``reads_decoder_here``, or ``stats``: a serve's shared
    registry)."""
    return bool(not opts.get("decode-process") and not opts.get("decode-inline")
                and stats is None and (os.cpu_count() or 1) > 1 and not reads_decoder_here(opts))


def observes(opts, stats=None) -> bool:
    """Whether the options ask for anything an observer makes: a pcap, the web view, or, with
    decoding, JSON, the console view or ``stats`` (``--quiet`` alone, or ``--decode none``
    alone, asks for nothing)."""
    decoded = opts["json"] or shows_console(opts) or stats is not None
    return bool(opts["pcap"] or opts.get("web") or (opts["decode"] != "none" and decoded))


def build(opts, reactor=None, stats=None):
    """The sink services and the observer for the proxy, from checked options.

    Returns ``(services, observer)``; ``observer`` is None when nothing is to be observed
    (``observes``: then the pairs may splice kernel to kernel). ``stats`` (a
    ``statssink.StatsSink``, optional) gets the same records as the other sinks, unless
    decoding is off.
    """
    in_child = opts.get("decode-process")
    if not observes(opts, None if in_child else stats):  # no record of a child's comes back
        return [], None
    if in_child:
        from playground.proxy.decoderprocess import DecoderProcess

        process = DecoderProcess(opts, reactor=reactor)
        return [process], process
    services = []
    sinks = []
    pcap = None
    redact = not opts["no-redact"]
    if opts["pcap"]:
        from playground.sinks.pcapsink import PcapSink

        pcap = PcapSink(opts["pcap"], reactor=reactor, target=opts.get("target"),
                        listen=opts.get("listen"), decode=opts["decode"])
        services.append(pcap)
    from playground.codec.parser import STREAM_MIN

    # 0: values whole up to what the RESP decoder keeps of a long one, then cut there
    shown = opts["max-value"] or STREAM_MIN
    view = None
    if opts.get("web"):
        from playground.web.service import WebService

        view = WebService(opts, reactor=reactor, max_value=min(shown, 1024))
        services.append(view)
        # the web view gets the bytes the pcap gets: same hold-back, same masks
        pcap = view.sink if pcap is None else ByteTee([pcap, view.sink])
    decode = opts["decode"]
    if decode == "none" and not redact:
        return services, pcap
    if decode != "none":
        if opts["json"]:
            from playground.sinks.jsonlines import JsonSink

            sinks.append(JsonSink(opts["json"], max_value=shown, reactor=reactor))
        if shows_console(opts):
            from playground.sinks.console import ConsoleSink

            sinks.append(ConsoleSink(color=opts["color"], max_value=shown,
                                     reactor=reactor, verbose=opts.get("verbose", 0),
                                     lifecycle=shows_lifecycle(opts),
                                     slow_sink=opts["slow-sink"]))
    services.extend(sinks)
    if stats is not None and decode != "none":
        sinks.append(stats)  # a plain sink, not a service
    if view is not None and decode != "none":
        sinks.append(view.sink)  # its service is above
    from playground.sinks.sharedbatch import shared

    chain = Chain(
        shared(sinks),  # console and JSON on one queue: each batch looked at once
        pcap=pcap,
        decode="auto" if decode == "none" else decode,
        redact=redact,
        only=_commands(opts["only"]),
        skip=_commands(opts["skip"]),
        http_filter=HttpFilter(opts["http-filter"]) if opts["http-filter"] else None,
        max_value=opts["max-value"],
        max_frame=opts["max-frame"],
    )
    return services, chain
