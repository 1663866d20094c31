"""``tcpplay-replay CAPTURE --target ADDR`` (also ``python -m playground replay``): replay the
Redis and HTTP connections of a capture against a server and report what changed.

Reads the capture (``capture``), picks the connections ``--select`` names, decodes each into
requests and recorded replies (``compare``), replays them (``run``), compares, and prints one
line per difference, a summary table, or with ``--json`` one JSON object. Exit status: 0 when
every reply is the same (exactly, or once ``--ignore`` drops volatile values), 1 when something
differs or a connection could not be compared (a replay stopped by Ctrl-C or SIGTERM: each
session is compared as far as it went), 2 for a capture that cannot be read, a bad flag,
a secret the capture masks that no ``--auth``/``--header`` supplies (never printed), or a target
that cannot be reached (one line: the target and the reason).
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import sys
import traceback
from collections import Counter

import attrs
from twisted.internet import task
from twisted.python import usage

from playground.common.addresses import client_target
from playground.common.addresstext import format_address
from playground.common.openfiles import SPARE, raise_open_files
from playground.common.options import ArgumentParser, byte_count, non_negative_float, positive_int
from playground.replay import compare as C
from playground.replay.capture import read_capture
from playground.replay.reassembly import C2S, CaptureError, Tracker
from playground.replay.run import ReplyBudget, Session, replay

EXAMPLES = """examples:
  tcpplay-replay session.pcap --target 6379
  tcpplay-replay session.pcap --target 127.0.0.1:6380 --select resp --ignore TIME,INFO
  tcpplay-replay web.pcap --target 8080 --host localhost:8080 --ignore Date --ignore '$.id'
  tcpplay-replay login.pcap --target 6379 --auth "$REDIS_PASSWORD" --json
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Replay the Redis and HTTP connections of a capture (pcap, pcapng or "
                    "tcpplay's JSON lines) against a server and compare its replies with the "
                    "recorded ones. Exit status 0: nothing differs; 1: something differs; "
                    "2: a bad capture or flag, or a target that cannot be reached.")
    p.add_argument("capture", metavar="CAPTURE", help="pcap, pcapng or tcpplay --json file")
    p.add_argument("--target", "-t", required=True,
                   help="where to replay: PORT, HOST:PORT or a client endpoint string")
    p.add_argument("--select", action="append", default=[], metavar="WHAT",
                   help="connections to replay, comma-separated: a number (3), a range (2-5), "
                        "port:N (client or server port), resp or http; repeatable "
                        "[default: all]")
    p.add_argument("--pipelined", action="store_true",
                   help="send requests as recorded instead of waiting for each reply")
    p.add_argument("--speed", default="1x",
                   help="1x keeps the recorded gaps, Nx divides them by N (0.000001x to "
                        "1000000x), max sends at once [default: 1x]")
    p.add_argument("--concurrency", default=1, metavar="N",
                   help="connections replayed at once [default: 1]")
    p.add_argument("--timeout", default=10.0, metavar="SECONDS",
                   help="wait this long for a connection or a reply [default: 10]")
    p.add_argument("--ignore", action="append", default=[], metavar="RULES",
                   help="volatile values, comma-separated: a Redis command glob (TIME, INFO, "
                        "CLIENT*), an HTTP header glob (Date), a JSON path ($.id, $.items[*].ts, "
                        "$..ts); repeatable")
    p.add_argument("--auth", metavar="PASS",
                   help="the password of AUTH and HELLO ... AUTH, where the capture masks it")
    p.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="set this header on every HTTP request (replacing one of that name), "
                        "e.g. a masked Authorization; repeatable")
    p.add_argument("--host", help="rewrite the Host header of every HTTP request")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (differences, per-connection counts, totals)")
    p.add_argument("--max-connections", default=10_000, metavar="N",
                   help="refuse a capture with more TCP connections [default: 10000]")
    p.add_argument("--max-bytes", default=512 * 1024 * 1024, metavar="N",
                   help="refuse a capture holding more TCP payload, and read no more replies "
                        "than this in all [default: 536870912]")
    return p


# -- the command-line values -------------------------------------------------------------------

MIN_SPEED = 0.000001  # each recorded gap a million times longer (a millisecond: 17 minutes)
MAX_SPEED = 1_000_000  # faster is "max" (no waiting) in all but name


def parse_speed(text: str) -> float | None:
    """``1x``, ``2.5x``, ``max`` (None), in ASCII digits, ``MIN_SPEED`` to ``MAX_SPEED``;
    ValueError otherwise (a speed of 1e-300 made every gap 10**300 times longer: the replay
    never ended, and one of 400 digits read as inf)."""
    text = text.lower()
    if text == "max":
        return None
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)x?", text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--speed: {text[:40]!r} is not 1x, Nx (N from {MIN_SPEED:.6f} to "
                         f"{MAX_SPEED}) or max")
    speed = float(m.group(1))
    if speed < MIN_SPEED:
        raise ValueError(f"--speed: must be at least {MIN_SPEED:.6f}x (each recorded gap "
                         f"{1 / MIN_SPEED:.0f} times longer), got {text[:40]!r}")
    if speed > MAX_SPEED:
        raise ValueError(f"--speed: must be at most {MAX_SPEED}x (max: no waiting at all), "
                         f"got {text[:40]!r}")
    return speed


@attrs.frozen
class Selection:
    numbers: frozenset = frozenset()
    ranges: tuple = ()
    ports: frozenset = frozenset()
    protocols: frozenset = frozenset()

    @classmethod
    def parse(cls, values) -> Selection:
        numbers, ranges, ports, protocols = set(), [], set(), set()
        for value in values:
            for item in filter(None, (x.strip().lower() for x in value.split(","))):
                if re.fullmatch(r"[0-9]{1,18}", item):  # not \d: '²' is one to re, not to int
                    numbers.add(int(item))
                elif m := re.fullmatch(r"([0-9]{1,18})-([0-9]{1,18})", item):
                    low, high = int(m.group(1)), int(m.group(2))
                    if low > high:  # else it silently selects nothing
                        raise ValueError(f"--select: the range {item!r} is backwards "
                                         f"(write {high}-{low})")
                    ranges.append((low, high))
                elif m := re.fullmatch(r"port:([0-9]{1,18})", item):
                    ports.add(int(m.group(1)))
                elif item in ("resp", "redis", "http"):
                    protocols.add("resp" if item == "redis" else item)
                else:
                    raise ValueError(f"--select: cannot read {item[:40]!r} (a number, a range 2-5, "
                                     f"port:N, resp or http)")
        return cls(frozenset(numbers), tuple(ranges), frozenset(ports), frozenset(protocols))

    @property
    def everything(self) -> bool:
        return not (self.numbers or self.ranges or self.ports or self.protocols)

    def picks(self, conn, protocol: str) -> bool:
        if self.everything:
            return True
        n = conn.number
        return (n in self.numbers or any(a <= n <= b for a, b in self.ranges)
                or conn.client[1] in self.ports or conn.server[1] in self.ports
                or protocol in self.protocols)


def _ignore_rules(values) -> C.Rules:
    try:
        return C.Rules.parse(values)
    except ValueError as e:
        raise ValueError(f"--ignore: {e}") from None


def parse_header(text: str) -> tuple[bytes, bytes]:
    name, colon, value = text.partition(":")
    if not colon or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name.strip()):
        raise ValueError(f"--header: {text!r} is not 'Name: value'")
    return name.strip().encode(), value.strip().encode()


# -- one connection's plan and its result --------------------------------------------------------

@attrs.define
class Item:
    """A selected connection: what was recorded, what to send, and how the replay went."""

    conn: object
    decoded: C.Decoded
    requests: list = attrs.field(factory=list)
    problem: str | None = None  # why it was not replayed, or why it cannot be compared
    outcomes: list = attrs.field(factory=list)
    error: str | None = None  # how the replay went wrong
    unreachable: str | None = None  # why the target could not be reached
    replayed: bool = False
    interrupted: bool = False  # the replay stopped (Ctrl-C, SIGTERM) before this one ended
    seconds: float = 0.0  # from connecting to the end of the replay

    def count(self, verdict: str) -> int:
        return sum(1 for o in self.outcomes if o.verdict == verdict)

    @property
    def failed(self) -> bool:
        # a problem counts where the replay had something to check: Redis, HTTP, or a stream
        # whose protocol a hole at its start hides
        checked = self.decoded.protocol in ("resp", "http", "none")
        return bool(self.error or (self.problem and checked)
                    or any(o.verdict in (C.DIFFERENT, C.MISSING) for o in self.outcomes))


def _address(side: tuple) -> str:
    return format_address(side[0], side[1])


def prepare(conns, selection: Selection, secrets: C.Secrets) -> tuple[list, list]:
    """``(items, missing secrets)`` for the selected connections."""
    items, missing = [], []
    for conn in conns:
        client = conn.stream(C2S)
        protocol = C.protocol_of(client[:4096]) if client else "none"
        if not selection.picks(conn, protocol):
            continue
        if conn.problem:
            items.append(Item(conn, C.Decoded(protocol, []), problem=conn.problem))
            continue
        if not client and not conn.gaps:
            continue  # nothing was asked
        decoded = C.decode(conn.chunks, protocol)
        item = Item(conn, decoded)
        if conn.gaps:
            g = conn.gaps[0]
            side = "client" if g.direction == C2S else "server"
            item.problem = (f"the capture misses {g.size} bytes of the {side} stream at offset "
                            f"{g.offset} ({g.reason})")
        elif decoded.problem:
            item.problem = decoded.problem
        else:
            item.requests, lacking = C.plan(decoded, client, secrets)
            missing += [f"connection {conn.number}: {line}" for line in lacking]
        items.append(item)
    return items, missing


# -- output ------------------------------------------------------------------------------------

def text_report(items: list, out) -> None:
    for item in items:
        conn = item.conn
        head = (f"connection {conn.number} {_address(conn.client)} -> {_address(conn.server)} "
                f"({item.decoded.protocol})")
        if item.problem and not item.replayed:
            print(f"{head}: not replayed: {item.problem}", file=out)
            continue
        differing = [o for o in item.outcomes if o.line]
        n = len(item.outcomes)
        status = f"{n} repl{'y' if n == 1 else 'ies'}, {len(differing)} differ"
        print(f"{head}: {status}" + (f"; {item.error}" if item.error else ""), file=out)
        for o in differing:
            print(f"  {o.line}", file=out)
    rows = [("conn", "client", "protocol", "requests", "exact", "ignored", "different",
             "no reply", "result")]
    for item in items:
        rows.append((str(item.conn.number), _address(item.conn.client), item.decoded.protocol,
                     str(len(item.outcomes)), str(item.count(C.EXACT)),
                     str(item.count(C.IGNORED)), str(item.count(C.DIFFERENT)),
                     str(item.count(C.MISSING)), _result(item)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(file=out)
    for r in rows:
        print("  ".join(c.rjust(w) if c.isdigit() else c.ljust(w)
                        for c, w in zip(r, widths, strict=True)).rstrip(), file=out)
    totals = _totals(items)
    n = totals["requests"]
    print(f"\n{n} repl{'y' if n == 1 else 'ies'} compared: {totals['exact']} exact, "
          f"{totals['ignored']} equal ignoring volatile values, {totals['different']} different, "
          f"{totals['missing']} without a reply; {totals['failed']} of {len(items)} "
          f"connection(s) differ or failed", file=out)


def _result(item: Item) -> str:
    if item.problem and not item.replayed:
        return "not compared" if item.failed else "skipped"
    if item.error:
        return "error"
    return "differs" if item.failed else "same"


def _totals(items: list) -> dict:
    return {"requests": sum(len(i.outcomes) for i in items),
            "exact": sum(i.count(C.EXACT) for i in items),
            "ignored": sum(i.count(C.IGNORED) for i in items),
            "different": sum(i.count(C.DIFFERENT) for i in items),
            "missing": sum(i.count(C.MISSING) for i in items),
            "failed": sum(1 for i in items if i.failed)}


def json_report(items: list, capture: str, target: str) -> dict:
    conns = []
    for item in items:
        conns.append({
            "connection": item.conn.number, "client": _address(item.conn.client),
            "server": _address(item.conn.server), "protocol": item.decoded.protocol,
            "result": _result(item), "problem": item.problem, "error": item.error,
            "requests": len(item.outcomes), "exact": item.count(C.EXACT),
            "ignored": item.count(C.IGNORED), "different": item.count(C.DIFFERENT),
            "missing": item.count(C.MISSING), "seconds": round(item.seconds, 6),
            "differences": [{"request": o.number, "label": o.label, "verdict": o.verdict,
                             "line": o.line} for o in item.outcomes if o.line]})
    totals = _totals(items)
    return {"capture": capture, "target": target, "connections": conns, "totals": totals,
            "same": totals["failed"] == 0}


# -- main --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None, prog: str = "tcpplay-replay") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        target = client_target(args.target, "--target").desc
        speed = parse_speed(args.speed)
        selection = Selection.parse(args.select)
        rules = _ignore_rules(args.ignore)
        headers = tuple(parse_header(h) for h in args.header)
        concurrency = positive_int("--concurrency", args.concurrency)
        timeout = non_negative_float("--timeout", args.timeout)
        if timeout == 0:
            raise ValueError(f"--timeout: must be more than 0 seconds, got {args.timeout!r}")
        limits = Tracker(positive_int("--max-connections", args.max_connections),
                         byte_count("--max-bytes", args.max_bytes, minimum=1))
    except (usage.UsageError, ValueError) as e:
        parser.error(str(e))
    secrets = C.Secrets(args.auth.encode() if args.auth is not None else None, headers,
                        args.host.encode() if args.host is not None else None)
    # Reading and decoding make an object or two per segment and per request, none in a cycle:
    # the cyclic GC would only rescan them, again and again. Frozen afterwards, the replay's
    # collections leave them out too.
    gc.disable()
    try:
        capture = read_capture(args.capture, limits)
        items, missing = prepare(capture.connections, selection, secrets)
    except CaptureError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # nothing replayed yet: nothing to report
        print(f"{prog}: interrupted while reading {args.capture}", file=sys.stderr)
        return 130
    finally:
        gc.freeze()
        gc.enable()
    if missing:
        print(f"{prog}: the capture masks secrets the replay needs:", file=sys.stderr)
        for line in missing:
            print(f"  {line}", file=sys.stderr)
        return 2
    if not items:
        print(f"{prog}: {args.capture}: no connection with requests is selected "
              f"({len(capture.connections)} in the capture)", file=sys.stderr)
        return 2
    runnable = [i for i in items if i.requests and not i.problem]
    at_once = min(concurrency, len(runnable))
    limit = raise_open_files(at_once + SPARE)
    if limit is not None and limit < at_once + SPARE:  # else connections past it fail, EMFILE
        print(f"{prog}: --concurrency {concurrency}: {at_once} connections at once need about "
              f"{at_once + SPARE} open files, the limit is {limit}: lower --concurrency or "
              f"raise the limit (ulimit -n)", file=sys.stderr)
        return 2
    if runnable:
        if not args.json:
            print(f"replaying {len(runnable)} connection(s) of {args.capture} to {target}",
                  file=sys.stderr)
        try:
            task.react(_run, (runnable, target, speed, args.pipelined, timeout, concurrency,
                              rules, sys.stderr.isatty() and not args.json, limits.max_bytes))
        except SystemExit as e:
            if e.code not in (0, None):  # a defect, not bad input: react logged nothing visible
                print(f"{prog}: the replay stopped on an internal error", file=sys.stderr)
                return 2
        stopped = sum(1 for i in runnable if i.interrupted)
        if stopped:
            print(f"{prog}: interrupted: {stopped} of {len(runnable)} connection(s) did not "
                  f"finish", file=sys.stderr)
        reasons = Counter(i.unreachable for i in runnable)
        if None not in reasons:  # no connection was made: nothing was compared
            print(f"{prog}: cannot connect to {target}: {reasons.most_common(1)[0][0]}",
                  file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(json_report(items, args.capture, target), ensure_ascii=False))
    else:
        text_report(items, sys.stdout)
    return 1 if any(i.failed for i in items) else 0


async def _run(reactor, *args):
    try:
        await _replay_all(reactor, *args)
    except Exception:
        traceback.print_exc()  # a defect: show where, then react exits 1
        raise


async def _replay_all(reactor, runnable, target, speed, pipelined, timeout, concurrency, rules,
                      show_progress, max_bytes):
    budget = ReplyBudget(max_bytes)  # the replies, kept for the comparison, as the capture
    sessions = [Session(i.conn.number, i.decoded.protocol, i.requests, target, speed, pipelined,
                        timeout, reactor, budget) for i in runnable]
    for item, session in zip(runnable, sessions, strict=True):  # kept as each one ends
        session.done.addCallback(_record, item, rules)
    if show_progress:
        finished = [0]

        def tick(result):
            finished[0] += 1
            sys.stderr.write(f"\r{finished[0]}/{len(sessions)} connection(s) replayed")
            if finished[0] == len(sessions):
                sys.stderr.write("\n")
            return result

        for session in sessions:
            session.done.addCallback(tick)
    # a stop before the end (Ctrl-C, SIGTERM) ends the sessions still open or waiting: what
    # they saw is reported, not lost with them
    stopping = reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: [session.interrupt() for session in sessions])
    try:
        await replay(sessions, [i.conn.started for i in runnable], speed, concurrency, reactor)
    finally:
        reactor.removeSystemEventTrigger(stopping)


def _record(result, item: Item, rules: C.Rules):
    """A session's result on its item: replies compared with the recorded ones it asked for."""
    item.seconds = result.seconds
    item.unreachable = result.unreachable
    item.interrupted = result.interrupted
    if result.interrupted and not result.sent:
        item.problem = "the replay was interrupted before it sent anything"
        return result
    item.replayed = True
    item.error = result.error
    # a session that ended early (its error says after how many) has nothing to compare for the
    # requests it never sent: they were not left unanswered
    item.outcomes = C.compare(item.decoded.exchanges[:result.sent], result.decoded.exchanges,
                              rules)
    return result


if __name__ == "__main__":
    sys.exit(main())
