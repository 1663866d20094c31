"""The decoder chain's byte path to more than one consumer.

The chain hands the bytes it forwarded (after its redaction hold-back) to one byte consumer, the
pcap sink's contract: ``pair_opened``, ``data``, ``half_closed``, ``pair_closed``, ``mask`` and,
optionally, ``decoded``. ``ByteTee`` is such a consumer that passes every call on to several
(the pcap sink and the web view), in the order given, so each gets the same bytes and the same
masks; ``mask`` answers the most bytes any of them already had in clear.
"""

from __future__ import annotations


class ByteTee:
    def __init__(self, consumers):
        self.consumers = list(consumers)
        self._decoded = [d for d in (getattr(c, "decoded", None) for c in self.consumers)
                         if d is not None]

    def pair_opened(self, pair, now):
        for c in self.consumers:
            c.pair_opened(pair, now)

    def data(self, pair_id, direction, data, now):
        for c in self.consumers:
            c.data(pair_id, direction, data, now)

    def half_closed(self, pair_id, direction, now):
        for c in self.consumers:
            c.half_closed(pair_id, direction, now)

    def pair_closed(self, pair_id, summary, now):
        for c in self.consumers:
            c.pair_closed(pair_id, summary, now)

    def mask(self, pair_id, direction, start, end) -> int:
        return max(c.mask(pair_id, direction, start, end) for c in self.consumers)

    def decoded(self, pair_id, protocol):
        for d in self._decoded:
            d(pair_id, protocol)
