"""The example servers, each a pure core (``feed(bytes) -> events``, no Twisted) and a thin Twisted
adapter: ``echo``, ``chat`` (core, server, client), ``http`` (parser, app, server), ``resp``
(engine, server), ``demo``, which puts the proxy in front of two of them, and ``pool`` (core,
respclient, pool, cli), a client-side connection pool.

May import ``common`` and ``codec``; the cores import nothing from Twisted. Only ``demo`` imports
the proxy (and ``faults.model`` for its ``--fault``).
"""
