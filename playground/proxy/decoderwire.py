"""The byte format between the proxy and its decoder process (``--decode-process``): pure.

The proxy process hands what its observer is told (``playground.proxy.observer``: a pair's open,
its forwarded bytes, its half-closes and its close) to the decoder process through a pipe, in
batches: a batch is a 4-byte little-endian length and then a ``marshal``led list of messages,
each a tuple whose first item says what it is:

* ``(OPENED, id, client, listen, target, server, upstream_local, now)``: ``PairInfo``, each
  address a ``(host, port)`` tuple or None;
* ``(DATA, id, direction, data, now)``;
* ``(HALF_CLOSED, id, direction, now)``;
* ``(CLOSED, id, summary, now)``: ``summary`` the close's dict (str, int and float values).

``encode_batch(messages)`` makes a batch; ``BatchReader.feed(data)`` gives the messages of the
batches ``data`` completes, whatever the split (a batch longer than ``max_batch`` is an error:
the proxy never writes one). ``pair_message(pair, now)`` and ``pair_info(message)`` turn a
``PairInfo`` into its message and back; ``deliver(observer, message)`` calls the observer's
method a message stands for.

The other way, the child's log events go to the proxy as JSON lines (its file descriptor 3); an
event in ``COMMAND_NAMESPACE`` is not logged but asks the proxy something: ``command="close"``,
``pair``, ``how`` (fin or rst), ``by``: the web view's close buttons.
"""

from __future__ import annotations

import marshal
import struct

from playground.proxy.observer import Endpoint, PairInfo

OPENED, DATA, HALF_CLOSED, CLOSED = range(4)
COMMAND_NAMESPACE = "tcpplay.decoder.command"  # the child's log events the proxy carries out
# the child's options (JSON) are in its environment, not in argv: any user may read a process's
# /proc/PID/cmdline, its environ only the owner (a web view's token is among them)
OPTIONS_ENV = "TCPPLAY_DECODER_OPTIONS"
_LENGTH = struct.Struct("<I")
MAX_BATCH = 64 * 1024 * 1024  # the proxy sends about a reactor turn's slice; far below


class WireError(ValueError):
    """The pipe carried something the proxy never writes."""


def encode_batch(messages: list) -> bytes:
    """One batch: its length, then ``messages`` marshalled (version 4: no references)."""
    blob = marshal.dumps(messages, 4)
    return _LENGTH.pack(len(blob)) + blob


def _address(endpoint: Endpoint | None):
    return None if endpoint is None else (endpoint.host, endpoint.port)


def _endpoint(address) -> Endpoint | None:
    return None if address is None else Endpoint(address[0], address[1])


def pair_message(pair: PairInfo, now: float) -> tuple:
    """The ``OPENED`` message of ``pair``."""
    return (OPENED, pair.id, _address(pair.client), _address(pair.listen), pair.target,
            _address(pair.server), _address(pair.upstream_local), now)


def pair_info(message: tuple) -> PairInfo:
    """The ``PairInfo`` an ``OPENED`` message stands for."""
    _, pair_id, client, listen, target, server, upstream_local, _ = message
    return PairInfo(pair_id, _endpoint(client), _endpoint(listen), target, _endpoint(server),
                    _endpoint(upstream_local))


def deliver(observer, message: tuple) -> None:
    """Call ``observer``'s method for ``message`` (``PairObserver``)."""
    kind = message[0]
    if kind == DATA:
        observer.data(message[1], message[2], message[3], message[4])
    elif kind == OPENED:
        observer.pair_opened(pair_info(message), message[-1])
    elif kind == HALF_CLOSED:
        observer.half_closed(message[1], message[2], message[3])
    elif kind == CLOSED:
        observer.pair_closed(message[1], message[2], message[3])
    else:
        raise WireError(f"unknown message kind {kind!r}")


class BatchReader:
    """Batches back out of a byte stream split anyhow (``feed``)."""

    def __init__(self, max_batch: int = MAX_BATCH):
        self.max_batch = max_batch
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list:
        """The messages of every batch ``data`` completes, in order."""
        buffer = self._buffer
        buffer += data
        out: list = []
        at = 0
        size = _LENGTH.size
        while len(buffer) - at >= size:
            (n,) = _LENGTH.unpack_from(buffer, at)
            if n > self.max_batch:
                raise WireError(f"a batch of {n} bytes (at most {self.max_batch})")
            if len(buffer) - at - size < n:
                break
            try:
                messages = marshal.loads(buffer[at + size:at + size + n])  # one copy
            except (EOFError, ValueError, TypeError) as e:
                raise WireError(f"a batch that is not marshalled messages: {e}") from None
            if type(messages) is not list:
                raise WireError("a batch that is not a list of messages")
            out += messages
            at += size + n
        if at:
            del buffer[:at]
        return out

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished batch held."""
        return len(self._buffer)
