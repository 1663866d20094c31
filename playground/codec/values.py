"""The RESP value model: what :class:`~playground.codec.parser.RespParser` produces and
:func:`~playground.codec.encoder.encode` accepts (pure, no I/O).

=========================  ===========================================
RESP                       Python
=========================  ===========================================
bulk string ``$``          ``bytes``
simple string ``+``        :class:`Simple`
simple error ``-``         :class:`Error` (bulk error ``!``: ``bulk=True``)
integer ``:``              ``int``
null ``$-1`` ``*-1`` ``_`` ``None``
boolean ``#``              ``bool``
double ``,``               ``float`` (``inf``, ``-inf``, ``nan``)
big number ``(``           :class:`BigNumber`
verbatim ``=``             :class:`Verbatim`
array ``*``                ``list``
map ``%``                  :class:`Map` (a tuple of key/value pairs)
set ``~``                  :class:`Set`
push ``>``                 :class:`Push`
attribute ``|``            :class:`Attributed` wrapping the value that follows
inline command             :class:`Inline` (only with ``inline=True``)
a string too long to keep  :class:`Truncated` (only with ``max_value``)
=========================  ===========================================

Input that is not RESP is a :class:`ProtocolError` value, not an exception.
"""

from __future__ import annotations

import attrs

__all__ = [
    "Attributed",
    "is_error",
    "BigNumber",
    "Error",
    "Inline",
    "Map",
    "ProtocolError",
    "Push",
    "Set",
    "Simple",
    "Truncated",
    "Verbatim",
]


class Truncated(bytes):
    """A string value longer than what is kept of it (a parser with ``max_value`` streams it):
    the bytes are its first part, ``len()`` is its full length on the wire (``kept`` the bytes
    held, ``bytes(value)`` those bytes). Equal to a ``Truncated`` with the same first part and
    length, never to plain bytes.

    ``len()`` says the wire length on purpose: what reads a string's size downstream (the
    views' ``"prefix..." (N bytes)``, the JSON ``length``, the redaction's wire offsets) does so
    with ``len()``, so a cut value is shown and placed exactly as the whole one would be."""

    def __new__(cls, head: bytes, length: int):
        self = super().__new__(cls, head)
        self.length = length
        return self

    def __len__(self) -> int:
        return self.length

    @property
    def kept(self) -> int:
        return bytes.__len__(self)

    def __eq__(self, other):
        if isinstance(other, Truncated):
            return self.length == other.length and bytes.__eq__(self, other)
        if isinstance(other, bytes):
            return False
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = bytes.__hash__

    def __repr__(self) -> str:
        return f"Truncated({bytes.__repr__(self)}, {self.length})"

    def __reduce__(self):
        return Truncated, (bytes(self), self.length)


@attrs.frozen
class Simple:
    """A simple string (``+OK``)."""

    value: bytes


@attrs.frozen
class Error:
    """An error reply: ``-ERR ...`` or, with ``bulk=True``, the RESP3 bulk error ``!``."""

    value: bytes
    bulk: bool = False

    @property
    def code(self) -> bytes:
        """The error code, the first word (``ERR``, ``WRONGTYPE``, ``NOAUTH``...)."""
        return self.value.split(b" ", 1)[0]


@attrs.frozen
class BigNumber:
    value: int


@attrs.frozen
class Verbatim:
    """A RESP3 verbatim string: a three-byte ``format`` (``txt``, ``mkd``) and the text."""

    format: bytes
    text: bytes


@attrs.frozen
class Map:
    """A RESP3 map, as an ordered tuple of ``(key, value)`` pairs (keys may be unhashable)."""

    items: tuple = ()

    def get(self, key, default=None):
        for k, v in self.items:
            if k == key:
                return v
        return default


@attrs.frozen
class Set:
    items: tuple = ()


@attrs.frozen
class Push:
    """A RESP3 out-of-band push (pub/sub messages, invalidations)."""

    items: tuple = ()


@attrs.frozen
class Attributed:
    """A value preceded by a RESP3 attribute map."""

    attributes: Map
    value: object


def is_error(value) -> bool:
    """Whether a reply is an error: an :class:`Error`, or one under RESP3 attributes."""
    kind = type(value)
    return kind is Error or (kind is Attributed and type(value.value) is Error)


@attrs.frozen
class Inline:
    """An inline command (``PING\\r\\n`` typed into nc/telnet), split the way Redis splits it;
    ``line`` is its bytes as sent, without the line end (where its tokens are, whichever reads
    the line came in; not compared)."""

    args: tuple
    line: bytes = attrs.field(default=b"", eq=False, repr=False)


@attrs.frozen
class ProtocolError:
    """Input that is not RESP (or exceeds a bound), at absolute stream ``offset``."""

    message: str
    offset: int

