"""Fault injection: break a connection on purpose.

``model`` (pure) is what a fault is: toxiproxy's toxic (name, type, stream, toxicity, attributes) plus
tcpplay's own types, their checking, the ``--fault`` syntax and the live set a proxy holds. The
byte-level toxics, the protocol-aware faults and the toxiproxy-compatible HTTP API build on it.

May import: ``playground.common``, ``playground.codec``, ``playground.decode``, ``playground.proxy``
and Twisted (apart from ``model``, which imports nothing of Twisted).
"""
