"""The console and JSON sinks' fast paths: which records are plain, and the bytes of the common
replies.

"Plain" bytes are printable ASCII but ``"`` and ``\\``: ``views.escape``/``quoted`` show them as
they are, and JSON writes them as they are inside a string, so both sinks can put them into a line
without escaping. ``plain_batch`` looks at a whole batch once (instead of once per record);
``PlainReplies`` makes the bytes of the common replies (printable bulk and simple strings,
integers, nil) in a sink's own notation and remembers the simple strings (``+OK`` is made once).
"""

from __future__ import annotations

from itertools import chain as _chain

from playground.codec import values as resp
from playground.decode import records as R

# The plain bytes (see the module docstring). Deleting them from plain data leaves nothing:
# ``bytes.translate`` does that in a C loop, ten times faster than a regular expression's search.
PLAIN_BYTES = bytes(b for b in range(0x20, 0x7F) if b not in b'"\\')


def is_plain(data: bytes) -> bool:
    """Whether every byte of ``data`` is plain."""
    return not data.translate(None, PLAIN_BYTES)


_EXCHANGE = R.RedisExchange
_RUN = R.RedisExchanges
_SIMPLE = resp.Simple
_BYTES_ONLY = {bytes}
_CACHED = 256


def remember(cache: dict, key, value):
    """Keep ``value`` for ``key`` while the cache holds fewer than _CACHED entries."""
    if len(cache) < _CACHED:
        cache[key] = value
    return value


def plain_batch(batch: list, lim: int) -> tuple[bool, int, int, bool]:
    """One look at a batch for the sinks' fast paths, instead of one per record:
    ``(args, fewest, most, bulks)``: ``args`` when the Redis exchanges' arguments are all
    printable-ASCII bytes of at most ``lim`` bytes (0: no bound), ``fewest``/``most`` arguments
    of one exchange, ``bulks`` when their bulk-string replies are all printable ASCII within
    ``lim`` too."""
    commands = [r.command for r in batch if type(r) is _EXCHANGE]
    bulks = [r.reply for r in batch if type(r) is _EXCHANGE and type(r.reply) is bytes]
    for r in batch:
        if type(r) is _RUN:
            commands += r.commands
            replies = r.replies
            kinds = r.types()  # a run's replies are mostly of one type
            if kinds == _BYTES_ONLY:
                bulks += replies
            elif bytes in kinds:
                bulks += [v for v in replies if type(v) is bytes]
    if not commands:
        return False, 0, 0, False
    try:
        every = list(_chain.from_iterable(commands))
        args = is_plain(b"".join(every)) and not (
            lim and max(map(len, every), default=0) > lim)  # len(): a Truncated's full length
    except TypeError:  # an argument that is not bytes
        args = False
    # bulks are exactly bytes (no Truncated): within the bound all together, each is within it
    joined = b"".join(bulks)
    plain_bulks = is_plain(joined) and not (
        lim and len(joined) > lim and max(map(len, bulks)) > lim)
    sizes = set(map(len, commands))  # a few distinct ones: min and max look at those only
    return args, min(sizes), max(sizes), plain_bulks


class PlainReplies:
    """The bytes a sink writes for the common replies: printable bulk and simple strings,
    integers and nil (and, given ``items``, flat lists), or None for anything else (the sink's
    general formatter does those). Simple strings are remembered: ``+OK`` is made once."""

    def __init__(self, simple: bytes, integer: bytes, nil: bytes, items=None):
        self.simple_format = simple  # e.g. b"+%s"
        self.integer_format = integer  # e.g. b"(integer) %d"
        self.nil = nil
        self.items = items  # (list, lim) -> bytes or None
        self.simples: dict = {}  # simple-string value -> its bytes

    def simple(self, value: bytes, lim: int):
        if (lim and len(value) > lim) or not is_plain(value):
            return None
        return remember(self.simples, value, self.simple_format % value)

    def __call__(self, v, lim: int, checked: bool = False):
        """``checked``: bulk strings are known printable and short (``plain_batch``)."""
        t = type(v)
        if t is _SIMPLE:
            return self.simples.get(v.value) or self.simple(v.value, lim)
        if t is bytes:
            if not checked and ((lim and len(v) > lim) or not is_plain(v)):
                return None
            return b'"' + v + b'"'
        if t is int:
            return self.integer_format % v
        if v is None:
            return self.nil
        if t is list and self.items is not None:
            return self.items(v, lim)
        return None
