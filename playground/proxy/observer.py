"""What a proxy observer (the decoder chain, a test) receives: pair open/close and forwarded bytes.

The proxy calls these *after* the bytes have been written to the other side: on later reactor
turns, in order, a bounded slice per turn (timestamps are those of the reads; a big read comes in
pieces), so an observer can never delay or alter forwarding. An observer that raises is logged
once and detached. An observer may keep work for later turns: then it has ``held`` (true while
anything waits) and ``work()`` (do one bounded slice of it; true while more waits), which the
proxy calls once per turn before it hands over more bytes (``chain.Chain`` does). An observer
whose calls only queue what they are given (``takes_at_once``: the decoder process's pipe,
``playground.proxy.decoderprocess``) is told in the turn that forwarded, right after the write,
while nothing waits before it and it is not ``blocked``; when it is, the proxy queues as above
and it wakes the proxy when it takes more.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from playground.common.addresstext import format_address

CLIENT_TO_SERVER = "c2s"
SERVER_TO_CLIENT = "s2c"


@attrs.frozen
class Endpoint:
    """One side of a connection as seen by the proxy: an IP address and port, or a unix socket
    (``port`` 0, ``host`` its path, ``""`` when it has none). Shown as logs show addresses
    (``common.addresstext``): ``127.0.0.1:6379``, ``[::1]:6379``, ``unix:PATH``,
    ``unix:(unnamed)``."""

    host: str
    port: int

    def __str__(self) -> str:
        return format_address(self.host, self.port or None)


@attrs.frozen
class PairInfo:
    """A proxied connection pair.

    ``client``: the client's address; ``listen``: the proxy's address the client reached;
    ``upstream_local``: the proxy's own address on the upstream leg (None before it connects);
    ``server``: the target's address, None for a pair that never reached it (its connect
    failed: it is opened and closed at once, ``how`` connect-failed); ``target``: the --target
    endpoint string.
    """

    id: int
    client: Endpoint
    listen: Endpoint
    target: str
    server: Endpoint | None = None
    upstream_local: Endpoint | None = None


class PairObserver(Protocol):
    def pair_opened(self, pair: PairInfo, now: float) -> None: ...

    def data(self, pair_id: int, direction: str, data: bytes, now: float) -> None:
        """``direction`` is CLIENT_TO_SERVER or SERVER_TO_CLIENT; ``data`` was already forwarded."""

    # Optional: ``faulted(pair_id, direction, data, now, fault, injected)``: ``data`` went to
    # the client as ``data`` does, but a fault named ``fault`` injected it (``injected``: the
    # server never sent it) or held it back; an observer without it is told ``data``.

    def half_closed(self, pair_id: int, direction: str, now: float) -> None:
        """The sender of ``direction`` shut down its write side (FIN), and it was passed on."""

    def pair_closed(self, pair_id: int, summary: dict, now: float) -> None:
        """``summary``: bytes_c2s, bytes_s2c, duration, closed_by, how (fin|reset|timeout|...),
        and ``reason`` when the proxy says why it closed (a failed connect's error)."""
