"""What a fault is: toxiproxy's toxic, checked, written three ways (CLI, config, JSON API).

A ``Toxic`` is toxiproxy's model exactly: a ``name``, a ``type``, a ``stream`` (``upstream`` =
client -> server, ``downstream`` = server -> client), a ``toxicity`` (the probability that a new
connection gets it, 0..1) and ``attributes`` (numbers or strings, per type; the units are
toxiproxy's: milliseconds, KB/s, bytes, microseconds for ``slicer``'s ``delay``). tcpplay adds
``down``, ``half_open`` and the protocol-aware ``resp`` and ``http`` types on the same model, so the
API serves them like the others.

``ToxicSet`` is the live, mutable set one proxy holds: the API and the CLI change it, the proxy's
pairs listen to it. Pure: no Twisted, no clock.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

import attrs

from playground.common.digits import decimal
from playground.common.globs import compile_glob

UPSTREAM = "upstream"
DOWNSTREAM = "downstream"
STREAMS = (UPSTREAM, DOWNSTREAM)


class FaultError(ValueError):
    """A fault that cannot be: the message names the field and says what was expected."""


# type -> {attribute: default}; the default's type is the attribute's type (int, float or str).
TOXIC_TYPES: Mapping[str, Mapping[str, object]] = MappingProxyType({
    # toxiproxy's toxics, same attributes and units
    "latency": {"latency": 0, "jitter": 0},                    # ms
    "bandwidth": {"rate": 0},                                  # KB/s
    "slow_close": {"delay": 0},                                # ms
    "timeout": {"timeout": 0},                                 # ms; 0 = never close, hold the data
    "reset_peer": {"timeout": 0},                              # ms
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},  # bytes, bytes, us
    "limit_data": {"bytes": 0},
    # tcpplay's additions
    "down": {"after": 0, "duration": 0},                       # ms; refuse new connections (stop listening)
    "half_open": {"after": 0},                                 # ms; black-hole the stream, never close
    # protocol-aware (decoded: they act on commands/requests, not bytes)
    "resp": {"command": "*", "key": "*", "action": "error", "error": "-ERR injected by tcpplay",
             "delay": 0, "nth": 0},
    "http": {"method": "*", "path": "*", "action": "status", "status": 503, "retry_after": 0,
             "delay": 0, "rate": 0, "cut_after": 0, "nth": 0},
})

# what each protocol-aware type accepts as its "action" attribute
ACTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "resp": ("error", "delay", "drop", "close", "reset"),
    "http": ("status", "delay", "slow_headers", "slow_body", "cut"),
})

# type -> {glob attribute: whether it matches an upper-cased name (a command, a method)}
GLOBS: Mapping[str, Mapping[str, bool]] = MappingProxyType({
    "resp": {"command": True, "key": False},
    "http": {"method": True, "path": False},
})

# the attribute a bare first value stands for in the --fault syntax ("latency:downstream:200ms")
_MAIN_ATTRIBUTE = {
    "latency": "latency", "bandwidth": "rate", "slow_close": "delay", "timeout": "timeout",
    "reset_peer": "timeout", "slicer": "average_size", "limit_data": "bytes",
    "down": "duration", "half_open": "after",
}
_MILLISECONDS = {("latency", "latency"), ("latency", "jitter"), ("slow_close", "delay"),
                 ("timeout", "timeout"), ("reset_peer", "timeout"), ("down", "after"),
                 ("down", "duration"), ("half_open", "after"), ("resp", "delay"),
                 ("http", "delay")}
_MICROSECONDS = {("slicer", "delay")}
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
NAME_RULE = "1-64 letters, digits or _.:-"  # what valid_name takes, for an error message
_MAX_STRING = 1024
MAX_NUMBER = 2**53  # the largest whole number a JSON double carries exactly; toxiproxy's int64 is wider


@attrs.frozen
class Toxic:
    """One fault as toxiproxy models it; ``attributes`` is complete (defaults filled in) and
    read-only. ``globs`` holds its glob attributes (``GLOBS``) compiled once, when it is made,
    for the per-request match (``playground.common.globs.compile_glob``; None for ``*``)."""

    name: str
    type: str
    stream: str = DOWNSTREAM
    toxicity: float = 1.0
    attributes: Mapping[str, object] = attrs.field(factory=dict, converter=MappingProxyType)
    globs: Mapping[str, Callable[[str], object] | None] = attrs.field(
        init=False, eq=False, repr=False,
        default=attrs.Factory(lambda self: _compiled_globs(self.type, self.attributes),
                              takes_self=True))

    def to_json(self) -> dict:
        """toxiproxy's JSON shape for a toxic."""
        return {"name": self.name, "type": self.type, "stream": self.stream,
                "toxicity": self.toxicity, "attributes": dict(self.attributes)}

    def evolve(self, **changes) -> Toxic:
        """A copy with some fields changed (attributes merged, not replaced), checked again."""
        merged = dict(self.attributes)
        merged.update(changes.pop("attributes", None) or {})
        fields = {"name": self.name, "type": self.type, "stream": self.stream,
                  "toxicity": self.toxicity, "attributes": merged}
        fields.update(changes)
        return make_toxic(**fields)


def _compiled_globs(type_: str, attributes: Mapping[str, object]) -> Mapping:
    out = {}
    for key, upper in GLOBS.get(type_, {}).items():
        pattern = attributes[key]
        out[key] = None if pattern == "*" else compile_glob(pattern.upper() if upper else pattern)
    return MappingProxyType(out)


def _number(type_: str, key: str, value, default):
    if isinstance(value, bool):
        raise FaultError(f"{type_}.{key}: expected a number, got {value!r}")
    if isinstance(value, str):
        value = _parse_quantity(type_, key, value)
    if not isinstance(value, (int, float)) or isinstance(value, float) and not math.isfinite(value):
        raise FaultError(f"{type_}.{key}: expected a number, got {value!r}")
    if value < 0:
        raise FaultError(f"{type_}.{key}: must be >= 0, got {value!r}")
    if value > MAX_NUMBER:
        raise FaultError(f"{type_}.{key}: at most {MAX_NUMBER}, got {_short(value)}")
    if isinstance(default, int) and not isinstance(value, int):
        if value != int(value):
            raise FaultError(f"{type_}.{key}: expected a whole number, got {value!r}")
        value = int(value)
    return value


_QUANTITY = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*\Z")
_TIME_UNITS_MS = {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001, "m": 60_000.0}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2}


def _parse_quantity(type_: str, key: str, text: str):
    """"200ms", "1.5s", "64k", "100": a number in the attribute's own unit."""
    match = _QUANTITY.match(text)
    if not match:
        if _QUANTITY.match(text.strip()[1:]) and text.strip().startswith("-"):
            raise FaultError(f"{type_}.{key}: must be >= 0, got {text!r}")  # a number, yes
        raise FaultError(f"{type_}.{key}: expected a number, got {text!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
    if number > MAX_NUMBER:  # "9" * 400 is inf as a float
        raise FaultError(f"{type_}.{key}: at most {MAX_NUMBER}, got {_short(text)}")
    if (type_, key) in _MILLISECONDS or (type_, key) in _MICROSECONDS:
        if unit not in _TIME_UNITS_MS:
            raise FaultError(f"{type_}.{key}: unknown time unit {unit!r} (use us, ms, s, m)")
        ms = number * _TIME_UNITS_MS[unit]
        number = ms * 1000 if (type_, key) in _MICROSECONDS else ms
    elif unit:
        if unit not in _SIZE_UNITS or key == "rate" and unit in ("k", "kb"):
            hint = "a plain number" if key == "rate" else "use b, k, kb, m, mb"
            raise FaultError(f"{type_}.{key}: unknown unit {unit!r} ({hint})")
        number *= _SIZE_UNITS[unit]
    number = round(number, 6)  # "9us" is 9 us, not 9.000000000000002
    return int(number) if number == int(number) else number


def _short(value) -> str:
    """A value for an error message, cut to 40 characters (a 400-digit number is not echoed)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def valid_name(name) -> bool:
    """Whether ``name`` may name a toxic or a proxy (in the API, ``--name``): ``NAME_RULE``."""
    return isinstance(name, str) and _NAME.match(name) is not None


def make_toxic(type: str, name: str | None = None, stream: str = DOWNSTREAM,
               toxicity: float = 1.0, attributes: Mapping[str, object] | None = None) -> Toxic:
    """A checked ``Toxic``: unknown type, stream, attribute or a bad value raises ``FaultError``."""
    if not isinstance(type, str) or type not in TOXIC_TYPES:
        raise FaultError(f"type: unknown toxic {type!r} (known: {', '.join(TOXIC_TYPES)})")
    if not isinstance(stream, str) or stream not in STREAMS:
        raise FaultError(f"stream: expected upstream or downstream, got {stream!r}")
    if name is None:
        name = f"{type}_{stream}"
    if not valid_name(name):
        raise FaultError(f"name: {NAME_RULE} expected, got {name!r}")
    if isinstance(toxicity, bool) or not isinstance(toxicity, (int, float)) \
            or not 0.0 <= toxicity <= 1.0:
        raise FaultError(f"toxicity: expected a number from 0 to 1, got {toxicity!r}")
    schema = TOXIC_TYPES[type]
    given = dict(attributes or {})
    unknown = sorted(set(given) - set(schema))
    if unknown:
        raise FaultError(f"{type}: unknown attribute {unknown[0]!r} "
                         f"(known: {', '.join(schema) or 'none'})")
    checked = {}
    for key, default in schema.items():
        value = given.get(key, default)
        if isinstance(default, str):
            if not isinstance(value, str) or len(value) > _MAX_STRING:
                raise FaultError(f"{type}.{key}: expected text of at most {_MAX_STRING} characters")
        else:
            value = _number(type, key, value, default)
        checked[key] = value
    if type in ACTIONS and checked["action"] not in ACTIONS[type]:
        raise FaultError(f"{type}.action: expected one of {', '.join(ACTIONS[type])}, "
                         f"got {checked['action']!r}")
    # a final status: a 1xx is interim, the client waits on and takes the next response for
    # this request's (every later one shifted by one)
    if "status" in checked and not 200 <= checked["status"] <= 599:
        raise FaultError(f"http.status: expected 200-599, got {checked['status']!r}")
    return Toxic(name=name, type=type, stream=stream, toxicity=float(toxicity), attributes=checked)


def toxic_from_json(obj) -> Toxic:
    """A toxic from toxiproxy's JSON body (``type`` required; the rest defaulted as toxiproxy does)."""
    if not isinstance(obj, dict):
        raise FaultError("expected a JSON object")
    unknown = sorted(set(obj) - {"name", "type", "stream", "toxicity", "attributes"})
    if unknown:
        raise FaultError(f"unknown field {unknown[0]!r}")
    if "type" not in obj:
        raise FaultError("type: missing")
    attributes = obj.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise FaultError("attributes: expected a JSON object")
    return make_toxic(obj["type"], name=obj.get("name") or None,
                      stream=obj.get("stream") or DOWNSTREAM,
                      toxicity=obj.get("toxicity", 1.0), attributes=attributes)


def parse_fault(text: str) -> Toxic:
    """The ``--fault`` syntax: ``TYPE[:STREAM][:MAIN][,key=value...]`` for byte toxics, e.g.
    ``latency:downstream:200ms,jitter=50ms``, ``bandwidth:upstream:64``, ``down:5s``,
    ``limit_data:1k``; ``name=`` and ``toxicity=`` are accepted among the pairs.
    Protocol-aware: ``resp:COMMAND [KEYGLOB]:ACTION=VALUE[,key=value...]``, e.g.
    ``resp:GET user:*:error=-LOADING``, ``resp:GET:delay=200ms``, ``resp:SET:reset,nth=3``;
    ``http:METHOD PATHGLOB:ACTION=VALUE[,...]``, e.g. ``http:GET /slow*:delay=2s``,
    ``http:* /api/*:status=503,retry_after=5``."""
    text = text.strip()
    if not text:
        raise FaultError("empty fault")
    type_, sep, rest = re.match(r"([^:,]*)([:,]?)(.*)\Z", text, re.S).groups()
    if sep == ",":  # "down,after=1s": no stream, no value, pairs at once
        rest = "," + rest
    type_ = type_.strip().lower()
    if type_ in ("resp", "http"):
        return _parse_protocol_fault(type_, rest)
    if type_ not in TOXIC_TYPES:
        raise FaultError(f"type: unknown toxic {type_!r} (known: {', '.join(TOXIC_TYPES)})")
    stream = DOWNSTREAM
    head, _, pairs = rest.partition(",")
    parts = [p for p in head.split(":")] if head else []
    if parts and parts[0].strip().lower() in STREAMS:
        stream = parts.pop(0).strip().lower()
    attributes: dict[str, object] = {}
    if len(parts) == 2:  # "latency:sideways:200ms": the first can only be a stream
        raise FaultError(f"{type_}: stream: expected {' or '.join(STREAMS)}, got {parts[0].strip()!r}")
    if len(parts) > 1:
        raise FaultError(f"{type_}: expected TYPE[:STREAM][:VALUE][,key=value...], got {text!r}")
    if parts and parts[0].strip():
        if type_ not in _MAIN_ATTRIBUTE:
            raise FaultError(f"{type_}: takes no bare value; use key=value")
        attributes[_MAIN_ATTRIBUTE[type_]] = parts[0].strip()
    fields = _pairs(type_, pairs, attributes)
    return make_toxic(type_, stream=stream, attributes=attributes, **fields)


def _pairs(type_: str, text: str, attributes: dict) -> dict:
    """key=value pairs into ``attributes``; ``name``/``toxicity`` returned as fields."""
    fields: dict[str, object] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = pair.partition("=")
        key = key.strip().lower()
        if not eq:
            if type_ in ACTIONS and key in ACTIONS[type_]:
                attributes["action"] = key
                continue
            raise FaultError(f"{type_}: expected key=value, got {pair!r}")
        if key == "name":
            fields["name"] = value.strip()
        elif key == "toxicity":
            number = _QUANTITY.match(value)  # ASCII digits: float() also read '+.5', '0_5'
            if number is None or number.group(2):
                raise FaultError(f"toxicity: expected a number from 0 to 1, got {value!r}")
            fields["toxicity"] = float(number.group(1))
        else:
            attributes[key] = value.strip()
    return fields


def _parse_protocol_fault(type_: str, rest: str) -> Toxic:
    # the target ends at the first ":ACTION" followed by "=", "," or the end: a key glob
    # ("user:*") and an error ("-MOVED 3999 127.0.0.1:6381") may hold colons themselves
    found = re.match(r"(.*?):\s*(%s)\s*(?=[=,]|\Z)(.*)\Z" % "|".join(ACTIONS[type_]), rest,
                     re.S | re.I)
    if found is None:
        target, sep, action_text = rest.rpartition(":")
        if not sep:
            raise FaultError(f"{type_}: expected {type_}:TARGET:ACTION[=VALUE][,key=value...]")
    else:
        target, action_text = found.group(1), found.group(2) + found.group(3)
    words = target.split()
    attributes: dict[str, object] = {}
    if type_ == "resp":
        if len(words) > 2 or not words:
            raise FaultError("resp: expected resp:COMMAND [KEYGLOB]:ACTION, e.g. resp:GET user:*:error=-LOADING")
        attributes["command"] = words[0].upper()
        if len(words) == 2:
            attributes["key"] = words[1]
    else:
        if len(words) != 2:
            raise FaultError("http: expected http:METHOD PATHGLOB:ACTION, e.g. http:GET /slow*:delay=2s")
        attributes["method"], attributes["path"] = words[0].upper(), words[1]
    first, _, others = action_text.partition(",")
    action, eq, value = first.partition("=")
    action = action.strip().lower()
    if action not in ACTIONS[type_]:
        raise FaultError(f"{type_}.action: expected one of {', '.join(ACTIONS[type_])}, got {action!r}")
    attributes["action"] = action
    if eq:
        slot = {"error": "error", "delay": "delay", "status": "status", "slow_headers": "rate",
                "slow_body": "rate", "cut": "cut_after"}.get(action)
        if slot is None:
            raise FaultError(f"{type_}.{action}: takes no value")
        attributes[slot] = value.strip()
    fields = _pairs(type_, others, attributes)
    if "status" in attributes and isinstance(attributes["status"], str):
        attributes["status"] = _whole(type_, "status", attributes["status"])
    if "nth" in attributes and isinstance(attributes["nth"], str):
        attributes["nth"] = _whole(type_, "nth", attributes["nth"])
    if "retry_after" in attributes and isinstance(attributes["retry_after"], str):
        attributes["retry_after"] = _whole(type_, "retry_after", attributes["retry_after"])
    stream = DOWNSTREAM
    return make_toxic(type_, stream=stream, attributes=attributes, **fields)


def _whole(type_: str, key: str, text: str) -> int:
    number = decimal(text.strip(), 16)  # ASCII digits: int() also read '+3', '1_0' and '٣'
    if number is None:
        raise FaultError(f"{type_}.{key}: expected a whole number (digits 0-9 only), "
                         f"got {text!r}")
    return number


class ToxicSet:
    """The live toxics of one proxy, by name, in the order added; listeners hear every change.

    A listener is ``callable(event, toxic)`` with event ``"added"``, ``"updated"`` or ``"removed"``.
    Bounded: at most ``limit`` toxics."""

    def __init__(self, toxics=(), limit: int = 64):
        self._toxics: dict[str, Toxic] = {}
        self._listeners: list[Callable[[str, Toxic], None]] = []
        self.limit = limit
        for toxic in toxics:
            self.add(toxic)

    def __iter__(self):
        return iter(list(self._toxics.values()))

    def __len__(self) -> int:
        return len(self._toxics)

    def get(self, name: str) -> Toxic | None:
        return self._toxics.get(name)

    def add(self, toxic: Toxic) -> Toxic:
        if toxic.name in self._toxics:
            raise FaultError(f"toxic already exists: {toxic.name}")
        if len(self._toxics) >= self.limit:
            raise FaultError(f"at most {self.limit} toxics per proxy")
        self._toxics[toxic.name] = toxic
        self._tell("added", toxic)
        return toxic

    def update(self, name: str, **changes) -> Toxic:
        old = self._toxics.get(name)
        if old is None:
            raise KeyError(name)
        new = old.evolve(**changes)
        if new.name != name:
            raise FaultError("name: a toxic's name cannot change")
        self._toxics[name] = new
        self._tell("updated", new)
        return new

    def remove(self, name: str) -> Toxic:
        toxic = self._toxics.pop(name)  # KeyError: no such toxic
        self._tell("removed", toxic)
        return toxic

    def reset(self) -> None:
        for name in list(self._toxics):
            self.remove(name)

    def listen(self, listener: Callable[[str, Toxic], None]) -> Callable[[], None]:
        """Add a listener; returns the function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _tell(self, event: str, toxic: Toxic) -> None:
        for listener in list(self._listeners):
            listener(event, toxic)


class ConnectionToxics:
    """The toxics of one protocol (``protocol``: ``"resp"`` or ``"http"``) that apply to one
    connection: each toxic's toxicity rolled once, when added; ``matches`` counts the requests
    each one matched, for its ``nth`` attribute. The base of ``RespFaults`` and ``HttpFaults``."""

    protocol = ""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.toxics: list[Toxic] = []  # the ones whose toxicity roll came up, in order
        self.matches: dict[str, int] = {}  # toxic name -> matching requests seen

    def add(self, toxic: Toxic) -> bool:
        """Roll ``toxic``'s toxicity; True if it applies to this connection."""
        if toxic.type != self.protocol or self.rng.random() >= toxic.toxicity:
            return False
        self.toxics.append(toxic)
        return True

    def update(self, toxic: Toxic) -> bool:
        self.remove(toxic.name)
        return self.add(toxic)

    def remove(self, name: str) -> None:
        self.toxics = [t for t in self.toxics if t.name != name]

    def _counts(self, toxic: Toxic) -> bool:
        """Count one more match of ``toxic``; True if this is the one it acts on (``nth``)."""
        n = self.matches.get(toxic.name, 0) + 1
        self.matches[toxic.name] = n
        nth = toxic.attributes["nth"]
        return not nth or n == nth
