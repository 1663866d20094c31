r"""hiredis as the RESP parser's fast path, behind one entry point: ``parse_prefix`` (a method of
:class:`HiredisPrefix`, which keeps the reader it reuses) reads the leading whole frames of a
buffer with hiredis's C reader, and gives them only where they are exactly what the pure parser
(:class:`~playground.codec.parser.RespParser`) gives for the same bytes (pure, no I/O).

What it takes: the two shapes pipelines carry, at a frame boundary of the pure parser.

* ``data`` starting with ``*``: a run of arrays of bulk strings (commands; many replies), up to
  the last ``\r\n*`` (where a frame may start), or all of ``data`` when it ends with ``\r\n``;
* ``data`` starting with ``$``: a run of bulk strings (the replies of pipelined GETs), all of
  ``data``, which must end with ``\r\n``.

Why its results agree with the pure parser's
--------------------------------------------
hiredis is given ``prefix`` (the bytes above). Its values are used only when all of these hold;
each closes one way hiredis reads bytes differently from the pure parser.

1. *Whole frames* (the reader-state probe). ``gets()`` returning ``False`` says no further
   frame is complete, not that the reader holds nothing: the header and elements of a partly
   read aggregate are consumed already (a read ending in ``*2\r\n`` leaves ``has_data()``
   False). So an empty array ``*0\r\n`` is fed after ``prefix`` (in the same call), and the
   frames are read until ``gets()`` gives ``False``: the last must be ``[]``, with
   nothing left over. A reader waiting inside an aggregate takes ``*0`` as an element
   (``[[]]``, or still nothing), one inside a line or a body makes it part of that (nothing, an
   error, or bytes left). The only frame read as ``[]`` is ``*0\r\n`` itself, so a last ``[]``
   with nothing left is the probe's four bytes read as a frame of their own: the reader was at
   a frame boundary before them. So hiredis read all of ``prefix`` as whole frames, and
   ``values`` (the probe's ``[]`` removed) are all of them.
2. *Types.* In the ``*`` run every value is a list and every element bytes (``b"\x00".join``
   raises otherwise: a nested array or map, an integer, a null, a double, an error); in the
   ``$`` run every value is bytes. hiredis gives bytes for a bulk ``$``, a simple string ``+``,
   a big number ``(`` and the text of a verbatim ``=``, and a list for an array ``*``, a set
   ``~``, a push ``>``, and for an attribute ``|`` (its map's items, as a value of its own).
3. *Terminators: the CRLF count* (``_exact``). hiredis checks every line end it reads, but
   skips the two bytes after a bulk body without looking at them. So count ``\r\n`` in
   ``prefix``. Expected: one per array header line (one per value in the ``*`` run), two per
   bulk string (its length line and its terminator), plus those inside the bodies (joined with
   NUL, so no pair is formed across two bodies). Each bad terminator removes one, and so does
   each ``+`` or ``(`` line read in place of a bulk (one line, one CRLF). Nothing adds one:
   every line holds exactly one, a terminator at most one, and no pair forms across a line
   start (a line starts with a type byte, never LF). The one way to form a pair across is a
   body ending with CR before a bad terminator starting with LF; runs with a body ending in CR
   are left to the pure parser. So an equal count means every terminator is CRLF and every
   element a bulk string.
4. *No* ``~ > | =`` (``_risky``). With every terminator a CRLF, every type byte follows one:
   a search for ``\r\n`` followed by ``~``, ``>``, ``|`` or ``=`` finds all the sets, pushes,
   attributes and verbatim strings, which would pass checks 2 and 3 (a set of bulk strings has
   an array's CRLFs, a verbatim string a bulk's). None may occur. Nor may an array header of a
   million elements or more, for the cost alone: hiredis allocates the list when it reads the
   header, and a list of 2**31 slots takes seconds to free when the frame never comes.
5. *Lengths.* hiredis reads array and bulk lengths as strictly as the pure parser (digits only,
   no sign, no leading zero, no space; ``-1`` gives ``None``, refused by check 2). So the frames
   are canonical: ``*N\r\n`` and ``$len\r\nbody\r\n`` with the lengths the pure parser reads, and
   a frame's size on the wire follows from its values alone (``SpanRun`` relies on that).
6. *Bounds.* A body longer than ``longest`` is refused (the pure parser fails over ``max_bulk``,
   or streams a long string: see ``RespParser``). A hiredis protocol error is refused too: the
   pure parser reports it, with its offset.

What is not checked, and needs not be: the bounds on an unfinished frame (``max_inline`` on a
header line, ``max_count``, ``max_depth``). The pure parser's own fast path takes a whole flat
array of bulk strings without them too.

Outside these shapes (inline commands, replies of other types, anything refused) the pure
parser reads the bytes itself. ``tests/codec/test_hiredisprefix.py`` checks the agreement for any
input and any split.
"""

from __future__ import annotations

import re
from itertools import chain

import hiredis

__all__ = ["HiredisPrefix"]

_NOT_TAKEN: tuple = ((), 0)
_BIG_ARRAY = re.compile(rb"\*[0-9]{7}")
_RISKY_TYPE = re.compile(rb"\r\n[~>|=]")
# The same in one regex: cheaper on short inputs (below 128 bytes: one command); on longer ones
# (a run) a bytes.translate deleting every byte but the four (_NOT_RISKY) says first whether
# any is there at all, then the two literal-led searches, the second only where a "*" is
# (translate's own set-up, two 256-entry tables, costs more than the whole regex on a short
# command; from 128 bytes, a run of 14 GET replies, it costs half the regex).
_RISKY_SHORT = re.compile(rb"\r\n(?:[~>|=]|\*[0-9]{7})")
_NOT_RISKY = bytes(b for b in range(256) if b not in b"~>|=")
_LIST_ONLY = {list}
_BYTES_ONLY = {bytes}
class HiredisPrefix:
    """hiredis behind one entry point, :meth:`parse_prefix`. Holds the reader it reuses
    (making one costs about as much as parsing a short command): one per parser, which is used
    from one thread; a reader left inside a frame is dropped."""

    __slots__ = ("_reader",)

    def __init__(self):
        self._reader = None

    def parse_prefix(self, data: bytes, longest: int) -> tuple:
        r"""The leading whole frames of ``data`` read by hiredis, where that gives exactly the
        pure parser's values: ``(values, used)``, ``used`` the bytes they span; ``((), 0)`` when
        not taken (the pure parser reads ``data`` instead).

        ``data`` (not empty) starts at a frame boundary: with ``*``, a run of arrays of bulk
        strings is read up to the last ``\r\n*`` (all of ``data`` when it ends with ``\r\n``);
        with ``$``, a run of bulk strings, all of ``data``. ``longest``: the longest body the
        caller takes whole. The module docstring says why the values agree.
        """
        kind = data[0]
        if data[-2:] == b"\r\n":
            if kind != 42 and kind != 36:  # neither "*" nor "$"
                return _NOT_TAKEN
            prefix = data
        elif kind == 42:  # up to the last "\r\n*"
            end = data.rfind(b"\r\n*") + 2
            if end <= 2:
                return _NOT_TAKEN
            prefix = data[:end]
        else:
            return _NOT_TAKEN
        if _risky(prefix):
            return _NOT_TAKEN
        reader = self._reader
        if reader is None:
            reader = self._reader = hiredis.Reader()
        reader.feed(prefix + b"*0\r\n")  # the probe (check 1) after the frames: one call
        try:
            first = reader.gets()
            if first is False:
                self._reader = None
                return _NOT_TAKEN
            # Read right after the first frame, the probe says the frame was the only one (one
            # command per read, the common case); else the frames that follow come first, and
            # it must come last.
            second = reader.gets()
            single = second == [] and not reader.has_data()
            if not single:
                values = [first, second]
                if second is not False:
                    values.extend(iter(reader.gets, False))
                if values.pop() != [] or reader.has_data():
                    self._reader = None
                    return _NOT_TAKEN
        except Exception:  # hiredis.ProtocolError
            self._reader = None
            return _NOT_TAKEN
        commands = kind == 42
        if single:  # one command per read: the common case, checked for less
            if commands:
                if type(first) is not list or not _exact(prefix, first, 1, longest):
                    return _NOT_TAKEN
            elif type(first) is not bytes or not _exact(prefix, [first], 0, longest):
                return _NOT_TAKEN
            return [first], len(prefix)
        if set(map(type, values)) != (_LIST_ONLY if commands else _BYTES_ONLY):
            return _NOT_TAKEN
        if commands:
            if not _exact(prefix, list(chain.from_iterable(values)), len(values), longest):
                return _NOT_TAKEN
        elif not _exact(prefix, values, 0, longest):
            return _NOT_TAKEN
        return values, len(prefix)


def _risky(data: bytes) -> bool:
    """Whether ``data`` holds a type byte hiredis shows differently, or a huge array header
    (check 4 of the module docstring)."""
    if len(data) < 128:
        return _RISKY_SHORT.search(data) is not None or (
            data[:1] == b"*" and data[1:8].isdigit())
    # A run's CRLFs are many, and the regular expression tries each: first, in one C loop,
    # is any of the four bytes there at all? And an array header needs a "*" (a run of bulk
    # replies has none, mostly).
    if data.translate(None, _NOT_RISKY) and _RISKY_TYPE.search(data) is not None:
        return True
    return 42 in data and _BIG_ARRAY.search(data) is not None


def _exact(data: bytes, flat: list, headers: int, longest: int) -> bool:
    """Whether ``data``, read by hiredis as ``headers`` array header lines and the elements
    ``flat``, is exactly that many canonical arrays of those bulk strings (checks 2, 3 and 6 of
    the module docstring; check 4 is the caller's)."""
    try:
        joined = b"\x00".join(flat)
    except TypeError:  # an element that is not bytes
        return False
    crlfs = headers + 2 * len(flat)
    if joined.find(13) >= 0:  # a CR in some body (rare)
        if b"\r\x00" in joined or joined.endswith(b"\r"):
            return False
        crlfs += joined.count(b"\r\n")
    if data.count(b"\r\n") != crlfs:
        return False
    return len(data) <= longest or max(map(len, flat), default=0) <= longest
