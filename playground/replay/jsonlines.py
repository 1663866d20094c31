"""tcpplay's JSON lines (``proxy --json FILE``, docs/json-schema.md) read back into connections
(pure: no Twisted).

A ``redis`` record holds a command's arguments and its reply as JSON values, so the two streams
can be rebuilt: each command encoded as a RESP array, each reply encoded from its JSON form
(``records.json_value`` inverted). That works only for values the file holds whole: one cut at
``--max-value`` (an object with ``length``) or an aggregate cut at 1000 elements (``{"more":
N}``) makes its connection not replayable, and says so. HTTP records keep only a preview of
each body, so HTTP connections are not rebuilt from JSON lines: record with ``--pcap`` for them.
Connections keep the proxy's pair ids as their numbers; a pair id opened again (``--json``
appends: a file kept across runs of the proxy) is another connection, numbered after the
highest so far. Lines that are not JSON objects are a :class:`CaptureError` naming the line.
"""

from __future__ import annotations

import base64
import json

from playground.codec.encoder import encode, encode_command
from playground.codec.values import Attributed, BigNumber, Error, Map, Push, Set, Simple, Verbatim
from playground.common.digits import decimal
from playground.replay.reassembly import C2S, S2C, Chunk, Connection, Tracker

MAX_LINE = 16 * 1024 * 1024


class _Cut(Exception):
    """A value the file does not hold whole."""


def _bytes(v) -> bytes:
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, dict) and "length" not in v:
        if "base64" in v:
            return base64.b64decode(v["base64"])
        if "text" in v:
            return v["text"].encode("utf-8")
    raise _Cut()


def _value(v):
    """A RESP value from its JSON form (docs/json-schema.md, "Redis values")."""
    if v is None or isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, list):
        return [_value(x) for x in _items(v)]
    if not isinstance(v, dict):
        raise _Cut()
    if "simple" in v:
        return Simple(_bytes(v["simple"]))
    if "error" in v:
        return Error(_bytes(v["error"]))
    if "map" in v:
        return Map(tuple((_value(k), _value(x)) for k, x in _items(v["map"])))
    if "set" in v:
        return Set(tuple(_value(x) for x in _items(v["set"])))
    if "push" in v:
        return Push(tuple(_value(x) for x in _items(v["push"])))
    if "bignum" in v:
        return BigNumber(int(v["bignum"]))
    if "double" in v:
        return float(v["double"])
    if "verbatim" in v:
        return Verbatim(v.get("format", "txt").encode(), _bytes(v["verbatim"]))
    if "attributes" in v:
        return Attributed(_value(v["attributes"]), _value(v["value"]))
    return _bytes(v)


def _items(items: list) -> list:
    if items and isinstance(items[-1], dict) and set(items[-1]) == {"more"}:
        raise _Cut()
    return items


def _address(text) -> tuple:
    host, _, port = str(text or "").rpartition(":")
    return host.strip("[]") or str(text), decimal(port, 5) or 0


def read_jsonlines(f, path: str, tracker: Tracker):
    """The connections of a tcpplay JSON lines file (open, binary)."""
    from playground.replay.capture import Capture, CaptureError

    by_pair: dict[int, Connection] = {}  # the connection a pair id names now
    opened: set[int] = set()  # pair ids whose open record was read
    numbers: set[int] = set()  # the connection numbers given
    highest = 0
    records = 0
    for number, line in enumerate(iter(lambda: f.readline(MAX_LINE + 1), b""), 1):
        if len(line) > MAX_LINE:
            raise CaptureError(f"{path}: line {number} is longer than {MAX_LINE} bytes")
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            kind, pair, ts = r["type"], int(r["pair"]), float(r.get("ts") or 0.0)
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as e:
            raise CaptureError(f"{path}: line {number} is not a tcpplay JSON record ({e})")
        records += 1
        conn = by_pair.get(pair)
        if conn is None or kind == "open" and pair in opened:
            # a pair id opened again: a later run of the proxy, appended to the same file (its
            # connections numbered after every number so far where their ids are taken)
            numbered = pair if conn is None and pair not in numbers else highest + 1
            client = _address(r.get("client"))
            conn = tracker.new_connection(ts, client, _address(r.get("server")), numbered)
            by_pair[pair] = conn
            numbers.add(numbered)
            highest = max(highest, numbered)
        if kind == "open":
            opened.add(pair)
        if kind == "open":
            conn.client, conn.server = _address(r.get("client")), _address(r.get("server"))
        elif kind in ("redis", "redis_unanswered") and conn.problem is None:
            if not isinstance(r.get("command"), list) or not r["command"]:
                # not the --json sink's: the web view's .jsonl download keeps only the text of
                # each exchange ("request"); replayed, it was an empty "*0" and "0 replies: same"
                conn.problem = (f"line {number}: a {kind} record without its command "
                                f"arguments (the web view's .jsonl has only their text): "
                                f"replay the proxy's --json file, its --pcap, or the view's "
                                f".pcap")
                continue
            try:
                command = encode_command(*[_bytes(a) for a in r["command"]])
                latency = r.get("latency") or 0.0
                conn.chunks.append(Chunk(C2S, ts - float(latency), command))
                if kind == "redis":
                    conn.chunks.append(Chunk(S2C, ts, encode(_value(r.get("reply")), 3)))
            except _Cut:
                conn.problem = (f"line {number}: the JSON lines cut a value (at --max-value or "
                                f"1000 elements), so the stream cannot be rebuilt: record with "
                                f"--pcap or a larger --max-value")
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
                raise CaptureError(f"{path}: line {number}: cannot read the record ({e})")
        elif kind == "http" and conn.problem is None:
            conn.problem = ("HTTP records keep only a preview of each body, so the stream "
                            "cannot be rebuilt from JSON lines: record with --pcap")
        elif kind in ("text", "bytes") and conn.problem is None:
            conn.problem = "neither Redis nor HTTP: not replayed"
    return Capture(path, "jsonl", tracker.finish(), records, 0)
