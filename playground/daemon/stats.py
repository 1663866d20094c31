"""Counters and latency histograms for the running services, and their Prometheus/JSON forms.

Pure (no Twisted, no clock, no I/O). Everything is bounded: a ``Histogram`` is a fixed array of
logarithmic buckets (about 4.4% relative error, 1 microsecond to about 2 minutes), and
``CommandStats`` keeps at most ``max_names`` distinct command names (further names are counted
under ``OTHER``), so a client sending garbage cannot grow the process.

A *snapshot* is a plain dict (the ``/metrics.json`` body); ``prometheus_text(snapshots)`` renders a
list of them in the Prometheus text exposition format (version 0.0.4). Scraping again costs what
changed: a histogram keeps its summary until it observes more, ``CommandStats`` adds only the
changed commands into its all-commands histogram, and a command's Prometheus lines are kept
(a bounded cache) while its figures stay the same.
"""

from __future__ import annotations

import math
import re

QUANTILES = (0.5, 0.9, 0.99)
OTHER = "OTHER"
UNKNOWN = "UNKNOWN"

_MIN = 1e-6  # seconds: the lower edge of the first bucket
_GROWTH = 2 ** (1 / 8)  # bucket width ratio: the estimate is within ~4.4% of the true value
_BUCKETS = 216  # 1e-6 * 2**(216/8) = 134 s; slower goes to the last bucket
_INV_LOG_GROWTH = 1 / math.log(_GROWTH)
_INV_MIN = 1 / _MIN
_log = math.log
_NAME = re.compile(rb"^[A-Za-z][A-Za-z0-9_.:|-]{0,31}$")


class Histogram:
    """Latency distribution in fixed log buckets; ``quantile(q)`` estimates within ~4.4%."""

    __slots__ = ("counts", "count", "sum", "min", "max", "_summary")

    def __init__(self):
        self.counts = [0] * _BUCKETS
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = 0.0
        self._summary = None  # (count, summary): a scrape re-uses it while nothing was observed

    def observe(self, seconds: float) -> None:
        if seconds > _MIN:
            i = int(_log(seconds * _INV_MIN) * _INV_LOG_GROWTH)
            if i >= _BUCKETS:
                i = _BUCKETS - 1
        else:
            i = 0
            if not seconds > 0.0:  # also NaN
                seconds = 0.0
        self.counts[i] += 1
        self.count += 1
        self.sum += seconds
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1), or None when empty. Exact at the extremes (min/max)."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs) -> list:
        """``quantile`` of each of ``qs`` (ascending), in one pass over the buckets."""
        if not self.count:
            return [None] * len(qs)
        out = []
        ranks = [q * self.count for q in qs]
        k = 0
        seen = 0
        for i, n in enumerate(self.counts):
            if not n:
                continue
            seen += n
            while k < len(ranks) and seen >= ranks[k]:
                if i == _BUCKETS - 1:  # the overflow bucket has no upper edge
                    out.append(self.max)
                else:
                    # the bucket's geometric middle, clamped to what was actually observed
                    mid = _MIN * _GROWTH ** (i + 0.5) if i else _MIN / 2
                    out.append(min(max(mid, self.min), self.max))
                k += 1
            if k == len(ranks):
                return out
        return out + [self.max] * (len(ranks) - k)

    def merge(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def summary(self) -> dict:
        """Count, sum and ``QUANTILES``; kept until the next ``observe``/``merge`` (a scrape
        costs little for the commands that saw no traffic since the last one)."""
        cached = self._summary
        if cached is not None and cached[0] == self.count:
            return cached[1]
        summary = {
            "count": self.count,
            "sum": self.sum,
            "quantiles": dict(zip(_QNAMES, self.quantiles(QUANTILES), strict=True)),
        }
        self._summary = (self.count, summary)
        return summary


def _qname(q: float) -> str:
    return format(q, "g")


_QNAMES = tuple(_qname(q) for q in QUANTILES)


def command_name(arg) -> str:
    """A Redis command or HTTP method as a metric label: upper case, or ``UNKNOWN``."""
    if isinstance(arg, str):
        arg = arg.encode("utf-8", "replace")
    if isinstance(arg, (bytes, bytearray)) and _NAME.match(arg):
        return bytes(arg).decode("ascii").upper()
    return UNKNOWN


def error_code(message) -> str:
    """The code of a Redis error reply (its first word, ``ERR``, ``WRONGTYPE`` ...)."""
    if isinstance(message, (bytes, bytearray)):
        word = bytes(message).split(b" ", 1)[0]
        if word and _NAME.match(word):
            return word.decode("ascii").upper()
    return UNKNOWN


class Command:
    """One command's figures; ``StatsSink`` updates these fields directly (the hot path)."""

    __slots__ = ("count", "errors", "latency")

    def __init__(self):
        self.count = 0
        self.errors = 0
        self.latency = Histogram()


class CommandStats:
    """Per protocol and command name: count, error replies, latency histogram; error codes and
    HTTP statuses counted apart. Names beyond ``max_names`` are counted as ``OTHER``."""

    def __init__(self, max_names: int = 200):
        self.max_names = max_names
        self.commands: dict[tuple[str, str], Command] = {}
        self.error_codes: dict[tuple[str, str], int] = {}  # (protocol, code) -> n
        self.statuses: dict[tuple[str, int], int] = {}  # (method, status) -> n
        self.unanswered = 0
        # every command's latencies together, kept up to date at snapshot time from what each
        # command observed since (not re-merged from all of them on every scrape)
        self._all = Histogram()
        self._merged: dict[tuple[str, str], tuple[int, list]] = {}  # key -> (count, counts)

    def entry(self, protocol: str, name: str) -> Command:
        """The ``Command`` for a name (``OTHER`` once ``max_names`` names exist)."""
        key = (protocol, name)
        c = self.commands.get(key)
        if c is None:
            if len(self.commands) >= self.max_names:
                key = (protocol, OTHER)
                c = self.commands.get(key)
                if c is not None:
                    return c
            c = self.commands[key] = Command()
        return c

    def error(self, protocol: str, code: str) -> None:
        key = (protocol, code)
        if key not in self.error_codes and len(self.error_codes) >= self.max_names:
            key = (protocol, OTHER)
        self.error_codes[key] = self.error_codes.get(key, 0) + 1

    def record(self, protocol: str, name: str, error: bool, latency: float | None,
               code: str | None = None) -> None:
        c = self.entry(protocol, name)
        c.count += 1
        if error:
            c.errors += 1
            if code is not None:
                self.error(protocol, code)
        if latency is not None:
            c.latency.observe(latency)

    def http_status(self, method: str, status: int) -> None:
        key = (method, status)
        if key not in self.statuses and len(self.statuses) >= self.max_names:
            key = (OTHER, status)
        self.statuses[key] = self.statuses.get(key, 0) + 1

    @property
    def count(self) -> int:
        return sum(c.count for c in self.commands.values())

    @property
    def errors(self) -> int:
        return sum(c.errors for c in self.commands.values())

    def _everything(self) -> Histogram:
        """All commands' latencies in one histogram: only the commands with new observations
        since the last call are added (their bucket differences)."""
        agg = self._all
        merged = self._merged
        changed = False
        for key, c in self.commands.items():
            h = c.latency
            seen = merged.get(key)
            if seen is not None and seen[0] == h.count:
                continue
            counts = agg.counts
            if seen is None:
                for i, n in enumerate(h.counts):
                    if n:
                        counts[i] += n
            else:
                for i, (n, old) in enumerate(zip(h.counts, seen[1], strict=True)):
                    if n != old:
                        counts[i] += n - old
            merged[key] = (h.count, list(h.counts))
            agg.min = min(agg.min, h.min)
            agg.max = max(agg.max, h.max)
            changed = True
        if changed:
            agg.count = sum(c.latency.count for c in self.commands.values())
            agg.sum = sum(c.latency.sum for c in self.commands.values())
        return agg

    def snapshot(self) -> dict:
        everything = self._everything()
        return {
            "count": self.count,
            "errors": self.errors,
            "unanswered": self.unanswered,
            "latency": everything.summary(),
            "commands": [
                {"protocol": p, "command": n, "count": c.count, "errors": c.errors,
                 "latency": c.latency.summary()}
                for (p, n), c in sorted(self.commands.items())
            ],
            "error_replies": [
                {"protocol": p, "error": code, "count": n}
                for (p, code), n in sorted(self.error_codes.items())
            ],
            "http_responses": [
                {"method": m, "status": s, "count": n}
                for (m, s), n in sorted(self.statuses.items())
            ],
        }


# -- Prometheus text format ---------------------------------------------------------------


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


# (name, type, help) in the order they are written
METRICS = (
    ("tcpplay_service_info", "gauge", "A service of this process (always 1), with its kind."),
    ("tcpplay_start_time_seconds", "gauge", "When the process started, in Unix time."),
    ("tcpplay_connections_open", "gauge", "Client connections open now."),
    ("tcpplay_connections_total", "counter", "Client connections accepted."),
    ("tcpplay_connections_refused_total", "counter",
     "Client connections refused by --max-connections or --max-connections-per-peer."),
    ("tcpplay_bytes_total", "counter",
     "Bytes from clients (direction=c2s) and to clients (direction=s2c)."),
    ("tcpplay_upstream_connect_failures_total", "counter",
     "Proxy: connections to the target that failed or timed out."),
    ("tcpplay_commands_total", "counter",
     "Decoded Redis commands / HTTP requests answered, by protocol and command (HTTP: method)."),
    ("tcpplay_command_errors_total", "counter",
     "Answers that were errors: Redis error replies, HTTP statuses >= 400."),
    ("tcpplay_error_replies_total", "counter", "Redis error replies by error code."),
    ("tcpplay_http_responses_total", "counter", "HTTP responses by method and status."),
    ("tcpplay_unanswered_total", "counter", "Requests still unanswered when their connection closed."),
    ("tcpplay_command_duration_seconds", "summary",
     "Time from a request's last byte to its answer's, by protocol and command."),
)


def prometheus_text(snapshots: list[dict], start_time: float | None = None) -> str:
    """The Prometheus text exposition of service snapshots (see ``metrics.ServiceSource``)."""
    samples: dict[str, list[str]] = {name: [] for name, _, _ in METRICS}

    def add(name, labels, value, suffix=""):
        samples[name].append(f"{name}{suffix}{_labels(**labels)} {_number(value)}")

    for s in snapshots:
        svc = {"service": s["service"]}
        add("tcpplay_service_info", dict(svc, kind=s["kind"]), 1)
        c = s["connections"]
        add("tcpplay_connections_open", svc, c["open"])
        add("tcpplay_connections_total", svc, c["total"])
        add("tcpplay_connections_refused_total", svc, c["refused"])
        b = s.get("bytes")
        if b is not None:
            add("tcpplay_bytes_total", dict(svc, direction="c2s"), b["c2s"])
            add("tcpplay_bytes_total", dict(svc, direction="s2c"), b["s2c"])
        if "upstream_connect_failures" in s:
            add("tcpplay_upstream_connect_failures_total", svc, s["upstream_connect_failures"])
        cmd = s.get("commands")
        if cmd is None:
            continue
        add("tcpplay_unanswered_total", svc, cmd["unanswered"])
        for e in cmd["commands"]:
            total, errors, duration = _command_lines(s["service"], e)
            samples["tcpplay_commands_total"].append(total)
            samples["tcpplay_command_errors_total"].append(errors)
            samples["tcpplay_command_duration_seconds"].extend(duration)
        for e in cmd["error_replies"]:
            add("tcpplay_error_replies_total",
                dict(svc, protocol=e["protocol"], error=e["error"]), e["count"])
        for e in cmd["http_responses"]:
            add("tcpplay_http_responses_total",
                dict(svc, method=e["method"], status=e["status"]), e["count"])
    if start_time is not None:
        samples["tcpplay_start_time_seconds"].append(
            f"tcpplay_start_time_seconds {_number(float(start_time))}")
    out = []
    for name, kind, text in METRICS:
        if samples[name]:
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples[name])
    return "\n".join(out) + "\n"


_LINES: dict = {}  # (service, protocol, command, count, errors) -> _command_lines' result
_MAX_LINES = 4096


def _command_lines(service: str, e: dict) -> tuple:
    """One command's samples: its total line, its errors line, its duration lines. Kept while
    its figures stay the same (a scrape re-renders only the commands that saw traffic)."""
    lat = e["latency"]
    key = (service, e["protocol"], e["command"], e["count"], e["errors"], lat["count"],
           lat["sum"])
    lines = _LINES.get(key)
    if lines is not None:
        return lines
    lab = {"service": service, "protocol": e["protocol"], "command": e["command"]}
    labels = _labels(**lab)
    duration = [f"tcpplay_command_duration_seconds{_labels(**lab, quantile=q)} {_number(v)}"
                for q, v in lat["quantiles"].items()]
    duration.append(f"tcpplay_command_duration_seconds_sum{labels} {_number(lat['sum'])}")
    duration.append(f"tcpplay_command_duration_seconds_count{labels} {_number(lat['count'])}")
    lines = (f"tcpplay_commands_total{labels} {_number(e['count'])}",
             f"tcpplay_command_errors_total{labels} {_number(e['errors'])}", duration)
    if len(_LINES) >= _MAX_LINES:
        _LINES.clear()
    _LINES[key] = lines
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.3g}ms"


def summary_line(s: dict, previous: dict | None = None) -> str:
    """One line for the periodic stats log: connections, bytes, commands, latency, top 3."""
    c = s["connections"]
    parts = [f"conns open={c['open']} total={c['total']} refused={c['refused']}"]
    b = s.get("bytes")
    if b is not None:
        parts.append(f"bytes c2s={b['c2s']} s2c={b['s2c']}")
    cmd = s.get("commands")
    if cmd is not None:
        before = (previous or {}).get("commands") or {"count": 0}
        q = cmd["latency"]["quantiles"]
        parts.append(
            f"commands={cmd['count']} (+{cmd['count'] - before['count']}) errors={cmd['errors']} "
            f"p50={_ms(q['0.5'])} p90={_ms(q['0.9'])} p99={_ms(q['0.99'])}"
        )
        top = sorted(cmd["commands"], key=lambda e: -e["count"])[:3]
        if top:
            parts.append("top " + " ".join(f"{e['command']}={e['count']}" for e in top))
    return " ".join(parts)
