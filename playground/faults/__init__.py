"""Fault injection: break a connection on purpose.

``model`` (pure) is what a fault is: toxiproxy's toxic (name, type, stream, toxicity, attributes) plus
tcpplay's own types, their checking, the ``--fault`` syntax and the live set a proxy holds.
``toxics`` (pure) is one direction's byte-level toxics as a pipeline the splice
(``proxy.splice``) drives. The protocol-aware faults and the toxiproxy-compatible HTTP API build
on them.

May import: ``playground.common``, ``playground.codec``, ``playground.decode``, ``playground.proxy``
and Twisted (apart from ``model`` and ``toxics``, which import nothing of Twisted, so the splice
can use them).
"""
