"""The text-line and hexdump views as the decoder chain's decoders: ``TextStream`` (a pair shown
as text lines) and ``HexStream`` (``--decode hex``, and the fallback of a direction no decoder
can follow), each with the credentials of its lines redacted (``playground.decode.linesecrets``).

Pure apart from what they are handed: ``st`` is the chain's per-pair state
(``playground.decode.chain.PairState``), through which records go to the sinks and secrets' stream
ranges to the pcap.
"""

from __future__ import annotations

from playground.decode import records as R
from playground.decode.detect import HEX, TEXT
from playground.decode.linesecrets import LineSecrets, StreamMask, redact, starts_secret_line
from playground.decode.views import LineView
from playground.proxy.observer import CLIENT_TO_SERVER, SERVER_TO_CLIENT


class HexStream:
    """Fallback and ``--decode hex``: every chunk as a hexdump record.

    With redaction, the credentials of the lines it carries (``playground.decode.linesecrets``) are
    overwritten with ``*`` and masked in the pcap, and an incomplete line that may still turn
    out to hold one is held back until its line ends."""

    protocol = HEX

    def __init__(self, st):
        self.st = st
        self.masks = {} if st.chain.redact else None  # direction -> linesecrets.StreamMask
        self.hidden = {}  # direction -> stream offset before which nothing is shown

    def feed(self, direction, data, now, offset, resync=False, show_from=0):
        """``resync``: ``offset`` may be inside a line (the bytes before it were not seen);
        ``show_from``: bytes before this stream offset are only searched for secrets (for the
        pcap), not shown."""
        st = self.st
        if self.masks is None:
            st.chain.emit(R.HexChunk(st.id, now, direction, data, offset))
            return
        m = self.masks.get(direction)
        if m is None or m.next != offset:
            if m is not None:
                self._show(direction, m.flush(), now)
            m = self.masks[direction] = StreamMask(offset, resync=resync or m is not None)
        if show_from > offset:
            self.hidden[direction] = show_from
        self._show(direction, m.feed(data), now)

    def _show(self, direction, out, now):
        shown, at, secrets = out
        st = self.st
        for start, end in secrets:
            st.secret(direction, start, end)
        hidden = self.hidden.get(direction, 0)
        if at < hidden:
            shown = shown[hidden - at:]
            at = hidden
        if shown:
            st.chain.emit(R.HexChunk(st.id, now, direction, shown, at))

    def eof(self, direction, now):
        m = self.masks.get(direction) if self.masks else None
        if m is not None:
            self._show(direction, m.flush(), now)

    def close(self, now):
        for d in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
            self.eof(d, now)

    def settled(self, direction):
        m = self.masks.get(direction) if self.masks else None
        return None if m is None else m.held  # None: everything


class TextStream:
    """Text lines; with redaction, the credentials they carry (``playground.decode.linesecrets``)
    are shown as ``(redacted)`` and masked in the pcap."""

    protocol = TEXT

    def __init__(self, st):
        self.st = st
        self.views = {CLIENT_TO_SERVER: LineView(), SERVER_TO_CLIENT: LineView()}
        self.secrets = None
        if st.chain.redact:
            self.secrets = {CLIENT_TO_SERVER: LineSecrets(), SERVER_TO_CLIENT: LineSecrets()}

    def feed(self, direction, data, now, offset):
        view = self.views[direction]
        if self.secrets is not None:
            secrets = self.secrets[direction]
            tail = view.tail[1]
            cut = secrets.cut
            if secrets.idle and not starts_secret_line(tail + data if tail else data,
                                                       not cut, cut):
                # the common case: no line of this read can be a secret's
                lines = view.feed(data)
                if lines:
                    secrets.skip(lines[-1].partial)
                self._lines(direction, lines, now, False)
                return
        self._lines(direction, view.feed(data), now)

    def _lines(self, direction, lines, now, look=True):
        st = self.st
        emit = st.chain.emit
        pid = st.id
        if self.secrets is None or not look:
            for line in lines:
                emit(R.TextLine(pid, now, direction, line.data, line.offset, line.partial))
            return
        secrets = self.secrets[direction]
        for line in lines:
            data = line.data
            ranges = secrets.line(data, line.partial)
            if ranges:
                at = line.offset
                for start, end in ranges:
                    st.secret(direction, at + start, at + end)
                data = redact(data, ranges)
            emit(R.TextLine(pid, now, direction, data, line.offset, line.partial))

    def eof(self, direction, now):
        self._lines(direction, self.views[direction].flush(), now)

    def close(self, now):
        for d in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
            self.eof(d, now)

    def settled(self, direction):
        if self.secrets is None:
            return None
        at, tail = self.views[direction].tail
        return at if self.secrets[direction].pending(tail) else None
