"""One client's state in the engine: protocol version, auth, name, MULTI queue, WATCHed keys,
subscriptions."""

from __future__ import annotations

import attrs

from playground.codec.values import Push


@attrs.define(eq=False)
class Session:
    """Per-client state: protocol version, auth, name, transaction queue, subscriptions."""

    id: int
    peer: str = ""
    local: str = ""
    created: float = 0.0
    last_active: float = 0.0
    protocol: int = 2
    authenticated: bool = True
    name: bytes | None = None
    lib_name: bytes = b""
    lib_ver: bytes = b""
    multi: list | None = None  # queued commands while in MULTI
    multi_failed: bool = False  # a command was rejected while queueing: EXEC aborts
    watched: set = attrs.Factory(set)
    dirty: bool = False  # a WATCHed key changed
    channels: dict = attrs.Factory(dict)  # ordered set of subscribed channels
    patterns: dict = attrs.Factory(dict)
    last_command: str = "NULL"
    closed: bool = False

    @property
    def subscriptions(self) -> int:
        return len(self.channels) + len(self.patterns)

    def shape(self, items: list):
        """A pub/sub frame: a push in RESP3, a plain array in RESP2."""
        return Push(tuple(items)) if self.protocol == 3 else items
