"""The pcap hold-back's count over all pairs (``Chain.held_bytes``, bounded by MAX_HELD_ALL) is
what the pairs hold, read by read, and 0 once they are closed: whatever the decoding (forced,
detected, hex fallback) and however the directions end (FIN, close); no password in clear."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playground.codec.encoder import encode_command as cmd
from playground.decode import chain as chain_module
from playground.decode.chain import Chain
from tests.support.chain import C2S, S2C, SUMMARY, pair
from tests.web.test_settle import PairPcap

pytestmark = pytest.mark.pure

SECRET = b"Zq" * 300
PIECES = [
    cmd(b"AUTH", SECRET), cmd(b"SET", b"k", b"v" * 50), b"+OK\r\n", b"$3\r\nabc\r\n",
    b"GET / HTTP/1.1\r\nAuthorization: Basic " + SECRET + b"\r\n\r\n", b"\x00\xff*junk\r\n",
    b"*9\r\n$-7\r\n", b"HELLO 3 AUTH default " + SECRET + b"\r\n", b"HTTP/1.1 200 OK\r\n\r\n",
]
OPS = st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["data", "data", "data", "fin",
                                                             "close"]),
                         st.sampled_from([C2S, S2C]), st.integers(0, len(PIECES) - 1),
                         st.integers(0, 700), st.integers(1, 700)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["auto", "resp", "http", "text", "hex"]), OPS,
       st.sampled_from([300, 2000, 10**9]))
def test_held_bytes_is_what_the_pairs_hold_and_returns_to_0(decode, ops, bound):
    old = chain_module.MAX_HELD, chain_module.MAX_HELD_ALL
    chain_module.MAX_HELD, chain_module.MAX_HELD_ALL = 1000, bound
    try:
        pcap = PairPcap()
        chain = Chain([], pcap=pcap, decode=decode)
        state = {p: set() for p in (1, 2, 3)}  # pair -> directions ended; absent: closed
        for p in state:
            chain.pair_opened(pair(p), 0.0)
        for t, (p, op, d, piece, start, length) in enumerate(ops):
            if p not in state:
                continue
            if op == "close":
                chain.pair_closed(p, SUMMARY, float(t))
                del state[p]
            elif d in state[p]:
                continue
            elif op == "fin":
                chain.half_closed(p, d, float(t))
                state[p].add(d)
            else:
                chain.data(p, d, PIECES[piece][start:start + length] or b"x", float(t))
            assert chain.held_bytes == sum(len(h) for s in chain.pairs.values() if s.held
                                           for h in s.held.values())
        for p in list(state):
            chain.pair_closed(p, SUMMARY, 99.0)
        assert chain.held_bytes == 0
        assert not chain.pairs
    finally:
        chain_module.MAX_HELD, chain_module.MAX_HELD_ALL = old
